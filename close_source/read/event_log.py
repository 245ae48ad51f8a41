"""Reading the Event Log: one window of events, complete, deduplicated, oldest first.

The rules are the docs' and the reference's §3.7:

- a window is every event whose `date_updated` is at or after the watermark minus five minutes
  (consolidation moves `date_updated` forward and events can become visible late [003:8608]);
- it is read newest first with `_cursor` (re-sending every filter but `date_updated`
  [003:8602-8606]) until a page reaches below the window start or `cursor_next` is null;
- events are deduplicated by id, keeping the copy with the greatest `date_updated`, and
  reversed into oldest-first order, which keeps the documented per-object order on ties;
- event timestamps are naive and taken as UTC.

Filters: the docs list supported filter combinations and "`date_updated` alone" is not among
them [003:8535-8587]. The window is first asked for with `date_updated` alone; if Close refuses
(400), it is read per `(object_type, action)` pair (combination 2), for the object types the
catalog syncs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from close_source.api.client import CloseClient
from close_source.errors import ApiError
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

EVENT_PATH = "event/"
PAGE_SIZE = 50  # the documented cap [003:8607]
PAIR_WORKERS = 4  # concurrent (object_type, action) queries when a date-only window is refused
RESCAN = timedelta(minutes=5)
# Actions the docs list per object type family [003:8157-8492]; used only when Close refuses
# an unfiltered window and the log must be read one (object_type, action) pair at a time.
ACTIONS: dict[str, tuple[str, ...]] = {
    "lead": ("created", "updated", "deleted", "merged"),
    "task": ("created", "updated", "deleted", "completed"),
    "activity.email": ("created", "updated", "deleted", "sent"),
    "activity.sms": ("created", "updated", "deleted", "sent"),
    "activity.call": ("created", "updated", "deleted", "completed"),
    "activity.meeting": ("created", "updated", "deleted", "scheduled", "started", "completed",
                         "canceled"),
    # the docs list no `updated`, but a merge updates every object it moves [003:8180-8187]
    "activity.task_completed": ("created", "updated", "deleted"),
    "membership": ("activated", "deactivated"),
}
DEFAULT_ACTIONS = ("created", "updated", "deleted")
TASK_TYPES = ("lead", "incoming_email", "email_followup", "missed_call",
              "answered_detached_call", "voicemail", "opportunity_due", "incoming_sms")
CUSTOM_FIELD_OBJECT_TYPES = ("lead", "contact", "opportunity", "activity", "shared")
# The docs spell some object types more than one way [003:8122, 8213, 8329, 8529]: the list of
# events says `activity.note`, `activity.opportunity_status_change`, `task.lead`; the samples
# also show `note`, `status_change.opportunity`, `lead.task`. Events are matched in the list's
# spelling; these are the others, mapped to it.
ACTIVITY_TYPES = ("note", "email", "email_thread", "call", "sms", "meeting",
                  "lead_status_change", "opportunity_status_change", "task_completed",
                  "custom_activity")
SPELLINGS: dict[str, str] = {
    **{name: f"activity.{name}" for name in ACTIVITY_TYPES},
    "emailthread": "activity.email_thread",
    "activity.emailthread": "activity.email_thread",
    "status_change.lead": "activity.lead_status_change",
    "status_change.opportunity": "activity.opportunity_status_change",
    **{f"{name}.task": f"task.{name}" for name in TASK_TYPES},
}


@dataclass(frozen=True)
class Event:
    """One Event Log entry, as far as syncing needs it."""

    id: str
    object_type: str
    object_id: str
    action: str
    date_updated: datetime
    lead_id: str | None
    data: Mapping[str, Any] | None
    previous_data: Mapping[str, Any] | None
    meta: Mapping[str, Any]
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Event | None:
        updated = to_utc(raw.get("date_updated") or raw.get("date_created"))
        if not raw.get("id") or not raw.get("object_type") or updated is None:
            return None
        return cls(
            id=str(raw["id"]), object_type=canonical_object_type(str(raw["object_type"])),
            object_id=str(raw.get("object_id") or ""), action=str(raw.get("action") or ""),
            date_updated=updated, lead_id=raw.get("lead_id"),
            data=raw.get("data") if isinstance(raw.get("data"), Mapping) else None,
            previous_data=raw.get("previous_data")
            if isinstance(raw.get("previous_data"), Mapping) else None,
            meta=raw.get("meta") if isinstance(raw.get("meta"), Mapping) else {},
            raw=raw,
        )


def canonical_object_type(spelled: str) -> str:
    """The event list's spelling of an object type (`note` -> `activity.note`)."""
    return SPELLINGS.get(spelled, spelled)


