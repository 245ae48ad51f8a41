"""The Event Log of the fake Close API [003:8104-8622].

Writing: every change of the organisation runs inside a *request* (`request(...)`: one
request id, one acting user, one instant) and records what it did with `created`,
`updated`, `deleted`, `action` and `merged`; these append `Event`s to the organisation's
`EventLog` (`org.events`), or, for repeated updates of one object, rewrite the latest one
(consolidation [003:8149-8156]). `changes.py` and `mutations.py` are the callers.

Reading: `EventReader` serves `GET /event/` (cursor paging newest first, the documented
filters and filter combinations, `_limit` up to 50, 30-day retention, `data` and
`previous_data` only within one hour for non-admins) and `GET /event/{id}/`. Settings that
only shape answers live in `EventSettings` (per server); consolidation, which rewrites the
log itself, is configured on the log (`configure(org, ...)`).

Times come from the organisation's clock (`org.clock()`, see `org.py`): a request without
`at=` takes the clock, truncated to milliseconds, and at least 1 ms after the previous
request, moving a frozen clock forward by that millisecond, so events never lie ahead of
the clock and ordering stays deterministic.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import dataclasses
import hashlib
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from . import org as o
from . import views as v
from .common import SHORT_ID, ApiError, iso, iso_naive, make_id
from .org import FakeOrg
from .params import Params

# -- object types -------------------------------------------------------------------------------

# `object_type` per activity `_type`, as the list of events spells them [003:8225-8328,
# 8422-8428]. Created activities have no documented events.
ACTIVITY_OBJECT_TYPES: dict[str, str] = {
    "Note": "activity.note",
    "Email": "activity.email",
    "EmailThread": "activity.email_thread",
    "Call": "activity.call",
    "SMS": "activity.sms",
    "Meeting": "activity.meeting",
    "LeadStatusChange": "activity.lead_status_change",
    "OpportunityStatusChange": "activity.opportunity_status_change",
    "TaskCompleted": "activity.task_completed",
    "CustomActivity": "activity.custom_activity",
}
# `object_type` per collection (tasks: `task.<_type>`, activities: above). Collections not
# listed (users, roles, pipelines, templates for SMS, connected accounts, ...) have no
# documented events [003:8157-8492].
COLLECTION_OBJECT_TYPES: dict[str, str] = {
    o.LEAD: "lead",
    o.CONTACT: "contact",
    o.OPPORTUNITY: "opportunity",
    o.LEAD_STATUS: "status.lead",
    o.OPPORTUNITY_STATUS: "status.opportunity",
    o.CUSTOM_FIELD_LEAD: "custom_fields.lead",
    o.CUSTOM_FIELD_CONTACT: "custom_fields.contact",
    o.CUSTOM_FIELD_ACTIVITY: "custom_fields.activity",
    o.CUSTOM_FIELD_OPPORTUNITY: "custom_fields.opportunity",
    o.CUSTOM_FIELD_SHARED: "custom_fields.shared",
    o.CUSTOM_ACTIVITY_TYPE: "custom_activity_type",
    o.EMAIL_TEMPLATE: "email_template",
    o.SEQUENCE: "sequence",
    o.SEQUENCE_SUBSCRIPTION: "sequence_subscription",
    o.SAVED_SEARCH: "saved_search",
    o.PHONE_NUMBER: "phone_number",
    o.GROUP: "group",
}
# Not in the documented list: served only with `EventSettings(undocumented=True)`.
UNDOCUMENTED_OBJECT_TYPES = frozenset({"custom_fields.opportunity", "custom_fields.shared"})
# Object types whose deletion the docs list no event for [003:8448-8456].
NO_DELETE_EVENT = frozenset({"saved_search"})

# Other spellings the docs use: the single-event sample's `"object_type": "note"`
# [003:8529], the intro's `status_change.opportunity` [003:8122], and `lead.task` in the
# task-completed text [003:8329]. `EventSettings(object_types=SAMPLE_SPELLINGS)` serves them.
SAMPLE_SPELLINGS: dict[str, str] = {
    **{t: t.removeprefix("activity.") for t in ACTIVITY_OBJECT_TYPES.values()},
    "activity.lead_status_change": "status_change.lead",
    "activity.opportunity_status_change": "status_change.opportunity",
    **{f"task.{t}": f"{t}.task" for t in o.TASK_TYPES},
}

# Keys of a lead's data that do not make a `lead.updated` (changes of existing contacts,
# opportunities and tasks do not trigger it [003:8174-8175]); `contact_ids` does.
_LEAD_NESTED = frozenset({"contacts", "opportunities", "tasks"})
# Bookkeeping keys: a change of these alone is no event (unless forced).
AUDIT_KEYS = frozenset({"date_updated", "updated_by", "updated_by_name", "updated_by_id"})

ADMIN = "<admin>"  # `user_id` default: the organisation's admin user

_MS = timedelta(milliseconds=1)


# API path segment of each activity `_type`, and of collections not named like their path
# (`meta.request_path` of changes).
ACTIVITY_SEGMENTS: dict[str, str] = {
    "Note": "note", "Email": "email", "EmailThread": "emailthread", "Call": "call",
    "SMS": "sms", "Meeting": "meeting", "LeadStatusChange": "status_change/lead",
    "OpportunityStatusChange": "status_change/opportunity", "TaskCompleted": "task_completed",
    "Created": "created", "CustomActivity": "custom",
}  # fmt: skip
_SEGMENTS: dict[str, str] = {
    o.LEAD_STATUS: "status/lead",
    o.OPPORTUNITY_STATUS: "status/opportunity",
    o.CUSTOM_ACTIVITY_TYPE: "custom_activity",
}


def api_path(collection: str, obj: Mapping[str, Any], with_id: bool) -> str:
    """The API path a change of the object goes to, e.g. `/api/v1/activity/note/acti_…/`."""
    if collection == o.ACTIVITY:
        segment = "activity/" + ACTIVITY_SEGMENTS.get(obj.get("_type", ""), "")
    elif collection.startswith("custom_field."):
        segment = collection.replace(".", "/")
    else:
        segment = _SEGMENTS.get(collection, collection)
    path = f"/api/v1/{segment}/"
    return f"{path}{obj['id']}/" if with_id else path


def object_type(collection: str, obj: Mapping[str, Any]) -> str | None:
    """The event `object_type` of a stored object, or None if it has no events."""
    if collection == o.ACTIVITY:
        return ACTIVITY_OBJECT_TYPES.get(obj.get("_type", ""))
    if collection == o.TASK:
        return f"task.{obj.get('_type', 'lead')}"
    return COLLECTION_OBJECT_TYPES.get(collection)


def data_of(org: FakeOrg, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object "as if you fetched it via API" [003:8137]: the single-object endpoint's
    shape (a lead with nested contacts/opportunities/tasks, a contact with `lead_id`, a
    thread with its emails, a custom activity type with `fields`...)."""
    if collection == o.LEAD:
        return v.render_lead(org, obj)
    if collection == o.CONTACT:
        return v.render_contact(org, obj)
    if collection == o.ACTIVITY:
        return v.render_activity(org, obj)
    if collection == o.CUSTOM_ACTIVITY_TYPE:
        return v.render_custom_activity_type(org, obj)
    if collection == o.EMAIL_TEMPLATE:
        return v.render_email_template(org, obj, single=True)
    if collection == o.SEQUENCE:
        return v.render_sequence(org, obj, single=True)
    if collection == o.GROUP:
        return v.render_group(obj, frozenset({"name", "organization_id", "members"}), single=True)
    return obj


