"""Incremental runs: what changed in Close since the last run, applied exactly (reference §3.7).

- Tables driven by events (leads, contacts, opportunities, tasks, activities) are merged from one
  Event Log window (`event_log.py`), applied object by object (`change_set.py`); `lead_merges`
  records each merge; the optional `events` table keeps the raw events.
- Tables without events, and small ones, are read again in full (replace); created activities,
  which are never edited and have no events, are read from the window start on.
- A custom field change that alters stored values without row events (a field deleted, its type
  or multiplicity changed, its choices renamed) re-reads the tables of that object type in full.

The watermark (greatest event `date_updated` seen, Close's clock) and the time the window was
read up to are written to the source state, committed with the load: a run that dies leaves the
previous watermark, and the next run re-applies the same window (merges are idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from close_source.arrow_tables import ArrowBatcher
from close_source.catalog import BY_TABLE, CATALOG
from close_source.change_set import RELABEL_EVENT_TYPES, ChangeSet
from close_source.event_log import RESCAN, Event, read_window
from close_source.lists import ReadContext
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

STATE_KEY = "events"
STATE_VERSION = 1
HORIZON = timedelta(days=29)  # the Event Log keeps 30 days [003:8105]
LEAD_MERGES = "lead_merges"
EVENTS_TABLE = "events"  # optional: `tables=[..., "events"]`


@dataclass(frozen=True)
class Watermark:
    """Where the Event Log was read to: the newest event seen, and the run's start."""

    newest_event: datetime
    read_until: datetime

    @property
    def window_start(self) -> datetime:
        return self.newest_event - RESCAN

    def to_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "newest_event": self.newest_event.isoformat(),
                "read_until": self.read_until.isoformat()}

    @classmethod
    def from_state(cls, kept: Any) -> Watermark | None:
        if not isinstance(kept, dict) or kept.get("version") != STATE_VERSION:
            return None
        return cls(datetime.fromisoformat(kept["newest_event"]),
                   datetime.fromisoformat(kept["read_until"]))

    def too_old(self, now: datetime) -> bool:
        return now - self.read_until > HORIZON


def save_watermark(watermark: Watermark) -> None:
    dlt.current.source_state()[STATE_KEY] = watermark.to_state()


# ---- the events resource --------------------------------------------------------------------


def changes_resource(ctx: ReadContext, tables: list[str], watermark: Watermark,
                     with_events_table: bool = False) -> DltResource:
    """Every event-driven table named in `tables`, merged from one Event Log window; with
    `with_events_table`, the raw events too (table `events`, merged on event id)."""
    entries = [BY_TABLE[t] for t in tables]
    object_types = [t for e in entries for t in e.event_object_types]
    object_types += ["lead", *RELABEL_EVENT_TYPES]

    def read() -> Iterator[object]:
        events = read_window(ctx.client, watermark.window_start, object_types)
        log.info("Event Log: %d events since %s", len(events), watermark.window_start)
        batcher = ArrowBatcher.for_entries(entries, mode="merge", custom=ctx.custom,
                                           soft_deletes=ctx.soft_deletes)
        changes = ChangeSet(ctx, set(tables), watermark.window_start)
        changes.collect(events)
        yield from changes.rows(batcher)
        yield from _lead_merges(events)
        if with_events_table:
            yield from _events_table(events)
        yield from batcher.flush()
        newest = max((e.date_updated for e in events), default=watermark.newest_event)
        save_watermark(Watermark(max(newest, watermark.newest_event),
                                 ctx.started_at or watermark.read_until))
        if ctx.custom is not None:
            ctx.custom.save(dlt.current.source_state())

    return dlt.resource(read, name="changes", parallelized=True)


def _lead_merges(events: Iterable[Event]) -> Iterator[object]:
    """`lead_merges`: one row per merge, from the `merged` events' meta [003:8180-8187]."""
    rows = []
    for event in events:
        if event.object_type != "lead" or event.action != "merged":
            continue
        source = event.meta.get("merge_source_lead_id")
        if source:
            rows.append({"source_lead_id": source,
                         "destination_lead_id": event.meta.get("merge_destination_lead_id")
                         or event.object_id,
                         "date_merged": event.date_updated, "event_id": event.id})
    if rows:
        yield dlt.mark.with_hints(rows, dlt.mark.make_hints(
            table_name=LEAD_MERGES, primary_key="source_lead_id", write_disposition="merge"),
            create_table_variant=True)


EVENT_JSON_FIELDS = ("changed_fields", "data", "previous_data", "meta")


def _events_table(events: list[Event]) -> Iterator[object]:
    """The window's raw events; consolidation rewrites an event, so they are merged on id."""
    if not events:
        return
    rows = []
    for event in events:
        row = {key: value for key, value in event.raw.items() if key not in EVENT_JSON_FIELDS}
        row.update({key: event.raw.get(key) for key in EVENT_JSON_FIELDS})
        row["date_updated"] = event.date_updated
        row["date_created"] = to_utc(event.raw.get("date_created"))
        rows.append(row)
    columns = {key: {"name": key, "data_type": "json"} for key in EVENT_JSON_FIELDS}
    yield dlt.mark.with_hints(rows, dlt.mark.make_hints(
        table_name=EVENTS_TABLE, primary_key="id", write_disposition="merge",
        columns=columns), create_table_variant=True)  # type: ignore[arg-type]


# ---- planning -----------------------------------------------------------------------


def incremental_resources(ctx: ReadContext, selected: list[str],
                          watermark: Watermark) -> list[DltResource]:
    """The resources of an incremental run over `selected` tables."""
    from close_source.resources import list_resource

    stale = ctx.custom.stale_tables if ctx.custom is not None else set()
    for table in sorted(stale & set(selected)):
        log.info("%s: custom field definitions changed how stored values look; re-reading "
                 "the table in full", table)
    with_events = EVENTS_TABLE in selected
    selected = [t for t in selected if t != EVENTS_TABLE]
    by_events = [t for t in selected if BY_TABLE[t].incremental != "refresh" and t not in stale]
    resources = [changes_resource(ctx, by_events, watermark, with_events)] \
        if by_events or with_events else []
    for table in selected:
        if BY_TABLE[table].incremental == "refresh" or table in stale:
            resources.append(list_resource(ctx, BY_TABLE[table]))
    return resources


def covers_every_event_table(selected: Iterable[str]) -> bool:
    """Only a run over every event-driven table may move the shared watermark."""
    return {e.table for e in CATALOG if e.incremental != "refresh"} <= set(selected)
