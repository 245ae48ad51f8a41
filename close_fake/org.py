"""The in-memory Close organisation behind the fake API.

Every object lives exactly once, in canonical API JSON form, in `collections`
(collection name -> id -> object). Anything the API shows *nested* (a lead's contacts,
opportunities and tasks, a thread's emails, a pipeline's statuses, an organisation's
memberships...) is assembled from those collections at response time (see `views.py`),
so a mutation only has to touch one object and nothing goes stale. A later mutation API
wraps `put`/`remove` (`changes`, `mutations`) and appends Event Log entries to the
organisation's `events` log (`events`).

Time: `now` is the organisation's clock (`clock()`), frozen unless `tick()` made it follow
the wall clock (a `FakeClose` does that by default); `advance()` moves it forward.

Derived data (sorted listings) is memoised per `version`; every mutation bumps the
version, which drops the memo. The `children()` indexes and `ranked()` views are kept up to
date by `put` / `put_many` / `remove` instead, in O(log n) per write (`positions.py`:
rebuilding or scanning them after each change of a big organisation cost milliseconds to
tens of milliseconds per change); index groups are lists replaced on change, never edited,
so a list a caller holds stays as it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from .positions import Change, Index, Predicate, Ranked, Slots

T = TypeVar("T")

# Collection names. Activities of every `_type` share one collection (one id space,
# `acti_` for all, like Close); custom field definitions are split by object type.
USER = "user"
MEMBERSHIP = "membership"
INACTIVE_MEMBERSHIP = "inactive_membership"
ROLE = "role"
GROUP = "group"
LEAD = "lead"
CONTACT = "contact"
OPPORTUNITY = "opportunity"
TASK = "task"
ACTIVITY = "activity"
LEAD_STATUS = "lead_status"
OPPORTUNITY_STATUS = "opportunity_status"
PIPELINE = "pipeline"
CUSTOM_FIELD_LEAD = "custom_field.lead"
CUSTOM_FIELD_CONTACT = "custom_field.contact"
CUSTOM_FIELD_OPPORTUNITY = "custom_field.opportunity"
CUSTOM_FIELD_ACTIVITY = "custom_field.activity"
CUSTOM_FIELD_SHARED = "custom_field.shared"
CUSTOM_ACTIVITY_TYPE = "custom_activity_type"
EMAIL_TEMPLATE = "email_template"
SMS_TEMPLATE = "sms_template"
SEQUENCE = "sequence"
SEQUENCE_SCHEDULE = "sequence_schedule"
SEQUENCE_SUBSCRIPTION = "sequence_subscription"
SAVED_SEARCH = "saved_search"
CONNECTED_ACCOUNT = "connected_account"
SEND_AS = "send_as"
PHONE_NUMBER = "phone_number"
INTEGRATION_LINK = "integration_link"
DIALER = "dialer"
WEBHOOK = "webhook"

COLLECTIONS: tuple[str, ...] = (
    USER, MEMBERSHIP, INACTIVE_MEMBERSHIP, ROLE, GROUP, LEAD, CONTACT, OPPORTUNITY, TASK,
    ACTIVITY, LEAD_STATUS, OPPORTUNITY_STATUS, PIPELINE, CUSTOM_FIELD_LEAD,
    CUSTOM_FIELD_CONTACT, CUSTOM_FIELD_OPPORTUNITY, CUSTOM_FIELD_ACTIVITY, CUSTOM_FIELD_SHARED,
    CUSTOM_ACTIVITY_TYPE, EMAIL_TEMPLATE, SMS_TEMPLATE, SEQUENCE, SEQUENCE_SCHEDULE,
    SEQUENCE_SUBSCRIPTION, SAVED_SEARCH, CONNECTED_ACCOUNT, SEND_AS, PHONE_NUMBER,
    INTEGRATION_LINK, DIALER, WEBHOOK,
)  # fmt: skip

# Activity `_type` values, as the per-type endpoints return them.
ACTIVITY_TYPES: tuple[str, ...] = (
    "Created", "Note", "Email", "EmailThread", "Call", "SMS", "Meeting", "LeadStatusChange",
    "OpportunityStatusChange", "TaskCompleted", "CustomActivity",
)  # fmt: skip

# Task `_type` values (Close API: Tasks).
TASK_TYPES: tuple[str, ...] = (
    "lead", "incoming_email", "email_followup", "missed_call", "answered_detached_call",
    "voicemail", "opportunity_due", "incoming_sms",
)  # fmt: skip


@dataclass
class FakeOrg:
    """One Close organisation: its id, the admin user (owner of the default API key),
    the organisation's notion of "now" (all generated history lies before it, except
    upcoming meetings), and every collection of objects."""

    organization_id: str
    admin_user_id: str
    now: datetime
    name: str = "Fake Close Org"
    # The organisation's own stored fields (dates, currency...), shown by /organization/{id}/.
    info: dict[str, Any] = field(default_factory=dict)
    collections: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    version: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    # The Event Log (`events.EventLog`), made on first use by `events.log_of(org)`.
    events: Any = field(default=None, repr=False, compare=False)
    _ticking_since: float | None = field(default=None, repr=False, compare=False)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    _memo_version: int = field(default=-1, repr=False, compare=False)
    # (collection, key) -> value -> objects in collection order (`positions.Index`).
    _indexes: dict[tuple[str, str], Index] = field(default_factory=dict, repr=False, compare=False)
    # Positions in collection order (`positions.Slots`), of collections that need them
    # (indexed, ranked or watched); ranked views; watchers: collection -> (key, view).
    _slots: dict[str, Slots] = field(default_factory=dict, repr=False, compare=False)
    _ranked: dict[tuple[str, Any, Any], Ranked] = field(
        default_factory=dict, repr=False, compare=False
    )
    _watchers: dict[str, list[tuple[str, Ranked]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in COLLECTIONS:
            self.collections.setdefault(name, {})

    # -- the organisation's clock ---------------------------------------------------------

    def clock(self) -> datetime:
        """The organisation's current time: `now`, plus the wall-clock time elapsed since
        `tick()` when ticking."""
        since = self._ticking_since
        if since is None:
            return self.now
        return self.now + timedelta(seconds=time.monotonic() - since)

    @property
    def ticking(self) -> bool:
        return self._ticking_since is not None

    def tick(self, on: bool = True) -> None:
        """Make the clock follow the wall clock from now on (or freeze it, `on=False`)."""
        with self.lock:
            self.now = self.clock()
            self._ticking_since = time.monotonic() if on else None

    def set_clock(self, when: datetime) -> None:
        """Set the clock (ticking, if it was, goes on from `when`)."""
        with self.lock:
            self.now = when
            if self._ticking_since is not None:
                self._ticking_since = time.monotonic()

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward (e.g. `timedelta(days=31)` to age the Event Log)."""
        with self.lock:
            self.set_clock(self.clock() + delta)
            return self.now

    # -- reading -------------------------------------------------------------------------

    def get(self, collection: str, object_id: str) -> dict[str, Any] | None:
        """The stored object, or None."""
        return self.collections[collection].get(object_id)

    def all(self, collection: str) -> list[dict[str, Any]]:
        """Every object of a collection, in insertion order."""
        return list(self.collections[collection].values())

    def count(self, collection: str) -> int:
        return len(self.collections[collection])

    def activities(self, type_: str) -> list[dict[str, Any]]:
        """Activities of one `_type` (e.g. "Note"), in insertion order."""
        return self.children(ACTIVITY, "_type", type_)

    def children(self, collection: str, key: str, value: Any) -> list[dict[str, Any]]:
        """Objects of `collection` whose `key` equals `value`, in insertion order (an index
        kept up to date by the writes; do not edit the list)."""
        if value is None:
            return [x for x in self.collections[collection].values() if x.get(key) is None]
        with self.lock:
            index = self._indexes.get((collection, key))
            if index is None:
                self._slots_of(collection)
                index = Index(key, self.collections[collection])
                self._indexes[(collection, key)] = index
            return index.get(value)

    def ranked(
        self,
        collection: str,
        predicate: Predicate | None = None,
        *,
        watch: tuple[str, str] | None = None,
    ) -> Ranked:
        """The objects of `collection` for which `predicate(org, obj)` holds (every one
        without a predicate), in insertion order, as a live sequence: `len` O(1), `[k]`
        O(log n), so `rng.choice(org.ranked(...))` draws as on the list, without one. Kept
        up to date by the writes, like `children()`; made on first use per (collection,
        predicate, watch): pass the same function each time. `watch=(other, key)`: the
        predicate also reads `other` objects whose `key` holds the object's id (writes to
        them re-check it)."""
        with self.lock:
            view = self._ranked.get((collection, predicate, watch))
            if view is None:
                view = Ranked(self, collection, predicate, self._slots_of(collection))
                self._ranked[(collection, predicate, watch)] = view
                if watch is not None:
                    self._slots_of(watch[0])
                    self._watchers.setdefault(watch[0], []).append((watch[1], view))
            return view

    def _slots_of(self, collection: str) -> Slots:
        slots = self._slots.get(collection)
        if slots is None:
            slots = self._slots[collection] = Slots(self.collections[collection])
        return slots

    def _reindex(self, collection: str, changes: list[Change]) -> None:
        """Bring the indexes, ranked views and watchers of `collection` up to date after
        writes: (old, new) pairs, None for "absent"."""
        slot_of = self._slots[collection].of
        for (coll, _), index in self._indexes.items():
            if coll == collection:
                index.update(slot_of, changes)
        for (coll, _, _), view in self._ranked.items():
            if coll == collection:
                view.update(changes)
        for key, view in self._watchers.get(collection, ()):
            for old, new in changes:
                for obj in (old, new):
                    if obj is not None and obj.get(key) is not None:
                        view.recheck(obj[key])

    def memo(self, key: Any, build: Callable[[], T]) -> T:
        """Derived data cached until the next mutation."""
        with self.lock:
            if self._memo_version != self.version:
                self._memo.clear()
                self._memo_version = self.version
            if key not in self._memo:
                self._memo[key] = build()
            return self._memo[key]

    def snapshot(self) -> FakeOrg:
        """A copy frozen at this instant, for exports. Collections are copied, objects are
        shared: mutations replace stored objects (`put`/`remove`), they never edit them in
        place, so later mutations do not reach the snapshot. O(objects), no deep copy."""
        with self.lock:
            return FakeOrg(
                organization_id=self.organization_id,
                admin_user_id=self.admin_user_id,
                now=self.clock(),
                name=self.name,
                info=dict(self.info),
                collections={name: dict(objs) for name, objs in self.collections.items()},
                version=self.version,
                events=self.events.copy() if self.events is not None else None,
            )

    # -- writing (wrapped by `changes` / `mutations`, which emit events) ---------------------

    def put(self, collection: str, obj: dict[str, Any]) -> None:
        """Insert or replace one object (by its `id`)."""
        self.put_many(collection, (obj,))

    def put_many(self, collection: str, objs: Iterable[dict[str, Any]]) -> None:
        with self.lock:
            target = self.collections[collection]
            slots = self._slots.get(collection)  # kept while anything needs positions
            changes: list[Change] = []
            for obj in objs:
                old = target.get(obj["id"])
                target[obj["id"]] = obj
                if slots is not None:
                    if old is None:
                        slots.add(obj["id"])
                    changes.append((old, obj))
            if changes:
                self._reindex(collection, changes)
            self.version += 1

    def remove(self, collection: str, object_id: str) -> dict[str, Any] | None:
        """Delete one object; returns it (or None if absent)."""
        with self.lock:
            obj = self.collections[collection].pop(object_id, None)
            slots = self._slots.get(collection)
            if obj is not None and slots is not None:
                self._reindex(collection, [(obj, None)])
                slots.drop(object_id)
            self.version += 1
            return obj

    def user_name(self, user_id: str | None) -> str | None:
        """Full name of a user (active or not), as `*_name` fields show it."""
        if user_id is None:
            return None
        user = self.get(USER, user_id)
        if user is None:
            return None
        return f"{user['first_name']} {user['last_name']}".strip()