# -- the log ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One stored event. Never edited: consolidation stores a replaced copy."""

    id: str
    n: int  # creation number (deterministic "late" events, see EventSettings)
    seq: int  # write number: orders events of one millisecond
    object_type: str  # canonical spelling (see `object_type`)
    object_id: str
    action: str
    lead_id: str | None
    user_id: str | None
    request_id: str
    api_key_id: str | None
    date_created: datetime
    date_updated: datetime
    changed_fields: tuple[str, ...]
    previous_data: dict[str, Any] | None
    data: dict[str, Any] | None
    meta: dict[str, Any]


@dataclass
class ChangeRequest:
    """The request a change runs in: its events share `id`, user, key, time and meta."""

    id: str
    at: datetime
    user_id: str | None
    api_key_id: str | None
    method: str
    path: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventLog:
    """The organisation's events (id -> Event), in write order by `seq`.

    `consolidation_window`: an `updated` event of an object is folded into the object's
    latest event when that one is an `updated` of the same user and API key created at most
    this long before (None: never). The docs only say "a short time frame" [003:8110].
    `labels`: "follow" (renaming a lead, contact, status, pipeline, sequence, email template
    or user changes every copy of its name on other objects: `lead_name`, `contact_name`,
    `status_label`, `pipeline_name`, `sequence_name`, `template_name`, `user_name`,
    `created_by_name`, `updated_by_name`, `assigned_to_name`; silently: no events, no
    `date_updated`; status-change activities' old/new labels are history and stay; see
    `changes._follow_labels`) or "frozen" (they keep the old text). `touch_lead`: changes to
    a lead's contacts, opportunities, tasks and activities move the lead's `date_updated`
    without an event ("even though they may affect the lead's date_updated"
    [003:8174-8175]). `created_activity`: a new lead gets a `Created` activity (which has no
    events). `opportunity_contact_name`: opportunities carry `contact_name` next to
    `contact_id`, as the webhook sample's opportunity does [003:84] while the list sample
    has none [003:3013-3040]; switching it with `configure` adds or strips it on every
    stored opportunity.
    """

    consolidation_window: timedelta | None = timedelta(minutes=5)
    labels: str = "follow"
    touch_lead: bool = False
    created_activity: bool = True
    opportunity_contact_name: bool = True
    events: dict[str, Event] = field(default_factory=dict)
    latest: dict[tuple[str, str], str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    version: int = 0
    last: datetime | None = None
    active: ChangeRequest | None = None

    def copy(self) -> EventLog:
        """For `FakeOrg.snapshot()`: the events at this instant (events are immutable)."""
        return dataclasses.replace(
            self,
            events=dict(self.events),
            latest=dict(self.latest),
            counters=dict(self.counters),
            active=None,
        )

    def count(self, name: str) -> int:
        """The next number of a per-log counter (ids, requests)."""
        n = self.counters.get(name, 0)
        self.counters[name] = n + 1
        return n

    def ordered(self) -> list[Event]:
        """Every event, newest first: `date_updated` desc, then write order desc."""
        return sorted(self.events.values(), key=_position, reverse=True)


def _position(e: Event) -> tuple[datetime, int]:
    return (e.date_updated, e.seq)


def log_of(org: FakeOrg) -> EventLog:
    """The organisation's Event Log (made on first use)."""
    log = org.events
    if log is None:
        with org.lock:
            if org.events is None:
                org.events = EventLog()
            log = org.events
    return log


def configure(org: FakeOrg, **settings: Any) -> EventLog:
    """Set `consolidation_window`, `labels`, `touch_lead`, `created_activity` or
    `opportunity_contact_name` (see `EventLog`) for the changes that follow; a changed
    `opportunity_contact_name` also reshapes the stored opportunities (silently)."""
    log = log_of(org)
    allowed = {
        "consolidation_window", "labels", "touch_lead", "created_activity",
        "opportunity_contact_name",
    }  # fmt: skip
    unknown = set(settings) - allowed
    if unknown:
        raise TypeError(f"Unknown Event Log settings: {sorted(unknown)}.")
    if settings.get("labels", "follow") not in ("follow", "frozen"):
        raise ValueError("labels must be 'follow' or 'frozen'.")
    with org.lock:
        for key, value in settings.items():
            setattr(log, key, value)
        if "opportunity_contact_name" in settings:
            _opportunity_contact_names(org, bool(settings["opportunity_contact_name"]))
    return log


def _opportunity_contact_names(org: FakeOrg, on: bool) -> None:
    """Every opportunity gains (right after `contact_id`) or loses `contact_name`, as if the
    server had always shown it or never; no events, no `date_updated`."""
    changed = []
    for opp in org.collections[o.OPPORTUNITY].values():
        if on == ("contact_name" in opp):
            continue
        if not on:
            changed.append({k: val for k, val in opp.items() if k != "contact_name"})
            continue
        contact = org.get(o.CONTACT, opp.get("contact_id") or "")
        out: dict[str, Any] = {}
        for k, val in opp.items():
            out[k] = val
            if k == "contact_id":
                out["contact_name"] = contact["name"] if contact else None
        out.setdefault("contact_name", contact["name"] if contact else None)
        changed.append(out)
    if changed:
        org.put_many(o.OPPORTUNITY, changed)


def events(org: FakeOrg) -> list[Event]:
    """Every stored event, newest first (expired ones too; tests' view of the log)."""
    with org.lock:
        return log_of(org).ordered()


def new_id(org: FakeOrg, prefix: str, length: int = SHORT_ID, collection: str | None = None) -> str:
    """A fresh id, deterministic for the organisation and how many were made before."""
    log = log_of(org)
    while True:
        n = log.count(f"id/{prefix}")
        made = make_id(random.Random(f"{org.organization_id}/{prefix}/{n}"), prefix, length)
        if collection is None or org.get(collection, made) is None:
            return made


# -- time ---------------------------------------------------------------------------------------


def now(org: FakeOrg) -> datetime:
    """The time of the running request, or the organisation's clock outside one."""
    log = org.events
    if log is not None and log.active is not None:
        return log.active.at
    return org.clock()


def advance(org: FakeOrg, delta: timedelta) -> datetime:
    """Move the organisation's clock (and so the server's `Date`) forward."""
    return org.advance(delta)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def stamp(org: FakeOrg, previous: str | None, at: datetime | None = None) -> str:
    """A new `date_updated` in the previous value's format (aware `+00:00` or naive): `at`,
    else the request's time (`now`), or 1 ms after `previous` when that is not earlier, so
    repeated changes of one object always move its `date_updated` forward."""
    prev = _parse(previous) if previous else None
    if at is None:
        at = now(org)
        if prev is not None and prev >= at:
            at = prev + _MS
    at = _aware(at)
    naive = previous is not None and prev is not None and _is_naive(previous)
    return iso_naive(at) if naive else iso(at)


def _parse(text: str) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        return None


def _is_naive(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is None
    except ValueError:
        return False


# -- writing ------------------------------------------------------------------------------------


@contextlib.contextmanager
def request(
    org: FakeOrg,
    method: str = "POST",
    path: str = "/api/v1/",
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Iterator[ChangeRequest]:
    """Run a change as one request: holds `org.lock`; every event inside shares the request
    id, user (`ADMIN`: the organisation's admin; None: a change no user made directly),
    API key id, time (`at`, else the clock) and `meta` (plus `request_method` /
    `request_path` [003:8145-8148]). Nested requests join the outer one."""
    with org.lock:
        log = log_of(org)
        if log.active is not None:
            yield log.active
            return
        if at is None:
            t = _ms(org.clock())
            if log.last is not None and t <= log.last:
                t = log.last + _MS
            log.last = t
            if t > org.clock():
                org.set_clock(t)  # a frozen clock moves on with the changes
        else:
            t = _aware(at)
        n = log.count("request")
        rq = ChangeRequest(
            id=make_id(random.Random(f"{org.organization_id}/req/{n}"), "req", SHORT_ID),
            at=t,
            user_id=org.admin_user_id if user_id == ADMIN else user_id,
            api_key_id=api_key_id,
            method=method,
            path=path,
            meta=dict(meta or {}),
        )
        log.active = rq
        try:
            yield rq
        finally:
            log.active = None


def emit(
    org: FakeOrg,
    object_type_: str,
    object_id: str,
    action: str,
    *,
    lead_id: str | None,
    data: dict[str, Any] | None,
    previous_data: dict[str, Any] | None = None,
    changed_fields: tuple[str, ...] = (),
    consolidate: bool = True,
) -> Event:
    """Append one event (or, for an `updated`, fold it into the object's latest event,
    which keeps its id, `date_created`, request id and meta)."""
    log = log_of(org)
    rq = log.active
    if rq is None:
        raise RuntimeError("events.emit() outside events.request(...)")
    meta = {"request_method": rq.method, "request_path": rq.path, **rq.meta}
    key = (object_type_, object_id)
    log.seq += 1
    log.version += 1
    last = log.events.get(log.latest.get(key, ""))
    if (
        consolidate
        and action == "updated"
        and last is not None
        and last.action == "updated"
        and last.user_id == rq.user_id
        and last.api_key_id == rq.api_key_id
        and _context(last.meta) == _context(meta)
        and log.consolidation_window is not None
        and last.date_updated <= rq.at <= last.date_created + log.consolidation_window
    ):
        # "the attributes in previous_data are merged": the earliest old value wins.
        merged_previous = {**(previous_data or {}), **(last.previous_data or {})}
        event = dataclasses.replace(
            last,
            seq=log.seq,
            date_updated=rq.at,
            changed_fields=tuple(sorted(set(last.changed_fields) | set(changed_fields))),
            previous_data=dict(sorted(merged_previous.items())),
            data=data,
            lead_id=lead_id,
        )
    else:
        n = log.count("event")
        event = Event(
            id=make_id(random.Random(f"{org.organization_id}/ev/{n}"), "ev", SHORT_ID),
            n=n,
            seq=log.seq,
            object_type=object_type_,
            object_id=object_id,
            action=action,
            lead_id=lead_id,
            user_id=rq.user_id,
            request_id=rq.id,
            api_key_id=rq.api_key_id,
            date_created=rq.at,
            date_updated=rq.at,
            changed_fields=tuple(changed_fields),
            previous_data=previous_data,
            data=data,
            meta=meta,
        )
    log.events[event.id] = event
    log.latest[key] = event.id
    return event


def _context(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Meta that ties an event to an operation (a merge, a bulk action): events of two
    different operations are never consolidated; request paths may differ."""
    return {k: val for k, val in meta.items() if k not in ("request_method", "request_path")}


def _lead_id_of(collection: str, obj: Mapping[str, Any]) -> str | None:
    if collection == o.LEAD:
        return obj["id"]
    return obj.get("lead_id")


def created(org: FakeOrg, collection: str, obj: dict[str, Any]) -> Event | None:
    """A `created` event for a stored object (None if its type has no events)."""
    return action(org, collection, obj, "created")


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], ignore: frozenset[str] = frozenset()
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(changed keys sorted, their previous values); a key that appeared was None before."""
    changed = sorted(
        k
        for k in set(before) | set(after)
        if k not in ignore and (k not in before or k not in after or before[k] != after[k])
    )
    return tuple(changed), {k: before.get(k) for k in changed}


def updated(
    org: FakeOrg,
    collection: str,
    obj: dict[str, Any],
    before: Mapping[str, Any],
    *,
    force: bool = False,
) -> Event | None:
    """An `updated` event for a stored object: `before` is its data (`data_of`) taken
    before the change. Nothing when only bookkeeping keys changed (`AUDIT_KEYS`) unless
    `force`, or when its type has no events."""
    type_ = object_type(collection, obj)
    if type_ is None:
        return None
    after = data_of(org, collection, obj)
    changed, previous = diff(before, after, _LEAD_NESTED if collection == o.LEAD else frozenset())
    if not force and not set(changed) - AUDIT_KEYS:
        return None
    return emit(
        org,
        type_,
        obj["id"],
        "updated",
        lead_id=_lead_id_of(collection, obj),
        data=after,
        previous_data=previous,
        changed_fields=changed,
    )


def deleted(org: FakeOrg, collection: str, before: dict[str, Any]) -> Event | None:
    """A `deleted` event: `data` null, `previous_data` every attribute [003:8138-8140];
    `before` is the object's data taken before it was removed."""
    type_ = object_type(collection, before)
    if type_ is None or type_ in NO_DELETE_EVENT:
        return None
    return emit(
        org,
        type_,
        before["id"],
        "deleted",
        lead_id=_lead_id_of(collection, before),
        data=None,
        previous_data=before,
    )


def action(org: FakeOrg, collection: str, obj: dict[str, Any], name: str) -> Event | None:
    """Another documented action (`completed`, `sent`, `scheduled`, `merged`...), with the
    object's current data."""
    type_ = object_type(collection, obj)
    if type_ is None:
        return None
    return emit(
        org,
        type_,
        obj["id"],
        name,
        lead_id=_lead_id_of(collection, obj),
        data=data_of(org, collection, obj),
        previous_data={},
    )


# -- reading ------------------------------------------------------------------------------------

FILTERS = ("object_type", "object_id", "action", "lead_id", "user_id", "request_id")
DATE_FILTERS = ("date_updated__gte", "date_updated__gt", "date_updated__lte", "date_updated__lt")
# The supported combinations [003:8567-8587]; `date_updated` may join any of them.
DOCUMENTED_COMBINATIONS: frozenset[frozenset[str]] = frozenset(
    frozenset(c)
    for c in (
        ("object_type", "object_id"),
        ("object_type", "action"),
        ("object_id", "action"),
        ("lead_id", "object_type"),
        ("lead_id", "object_type", "action"),
        ("lead_id", "user_id", "object_type"),
        ("lead_id", "user_id", "object_type", "action"),
        ("lead_id", "user_id"),
        ("user_id", "object_id"),
        ("user_id", "object_id", "action"),
        ("user_id", "object_type"),
        ("user_id", "object_type", "action"),
        ("lead_id",),
        ("user_id",),
        ("request_id",),
    )
)


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"EventSettings.{name} must be one of {allowed}, not {value!r}.")


@dataclass(frozen=True)
class EventSettings:
    """How `GET /event/` answers (defaults: the docs' plain reading).

    `filters`: "documented" (only the listed combinations; no filter at all, or only
    `date_updated`, is a 400), "unfiltered" (the listed ones plus no filter) or "any".
    `max_limit` [50] and `over_limit`: "cap" (a larger `_limit` is capped) or "error" (400).
    `skip`: "ignore" or "error" for `_skip` ("does not support _limit and _skip").
    `dates`: "naive" (`2016-10-19T12:22:10.434000`, as the samples) or "utc" (`+00:00`).
    `object_types`: served spelling per canonical one (e.g. `SAMPLE_SPELLINGS`); filters
    match the served spelling. `retention` [30 days] by `date_created`.
    `private_after` [1 h] / `private_age` ("date_created" or "date_updated"): how old an
    event may be for a non-admin key to get `data` and `previous_data`; `hidden`: "omit"
    the two keys or "null" them. `lead_data`: "full" (as `GET /lead/{id}/`, with
    contacts, opportunities, tasks) or "flat" (without those three lists).
    `undocumented`: also serve `custom_fields.opportunity` / `custom_fields.shared`.
    `late_every` / `late_by`: every Nth event (by creation) is invisible until `late_by`
    after its `date_updated` ("events may be visible ... in a different order than they
    were triggered" [003:8608]); 0 disables. `cursor_filters`: "strict" (a cursor used with
    other filters than the query that made it is a 400) or "request" (the request's
    filters apply, silently).
    """

    filters: str = "documented"
    max_limit: int = 50
    over_limit: str = "cap"
    skip: str = "ignore"
    dates: str = "naive"
    object_types: Mapping[str, str] = field(default_factory=dict)
    retention: timedelta = timedelta(days=30)
    private_after: timedelta = timedelta(hours=1)
    private_age: str = "date_created"
    hidden: str = "omit"
    lead_data: str = "full"
    undocumented: bool = False
    late_every: int = 0
    late_by: timedelta = timedelta(minutes=2)
    cursor_filters: str = "strict"

    def __post_init__(self) -> None:
        _check("filters", self.filters, ("documented", "unfiltered", "any"))
        _check("over_limit", self.over_limit, ("cap", "error"))
        _check("skip", self.skip, ("ignore", "error"))
        _check("dates", self.dates, ("naive", "utc"))
        _check("private_age", self.private_age, ("date_created", "date_updated"))
        _check("hidden", self.hidden, ("omit", "null"))
        _check("lead_data", self.lead_data, ("full", "flat"))
        _check("cursor_filters", self.cursor_filters, ("strict", "request"))
        if self.max_limit < 1 or self.late_every < 0:
            raise ValueError("max_limit must be positive and late_every not negative.")

    def spelling(self, canonical: str) -> str:
        return self.object_types.get(canonical, canonical)


class EventReader:
    """`GET /event/` and `GET /event/{id}/` over an organisation's log."""

    def __init__(self, org: FakeOrg, settings: EventSettings, clock: Any) -> None:
        self.org = org
        self.settings = settings
        self.clock = clock  # () -> datetime: the server's clock

    # -- visibility -----------------------------------------------------------------------------

    def _ordered(self) -> tuple[list[Event], list[tuple[int, int]]]:
        """Every event newest first, and their negated positions (ascending, for bisect)."""
        log = log_of(self.org)

        def build() -> tuple[list[Event], list[tuple[int, int]]]:
            ordered = log.ordered()
            return ordered, [(-m, -n) for m, n in map(_key, ordered)]

        return self.org.memo(("events-ordered", log.version, len(log.events)), build)

    def _visible(self, e: Event, now: datetime) -> bool:
        s = self.settings
        if e.date_created < now - s.retention:
            return False
        if e.object_type in UNDOCUMENTED_OBJECT_TYPES and not s.undocumented:
            return False
        if s.late_every and e.n % s.late_every == s.late_every - 1:
            return now >= e.date_updated + s.late_by
        return True

    def render(self, e: Event, now: datetime, admin: bool) -> dict[str, Any]:
        s = self.settings
        fmt = iso_naive if s.dates == "naive" else iso
        data = e.data
        if data is not None and e.object_type == "lead" and s.lead_data == "flat":
            data = {k: val for k, val in data.items() if k not in _LEAD_NESTED}
        out: dict[str, Any] = {
            "action": e.action,
            "api_key_id": e.api_key_id,
            "changed_fields": list(e.changed_fields),
            "data": data,
            "date_created": fmt(e.date_created),
            "date_updated": fmt(e.date_updated),
            "id": e.id,
            "lead_id": e.lead_id,
            "meta": dict(e.meta),
            "object_id": e.object_id,
            "object_type": s.spelling(e.object_type),
            "organization_id": self.org.organization_id,
            "previous_data": e.previous_data,
            "request_id": e.request_id,
            "user_id": e.user_id,
        }
        age_from = e.date_created if s.private_age == "date_created" else e.date_updated
        if not admin and now - age_from >= s.private_after:
            for key in ("data", "previous_data"):
                if s.hidden == "omit":
                    del out[key]
                else:
                    out[key] = None
        return out

    # -- endpoints ------------------------------------------------------------------------------

    def get(self, event_id: str, admin: bool) -> dict[str, Any]:
        now = _aware(self.clock())
        e = log_of(self.org).events.get(event_id)
        if e is None or not self._visible(e, now):
            raise ApiError(404, f"Event {event_id} not found.")
        return self.render(e, now, admin)

    def list(self, params: Params, admin: bool) -> dict[str, Any]:
        s = self.settings
        now = _aware(self.clock())
        limit = params.int("_limit", s.max_limit)
        if limit < 1:
            raise ApiError(400, "_limit must be a positive integer.")
        if limit > s.max_limit:
            if s.over_limit == "error":
                raise ApiError(400, f"Invalid _limit {limit}: the maximum is {s.max_limit}.")
            limit = s.max_limit
        if params.has("_skip") and s.skip == "error":
            raise ApiError(400, "The event log does not support _skip; use _cursor.")
        used = {name: params.get(name) or "" for name in FILTERS if params.has(name)}
        self._check_combination(frozenset(used))
        signature = _signature(used)
        bounds = {name: params.get(name) for name in DATE_FILTERS if params.has(name)}
        anchor: tuple[int, int] | None = None
        backwards = False
        cursor = params.get("_cursor")
        if cursor:
            state = _decode_cursor(cursor)
            if state["f"] != signature and s.cursor_filters == "strict":
                raise ApiError(
                    400,
                    "The _cursor does not match the filters: send the same filters as the "
                    "request that returned it (date_updated may be left out).",
                )
            bounds = state["b"]  # the cursor carries the query's date_updated bounds
            anchor = (state["k"][0], state["k"][1])
            backwards = state["d"] == "prev"
        preds = _date_preds(Params(bounds)) + self._filter_preds(used)
        ordered, positions = self._ordered()

        def match(i: int) -> bool:
            e = ordered[i]
            return self._visible(e, now) and all(pred(e) for pred in preds)

        # Scan lazily from the cursor's position (bisect), only as far as the page needs.
        if backwards:
            assert anchor is not None
            i = bisect.bisect_left(positions, (-anchor[0], -anchor[1])) - 1
            picked: list[int] = []
            while i >= 0 and len(picked) < limit:
                if match(i):
                    picked.append(i)
                i -= 1
            picked.reverse()
        else:
            i = 0 if anchor is None else bisect.bisect_right(positions, (-anchor[0], -anchor[1]))
            picked = []
            while i < len(ordered) and len(picked) < limit:
                if match(i):
                    picked.append(i)
                i += 1
        page = [ordered[i] for i in picked]
        older = bool(picked) and any(match(i) for i in range(picked[-1] + 1, len(ordered)))
        newer = bool(picked) and any(match(i) for i in range(picked[0] - 1, -1, -1))
        out: dict[str, Any] = {"data": [self.render(e, now, admin) for e in page]}
        out["cursor_next"] = (
            _encode_cursor("next", _key(page[-1]), signature, bounds) if older else None
        )
        out["cursor_previous"] = (
            _encode_cursor("prev", _key(page[0]), signature, bounds) if newer else None
        )
        return out

    def _check_combination(self, used: frozenset[str]) -> None:
        mode = self.settings.filters
        if mode == "any" or used in DOCUMENTED_COMBINATIONS:
            return
        if mode == "unfiltered" and not used:
            return
        shown = ", ".join(sorted(used)) or "no filter (or only date_updated)"
        raise ApiError(
            400,
            f"Unsupported combination of event filters: {shown}. Supported: object_type + "
            "object_id, object_type + action, object_id + action, lead_id (+ object_type "
            "(+ action)), lead_id + user_id (+ object_type (+ action)), user_id (+ object_id "
            "or object_type (+ action)), request_id; date_updated may be added to any.",
        )

    def _filter_preds(self, used: Mapping[str, str]) -> list[Any]:
        preds: list[Any] = []
        for name, value in used.items():
            if name == "object_type":
                preds.append(lambda e, v=value: self.settings.spelling(e.object_type) == v)
            else:
                preds.append(lambda e, n=name, v=value: getattr(e, n) == v)
        return preds


def _key(e: Event) -> tuple[int, int]:
    """A cursor position: `date_updated` in microseconds since the epoch, write number."""
    return (_micros(e.date_updated), e.seq)


def _micros(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _date_preds(params: Params) -> list[Any]:
    preds: list[Any] = []
    for name in DATE_FILTERS:
        bound = params.moment(name)
        if bound is None:
            continue
        micros = round(bound * 1_000_000)
        op = name.rsplit("__", 1)[1]
        if op == "gte":
            preds.append(lambda e, b=micros: _micros(e.date_updated) >= b)
        elif op == "gt":
            preds.append(lambda e, b=micros: _micros(e.date_updated) > b)
        elif op == "lte":
            preds.append(lambda e, b=micros: _micros(e.date_updated) <= b)
        else:
            preds.append(lambda e, b=micros: _micros(e.date_updated) < b)
    return preds


def _signature(used: Mapping[str, str]) -> str:
    text = "&".join(f"{k}={val}" for k, val in sorted(used.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _encode_cursor(
    direction: str, key: tuple[int, int], signature: str, bounds: Mapping[str, str | None]
) -> str:
    raw = orjson.dumps({"d": direction, "k": list(key), "f": signature, "b": dict(bounds)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = orjson.loads(raw)
        if (
            not isinstance(state, dict)
            or state.get("d") not in ("next", "prev")
            or not isinstance(state.get("f"), str)
            or not isinstance(state.get("b"), dict)
            or not (isinstance(state.get("k"), list) and len(state["k"]) == 2)
            or not all(isinstance(x, int) for x in state["k"])
        ):
            raise ValueError
        return state
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError(400, "Invalid _cursor.") from None
