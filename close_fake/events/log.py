"""The Event Log store: `Event`, the running `ChangeRequest`, the organisation's `EventLog`.

The log hangs on the organisation (`org.events`, made on first use by `log_of`); its
org-level settings (`configure`) shape the changes that follow. Fresh ids (`new_id`) are
deterministic for the organisation and how many were made before.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import org as o
from ..common import SHORT_ID, make_id
from ..org import FakeOrg


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

    `consolidation_window`: an `updated` event of an object is folded into the object's latest
    event when that one is an `updated` of the same user and API key created at most this long
    before (None: never). The docs only say "a short time frame" (Close API: Event Log, Event
    format). `labels`: "follow" (renaming a lead, contact, status, pipeline, sequence, email
    template or user changes every copy of its name on other objects: `lead_name`, `contact_name`,
    `status_label`, `pipeline_name`, `sequence_name`, `template_name`, `user_name`,
    `created_by_name`, `updated_by_name`, `assigned_to_name`; silently: no events, no
    `date_updated`; status-change activities' old/new labels are history and stay; see
    `changes.labels._follow_labels`) or "frozen" (they keep the old text). `touch_lead`: changes to
    a lead's contacts, opportunities, tasks and activities move the lead's `date_updated` without
    an event ("even though they may affect the lead's date_updated"; Close API: Event Log, List of
    events). `created_activity`: a new lead gets a `Created` activity (which has no events).
    `opportunity_contact_name`: opportunities carry `contact_name` next to `contact_id`, as the
    webhook sample's opportunity does (Close API: Webhooks) while the list sample has none (Close
    API: Opportunities); switching it with `configure` adds or strips it on every stored
    opportunity.
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
