"""Reading the Event Log: one window of events, complete, deduplicated, oldest first.

The rules follow from Close's docs (Close API: Event Log):

- a window is every event whose `date_updated` is at or after the watermark minus five minutes
  (consolidation moves `date_updated` forward and events can become visible late: Close API:
  Event Log, Event consolidation and Retrieve a list of events);
- it is read newest first with `_cursor` (re-sending every filter but `date_updated`) until a
  page reaches below the window start or `cursor_next` is null;
- events are deduplicated by id, keeping the copy with the greatest `date_updated`, and
  reversed into oldest-first order, which keeps the documented per-object order on ties;
- event timestamps are naive and taken as UTC.

Filters: the docs list supported filter combinations and "`date_updated` alone" is not among
them (Close API: Event Log, Retrieve a list of events). The window is first asked for with
`date_updated` alone; if Close refuses (400), it is read per `(object_type, action)` pair
(combination 2), for the object types the catalog syncs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from close_source.api.client import CloseClient
from close_source.errors import ApiError
from close_source.progress import Progress, duration
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

EVENT_PATH = "event/"
PAGE_SIZE = 50  # the documented cap (Close API: Event Log, Retrieve a list of events)
PAIR_WORKERS = 4  # concurrent (object_type, action) queries when a date-only window is refused
RESCAN = timedelta(minutes=5)
# Actions the docs list per object type family (Close API: Event Log, List of events); used
# only when Close refuses an unfiltered window and the log must be read one (object_type,
# action) pair at a time.
ACTIONS: dict[str, tuple[str, ...]] = {
    "lead": ("created", "updated", "deleted", "merged"),
    "task": ("created", "updated", "deleted", "completed"),
    "activity.email": ("created", "updated", "deleted", "sent"),
    "activity.sms": ("created", "updated", "deleted", "sent"),
    "activity.call": ("created", "updated", "deleted", "completed"),
    "activity.meeting": ("created", "updated", "deleted", "scheduled", "started", "completed",
                         "canceled"),
    # the docs list no `updated`, but a merge updates every object it moves (Close API: Event
    # Log, List of events)
    "activity.task_completed": ("created", "updated", "deleted"),
    "membership": ("activated", "deactivated"),
}
DEFAULT_ACTIONS = ("created", "updated", "deleted")
TASK_TYPES = ("lead", "incoming_email", "email_followup", "missed_call",
              "answered_detached_call", "voicemail", "opportunity_due", "incoming_sms")
CUSTOM_FIELD_OBJECT_TYPES = ("lead", "contact", "opportunity", "activity", "shared")
# The docs spell some object types more than one way (Close API: Event Log, in Event format,
# List of events and Retrieve a single event by ID): the list of events says `activity.note`,
# `activity.opportunity_status_change`, `task.lead`; the samples also show `note`,
# `status_change.opportunity`, `lead.task`. Events are matched in the list's
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


EventSink = Callable[[list[tuple[int, Event]]], None]


def read_window(client: CloseClient, since: datetime, object_types: Iterable[str],
                sink: EventSink) -> int:
    """Every event updated at or after `since`, a page at a time into `sink` as (order in the
    API's answer, event): nothing of the window is held here. Returns the events read.

    Read per (object_type, action), the answers' orders interleave only by time: their order
    is the pair's place in the list and the event's place in the pair's answer.
    """
    progress = Progress("Event Log window", unit="events")
    try:
        return _read_filtered(client, since, {}, sink, 0, progress)
    except ApiError as exc:
        if exc.status != 400:
            raise
        log.info("the Event Log takes no date-only window here; reading it per object type "
                 "and action")
        log.debug("Close said: %s", exc.api_message)
    finally:
        progress.finish()
    pairs = [{"object_type": object_type, "action": action}
             for object_type in expand_object_types(object_types)
             for action in actions_of(object_type)]
    progress = Progress("Event Log window", unit="events")
    # ~90 small queries, most of them one empty page: a few at a time (the client keeps to
    # the endpoint group's rate limit)
    with ThreadPoolExecutor(max_workers=PAIR_WORKERS) as pool:
        read = sum(pool.map(lambda pair: _read_filtered(
            client, since, pair[1], sink, (pair[0] + 1) << PAIR_SHIFT, progress),
            enumerate(pairs)))
    progress.finish()
    return read


# Where Close refuses a query without filters, the newest event is looked for among these
# busy (object_type, action) pairs, two requests per worker: a bound from below (asking every
# pair, as a window read does, would cost ~90 requests a run).
BUSY_PAIRS = (("lead", "created"), ("lead", "updated"), ("contact", "updated"),
              ("opportunity", "updated"), ("activity.note", "created"),
              ("activity.email", "created"), ("activity.call", "created"),
              ("task.lead", "created"))


def newest_event(client: CloseClient) -> datetime | None:
    """When the newest event was updated (None: none there): one request where Close
    answers a query with no filter, else the newest of the `BUSY_PAIRS`."""
    try:
        return _newest(client, {})
    except ApiError as exc:
        if exc.status != 400:
            raise
    pairs = [{"object_type": object_type, "action": action} for object_type, action in BUSY_PAIRS]
    # one page of one event each: all at once, one round trip before the run can begin
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        found = [moment for moment in pool.map(lambda pair: _newest(client, pair), pairs)
                 if moment is not None]
    return max(found, default=None)


def _newest(client: CloseClient, filters: Mapping[str, str]) -> datetime | None:
    page = client.get(EVENT_PATH, {**filters, "_limit": 1}).get("data") or []
    return to_utc(page[0].get("date_updated") or page[0].get("date_created")) if page else None


PAIR_SHIFT = 32  # order = (pair + 1) << 32 | the event's place in the pair's answer


def _read_filtered(client: CloseClient, since: datetime, filters: Mapping[str, str],
                   sink: EventSink, first_order: int, progress: Progress) -> int:
    params: dict[str, Any] = {**filters, "_limit": PAGE_SIZE,
                              "date_updated__gte": _naive_utc(since)}
    order = first_order
    read = 0
    newest: datetime | None = None
    while True:
        body = client.get(EVENT_PATH, params)
        page = body.get("data") or []
        events = []
        for raw in page:
            event = Event.parse(raw)
            if event is not None and event.date_updated >= since:
                events.append((order, event))
            order += 1
        if events:
            sink(events)
        read += len(page)
        oldest = to_utc(page[-1].get("date_updated")) if page else None
        if newest is None and page:
            newest = to_utc(page[0].get("date_updated"))
        progress.advance(len(page), lambda oldest=oldest, newest=newest: _reached(
            oldest, newest, since, progress))
        cursor = body.get("cursor_next")
        if not cursor or not page or (oldest is not None and oldest < since):
            return read
        params = {**filters, "_limit": PAGE_SIZE, "_cursor": cursor}


def _reached(oldest: datetime | None, newest: datetime | None, since: datetime,
             progress: Progress) -> str:
    """How far back the read got; read newest first, the share of the window's time span
    covered gives an estimate of the time left (events are rarely spread evenly: a guide)."""
    if oldest is None:
        return ""
    said = f"back to {oldest:%Y-%m-%d %H:%M} (the window starts {since:%Y-%m-%d %H:%M})"
    if newest is None or newest <= since or oldest >= newest:
        return said
    share = min(1.0, (newest - oldest) / (newest - since))
    left = (progress.clock() - progress.started) * (1 - share) / share
    return f"{said}, {share:.0%} of its time span, about {duration(left)} left"


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