def expand_object_types(patterns: Iterable[str]) -> list[str]:
    """Concrete object types for patterns like `task.*` (for per-type reading)."""
    types: list[str] = []
    for pattern in patterns:
        if pattern == "task.*":
            types += [f"task.{name}" for name in TASK_TYPES]
        elif pattern == "custom_fields.*":
            types += [f"custom_fields.{name}" for name in CUSTOM_FIELD_OBJECT_TYPES]
        elif pattern.endswith(".*"):
            continue  # no documented list to expand: only reachable through the unfiltered read
        else:
            types.append(pattern)
    return types


def actions_of(object_type: str) -> tuple[str, ...]:
    family = "task" if object_type.startswith("task.") else object_type
    return ACTIONS.get(family, DEFAULT_ACTIONS)


def read_window(client: CloseClient, since: datetime,
                object_types: Iterable[str]) -> list[Event]:
    """Every event updated at or after `since`, deduplicated, oldest first."""
    try:
        raw_events = list(_read_filtered(client, since, {}))
    except ApiError as exc:
        if exc.status != 400:
            raise
        log.info("the Event Log takes no date-only window here; reading it per object type "
                 "and action")
        log.debug("Close said: %s", exc.api_message)
        pairs = [{"object_type": object_type, "action": action}
                 for object_type in expand_object_types(object_types)
                 for action in actions_of(object_type)]
        # ~90 small queries, most of them one empty page: a few at a time (the client keeps
        # to the endpoint group's rate limit); results stay in pair order
        with ThreadPoolExecutor(max_workers=PAIR_WORKERS) as pool:
            raw_events = [raw for found in pool.map(
                lambda filters: list(_read_filtered(client, since, filters)), pairs)
                for raw in found]
    newest: dict[str, Event] = {}
    for raw in raw_events:
        event = Event.parse(raw)
        if event is None or event.date_updated < since:
            continue
        kept = newest.get(event.id)
        if kept is None or event.date_updated > kept.date_updated:
            newest[event.id] = event
    # The API's order is newest first and correct per object; reversed, oldest first. Read per
    # (object_type, action), the lists interleave only by time: within one millisecond a
    # delete goes last, since nothing can follow it.
    order = {raw_id: i for i, raw_id in enumerate(str(r.get("id")) for r in raw_events)}
    return sorted(newest.values(), key=lambda e: (e.date_updated, e.action == "deleted",
                                                  -order.get(e.id, 0)))


def _read_filtered(client: CloseClient, since: datetime,
                   filters: Mapping[str, str]) -> Iterator[Mapping[str, Any]]:
    params: dict[str, Any] = {**filters, "_limit": PAGE_SIZE,
                              "date_updated__gte": _naive_utc(since)}
    while True:
        body = client.get(EVENT_PATH, params)
        page = body.get("data") or []
        yield from page
        cursor = body.get("cursor_next")
        oldest = to_utc(page[-1].get("date_updated")) if page else None
        if not cursor or not page or (oldest is not None and oldest < since):
            return
        params = {**filters, "_limit": PAGE_SIZE, "_cursor": cursor}


def _naive_utc(moment: datetime) -> str:
    """Close's own event timestamp style: naive UTC, milliseconds."""
    utc = to_utc(moment)
    assert utc is not None
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ObjectChange:
    """The latest state of one object in a window: its last event."""

    object_type: str
    object_id: str
    deleted: bool
    event: Event


def latest_per_object(events: Iterable[Event]) -> list[ObjectChange]:
    """Per (object_type, object_id), the last event of the window decides (oldest-first input)."""
    last: dict[tuple[str, str], Event] = {}
    for event in events:
        if event.object_id:
            last[(event.object_type, event.object_id)] = event
    return [ObjectChange(object_type, object_id, event.action == "deleted", event)
            for (object_type, object_id), event in last.items()]
