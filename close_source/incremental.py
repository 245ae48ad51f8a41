"""Incremental runs: what changed in Close since the last run, applied exactly (reference §3.7).

- Tables driven by events (leads, contacts, opportunities, tasks, activities) are merged from one
  Event Log window: per object the latest event decides; an upsert takes the event's `data`, or
  the object fetched by id when `data` is missing (non-admin keys, old events), a 404 meaning
  deleted; a delete removes the row (a dlt hard delete) and its child rows.
- A deleted or merged-away lead's other rows (contacts, activities, ... still naming it in the
  warehouse and not covered by an event of the window) are fetched by id: moved ones are
  updated, gone ones removed. `lead_merges` records each merge.
- Tables without events, and small ones, are read again in full (replace); created activities,
  which are never edited and have no events, are read from the watermark on.
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
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.extract.resource import DltResource

from close_source.arrow_tables import ArrowBatcher
from close_source.catalog import BY_TABLE, CATALOG, Entry
from close_source.errors import AccessDenied
from close_source.event_log import RESCAN, Event, ObjectChange, latest_per_object, read_window
from close_source.lists import ReadContext, read_windows_since
from close_source.shaping import TOMBSTONE, child_table, shape
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

STATE_KEY = "events"
STATE_VERSION = 1
HORIZON = timedelta(days=29)  # the Event Log keeps 30 days [003:8105]
LEAD_MERGES = "lead_merges"
EVENTS_TABLE = "events"  # optional: `tables=[..., "events"]`
CHILDREN_OF_LEADS = tuple(e for e in CATALOG if e.incremental != "refresh" and e.table != "leads")


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


def route(object_type: str) -> Entry | None:
    """The catalog entry an event's `object_type` belongs to (`task.lead` -> tasks)."""
    for entry in CATALOG:
        for pattern in entry.event_object_types:
            if pattern == object_type or (pattern.endswith(".*") and
                                          object_type.startswith(pattern[:-1])):
                return entry
    return None


# ---- the events resource --------------------------------------------------------------------


def changes_resource(ctx: ReadContext, tables: list[str], watermark: Watermark,
                     with_events_table: bool = False) -> DltResource:
    """Every event-driven table named in `tables`, merged from one Event Log window; with
    `with_events_table`, the raw events too (table `events`, merged on event id)."""
    entries = [BY_TABLE[t] for t in tables]

    def read() -> Iterator[object]:
        events = read_window(ctx.client, watermark.window_start,
                             [t for e in entries for t in e.event_object_types] + ["lead"])
        log.info("Event Log: %d events since %s", len(events), watermark.window_start)
        batcher = ArrowBatcher.for_entries(entries, mode="merge", custom=ctx.custom)
        applier = _Applier(ctx, {e.table for e in entries}, batcher)
        yield from applier.apply(latest_per_object(events), watermark.window_start)
        yield from applier.merges(events)
        if with_events_table:
            yield from _events_table(events)
        yield from batcher.flush()
        newest = max((e.date_updated for e in events), default=watermark.newest_event)
        save_watermark(Watermark(max(newest, watermark.newest_event),
                                 ctx.started_at or watermark.read_until))
        if ctx.custom is not None:
            ctx.custom.save(dlt.current.source_state())

    return dlt.resource(read, name="changes", parallelized=True)


class _Applier:
    """The window's changes -> one final state per object -> merge rows.

    Each object ends with exactly one row (or one delete) per load: dlt's delete-insert merge
    keeps an arbitrary copy of duplicated keys, and a child table would get both copies.
    """

    def __init__(self, ctx: ReadContext, tables: set[str], batcher: ArrowBatcher) -> None:
        self.ctx, self.tables, self.batcher = ctx, tables, batcher
        self._unknown: set[str] = set()
        # (table, id) -> the object's final state (None: deleted), and whether it was re-read
        self.final: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.refetched: set[tuple[str, str]] = set()

    def apply(self, changes: list[ObjectChange], since: datetime) -> Iterator[object]:
        refetch: dict[str, list[str]] = {}
        gone_leads: list[str] = []
        for change in changes:
            entry = route(change.object_type)
            if entry is None:
                if change.object_type not in self._unknown:
                    self._unknown.add(change.object_type)
                    log.info("Event Log: %r events are not synced; skipped", change.object_type)
                continue
            if entry.table not in self.tables:
                continue
            if change.deleted:
                self.final[(entry.table, change.object_id)] = None
                if entry.table == "leads":
                    gone_leads.append(change.object_id)
            elif change.event.data is not None and change.event.action != "merged":
                obj = dict(change.event.data)
                if entry.table != "leads" and change.event.lead_id:
                    obj.setdefault("lead_id", change.event.lead_id)
                self.final[(entry.table, change.object_id)] = obj
            else:
                refetch.setdefault(entry.table, []).append(change.object_id)
        for table, object_ids in refetch.items():
            self._refetch(BY_TABLE[table], object_ids)
        self._sweep(gone_leads)
        self._silent_changes(changes, set(gone_leads))
        self._created_since(since)
        yield from self._emit()

    def _created_since(self, since: datetime) -> None:
        """Tables without events whose rows are never edited: the ones created since."""
        for table in sorted(self.tables):
            entry = BY_TABLE[table]
            if entry.incremental != "created_since":
                continue
            for page in read_windows_since(self.ctx, entry, since):
                for obj in page:
                    self.final.setdefault((table, str(obj["id"])), obj)

    def _emit(self) -> Iterator[object]:
        for (table, object_id), obj in self.final.items():
            entry = BY_TABLE[table]
            if obj is None:
                yield from self.batcher.add(table, {entry.primary_key[0]: object_id,
                                                    TOMBSTONE: True})
                for list_name in entry.child_lists:
                    yield from self.batcher.add(child_table(entry, list_name), {
                        entry.child_key or "parent_id": object_id, TOMBSTONE: True})
                continue
            for shaped_table, row in shape(entry, obj, self.ctx.custom):
                yield from self.batcher.add(shaped_table, row)

    def _silent_changes(self, changes: list[ObjectChange], gone: set[str]) -> None:
        """What Close changes without an event of its own, re-read by id:

        - a lead's `date_updated` moves when its contacts, opportunities, tasks or activities
          change, with no `lead.updated` [003:8174-8175];
        - names copied into other rows (`lead_name` on opportunities and tasks,
          `contact_name` on tasks, `status_label` on leads and opportunities) follow a rename
          with no event on those rows.
        """
        lead_seen: dict[str, datetime] = {}
        child_seen: dict[str, datetime] = {}
        relabel: dict[tuple[str, str], list[str]] = {}
        for change in changes:
            event = change.event
            entry = route(change.object_type)
            if entry is None:
                continue
            if entry.table == "leads":
                lead_seen[change.object_id] = event.date_updated
            elif event.lead_id and entry.incremental == "events":
                child_seen[event.lead_id] = max(event.date_updated,
                                                child_seen.get(event.lead_id, event.date_updated))
            if not (event.action == "updated" and _renamed(event)):
                continue
            if entry.table == "leads":
                for table in ("opportunities", "tasks"):
                    relabel.setdefault((table, "lead_id"), []).append(change.object_id)
            elif entry.table == "contacts":
                relabel.setdefault(("tasks", "contact_id"), []).append(change.object_id)
            elif entry.table in ("lead_statuses", "opportunity_statuses"):
                table = "leads" if entry.table == "lead_statuses" else "opportunities"
                relabel.setdefault((table, "status_id"), []).append(change.object_id)
        if "leads" in self.tables:
            self._refetch(BY_TABLE["leads"], [
                lead_id for lead_id, moment in child_seen.items()
                if lead_id not in gone and lead_seen.get(lead_id, moment) <= moment])
        for (table, column), values in relabel.items():
            if table in self.tables:
                ids = _warehouse_ids(table, values, column)
                ids += [object_id for (t, object_id), obj in self.final.items()
                        if t == table and obj is not None and obj.get(column) in values]
                if ids:
                    log.info("%s: %d rows re-read after a rename", table, len(set(ids)))
                    self._refetch(BY_TABLE[table], ids)

    def _refetch(self, entry: Entry, object_ids: Iterable[str]) -> None:
        """By id, the object as Close shows it now; a 404 means deleted."""
        params = {"_fields": ",".join(entry.fields)} if entry.fields else {}
        for object_id in object_ids:
            key = (entry.table, object_id)
            if key in self.refetched or (key in self.final and self.final[key] is None):
                continue
            self.refetched.add(key)
            try:
                self.final[key] = self.ctx.client.get(f"{entry.path}{object_id}/", params)
            except AccessDenied as exc:
                if exc.status != 404:
                    raise
                self.final[key] = None

    def _sweep(self, gone_leads: list[str]) -> None:
        """Rows of deleted or merged-away leads that no event of the window covered."""
        if not gone_leads:
            return
        for entry in CHILDREN_OF_LEADS:
            if entry.table not in self.tables:
                continue
            stragglers = [object_id for object_id in _warehouse_ids(entry.table, gone_leads)
                          if (entry.table, object_id) not in self.final]
            if stragglers:
                log.info("%s: %d rows of deleted or merged leads checked by id",
                         entry.table, len(stragglers))
                self._refetch(entry, stragglers)

    def merges(self, events: Iterable[Event]) -> Iterator[object]:
        """`lead_merges`: one row per merge, from the `merged` events' meta."""
        for event in events:
            if event.object_type != "lead" or event.action != "merged":
                continue
            source = event.meta.get("merge_source_lead_id")
            destination = event.meta.get("merge_destination_lead_id") or event.object_id
            if source:
                yield dlt.mark.with_hints(
                    [{"source_lead_id": source, "destination_lead_id": destination,
                      "date_merged": event.date_updated, "event_id": event.id}],
                    dlt.mark.make_hints(table_name=LEAD_MERGES, primary_key="source_lead_id",
                                        write_disposition="merge"),
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


def _warehouse_ids(table: str, values: list[str], column: str = "lead_id") -> list[str]:
    """Ids of `table` rows whose `column` is one of `values` (already in the destination)."""
    try:
        pipeline = dlt.current.pipeline()
        with pipeline.sql_client() as client:
            if not client.has_dataset():
                return []
            name = client.make_qualified_table_name(table)
            placeholders = ", ".join(["%s"] * len(values))
            rows = client.execute_sql(
                f"SELECT id FROM {name} WHERE {column} IN ({placeholders})", *values)
    except DatabaseUndefinedRelation:
        return []
    return [str(row[0]) for row in rows or []]


RENAMING_FIELDS = {"name", "display_name", "label"}


def _renamed(event: Event) -> bool:
    changed = event.raw.get("changed_fields")
    if not isinstance(changed, list):
        return True  # not said: assume the worst
    return bool(RENAMING_FIELDS & set(changed))


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
