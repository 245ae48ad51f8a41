"""Incremental runs: what changed in Close since each table's last sync, applied exactly
(Close API: Event Log).

One resource, `read_event_log`, reads the Event Log once per run, from the oldest window a
selected table needs (`read/event_log.py`), and serves every table kept current from it through a
resource of its own (`resources.table_resources`): leads, contacts, opportunities, tasks,
activities, sequence subscriptions (merged object by object, `read/change_set.py`); created
activities (by date); `lead_merges` with leads; the optional raw `events` table.

Each table's watermark (the greatest event `date_updated` seen, Close's clock, and when the
run began) is written to the source state, committed with the load: a run that dies leaves
the previous watermarks, and the next run re-applies the same window (merges are idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dlt
from dlt.extract.resource import DltResource

from close_source.api.client import CloseClient
from close_source.catalog import (
    BY_TABLE,
    EVENTS_TABLE,
    FIELD_CHANGES_TABLE,
    LEAD_MERGES_TABLE,
    Entry,
    child_table,
)
from close_source.errors import ApiError
from close_source.read.change_set import ChangeSet
from close_source.read.event_log import Event, newest_event, read_window
from close_source.read.window_store import WindowStore
from close_source.records import DELETED_AT, TOMBSTONE
from close_source.run import state as st
from close_source.run.context import RunContext, pipeline_directory
from close_source.run.history import history_rows
from close_source.run.plan import Plan
from close_source.run.postgres_copy import rows_file_format
from close_source.run.resources import (
    check_pipeline,
    save_names,
    selected_among,
    table_resources,
)
from close_source.shape.arrow_tables import on_bigquery
from close_source.shape.batcher import ArrowBatcher
from close_source.shape.descriptions import described, table_hints
from close_source.stages import TALLY, note
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

EVENT_LOG_READER = "read_event_log"
SKEW_WARNING = timedelta(minutes=1)


def event_log_resources(ctx: RunContext, plan: Plan) -> list[DltResource]:
    """The Event Log's reader and one resource per table it keeps current."""
    tables = plan.reading("events")

    def read() -> Iterator[object]:
        check_pipeline(ctx)
        chosen = selected_among(tables, EVENT_LOG_READER)
        if chosen:
            yield from _apply_window(ctx, plan, chosen)

    reader = dlt.resource(read, name=EVENT_LOG_READER, parallelized=True, selected=False)
    kept = [FIELD_CHANGES_TABLE] if ctx.settings.field_changes else []
    return [reader, *table_resources(reader, [*tables, *kept])]


def _apply_window(ctx: RunContext, plan: Plan, tables: list[str]) -> Iterator[object]:
    with WindowStore(pipeline_directory(), ctx.settings.window_memory_rows,
                     ctx.read.privacy) as store:
        yield from _apply(ctx, plan, tables, store)


def _apply(ctx: RunContext, plan: Plan, tables: list[str],
           store: WindowStore) -> Iterator[object]:
    windows = {table: plan.tables[table].since for table in tables}
    start = min(moment for moment in windows.values() if moment is not None)
    synced = [table for table in tables if table != EVENTS_TABLE]
    entries = [BY_TABLE[table] for table in synced]
    object_types = list(dict.fromkeys(event_types_for(entries)))
    read_window(ctx.client, start, object_types, store.add_events)
    store.events_read()
    note(log, "Event Log: %d events since %s", store.event_count(), start)
    newest = store.newest()
    now = max(filter(None, (ctx.started_at, newest)), default=datetime.now(UTC))
    source_state = dlt.current.source_state()
    renamed_at = {table: _renamed_at(source_state, plan, table, now) for table in synced}
    with closing(ArrowBatcher.for_entries(entries, mode="merge", custom=ctx.custom,
                                          soft_deletes=ctx.soft_deletes,
                                          scratch=pipeline_directory(),
                                          stored_columns=ctx.warehouse.columns,
                                          history=ctx.settings.history,
                                          dropped=ctx.read.privacy.dropped_tables)) as batcher:
        changes = ChangeSet(ctx.read, ctx.warehouse, store,
                            {t: windows[t] for t in synced if windows[t] is not None},
                            ctx.started_at, ctx.custom.changed_after, plan.renames, renamed_at,
                            ctx.references, plan.reread)
        changes.collect()
        yield from _rows(ctx, store, batcher)
        yield from history_rows(ctx, store, changes, batcher, synced)
        if "leads" in synced:
            yield from _lead_merges(e for e in store.events(object_type="lead", action="merged")
                                    if changes.applies("leads", e.date_updated))
        if EVENTS_TABLE in tables:
            yield from _events_table(store.events(since=windows[EVENTS_TABLE] or start))
        yield from batcher.flush()
        batcher.report_duplicates()
        for table in tables:
            before = st.watermark(source_state, table)
            reached = max(filter(None, (newest, before.newest_event if before else None)),
                          default=windows[table] or start)
            mark = before.advanced(reached, now) if before else st.Watermark(reached, now)
            st.save_watermark(source_state, [table], mark)
            if table in renamed_at:
                st.save_renamed_at(source_state, table, renamed_at[table], mark.window_start)
        save_names(ctx, synced)
        st.save_custom_columns(source_state, ctx.custom.mode, ctx.custom.frozen(synced))


def _rows(ctx: RunContext, store: WindowStore, batcher: ArrowBatcher) -> Iterator[object]:
    """Merge rows of the final states: upserts, then deletes (hard: dlt's hard-delete
    tombstones, child rows included; soft: the stored rows with `_deleted_at`)."""
    deleted: dict[str, list[str]] = {}
    for (table, object_id), obj in store.states():
        if obj is None:
            deleted.setdefault(table, []).append(object_id)
            continue
        yield from batcher.add_object(BY_TABLE[table], obj, ctx.custom)
    for table, object_ids in deleted.items():
        if not ctx.soft_deletes:
            TALLY.count_deleted(ctx.warehouse.count(table, BY_TABLE[table].primary_key[0],
                                                    object_ids))
            yield from _hard_deleted(batcher, BY_TABLE[table], object_ids)
            continue
        # the rows stay as they were, with `_deleted_at`; objects never loaded stay absent
        for row in ctx.warehouse.rows_where(table, "id", object_ids):
            if row.get(DELETED_AT) is None:
                TALLY.count_deleted(1)
                row[DELETED_AT] = store.deleted_at((table, str(row["id"])))
                yield from batcher.add(table, row)


def _hard_deleted(batcher: ArrowBatcher, entry: Entry,
                  object_ids: list[str]) -> Iterator[object]:
    for object_id in object_ids:
        yield from batcher.add(entry.table, {entry.primary_key[0]: object_id, TOMBSTONE: True})
        for list_name in entry.child_lists:
            yield from batcher.add(child_table(entry, list_name), {
                entry.child_key or "parent_id": object_id, TOMBSTONE: True})


def event_types_for(entries: Iterable[Entry]) -> Iterator[str]:
    """The Event Log types a run must read for these tables: their own, lead deletes and
    merges (every lead's rows go with it), and the renames of what their rows name."""
    yield "lead"
    for entry in entries:
        yield from entry.event_object_types
        for copy in entry.copies:
            if BY_TABLE[copy.source].incremental == "events":
                yield from BY_TABLE[copy.source].event_object_types


@dataclass(frozen=True)
class CloseTime:
    """Close's time as the run begins (`now`) and its Event Log's newest event then
    (`empty_log`: the log held none, or none of the busy types where only those were asked:
    replaying it from far back then costs no more than the rare events there are)."""

    now: datetime
    newest_event: datetime | None = None
    empty_log: bool = False

    @property
    def events_from(self) -> datetime | None:
        """Where a full read's re-scan may start: the newest event, or with none in the log
        the horizon (what the next window then reads is this run's events only)."""
        return self.now - st.HORIZON if self.empty_log else self.newest_event


def close_now(client: CloseClient, header: datetime | None, tables: Collection[str]) -> CloseTime:
    """Close's time as the run begins: the later of its `Date` header and its newest event.
    The two clocks can differ (its web front ends and its database): a header a month behind
    the events would hide a gap past the Event Log's 30 days, and a rename seen now must date
    after every snapshot already logged. The log is asked only when a selected table follows
    it (every other table is read in full and needs no clock)."""
    entries = [BY_TABLE[table] for table in tables if table in BY_TABLE
               and BY_TABLE[table].incremental != "every_run"]
    if not entries and EVENTS_TABLE not in tables:
        return CloseTime(header or datetime.now(UTC))
    failed = False
    try:
        newest = newest_event(client)
    except ApiError as exc:
        log.info("the Event Log's newest event could not be read (%s): Close's time is its "
                 "Date header", exc)
        newest, failed = None, True
    if header is not None and newest is not None and newest - header > SKEW_WARNING:
        log.warning("Close's Event Log times are %s ahead of its Date header; taking the "
                    "later as Close's time", newest - header)
    return CloseTime(max(filter(None, (header, newest)), default=datetime.now(UTC)), newest,
                     empty_log=newest is None and not failed)


def _renamed_at(source_state: st.State, plan: Plan, table: str,
                now: datetime) -> dict[str, datetime]:
    """Recent renames of what the table's rows name, those of this run included (now: an
    object renamed again dates from its latest rename, older snapshots carry older names)."""
    kept = st.renamed_at(source_state, table)
    for source, ids in plan.renames.get(table, {}).items():
        for object_id in ids:
            kept[f"{source}:{object_id}"] = now
    return kept


def _lead_merges(events: Iterable[Event]) -> Iterator[object]:
    """`lead_merges`: one row per merge, from the `merged` events' meta (Close API: Event Log,
    List of events)."""
    rows: dict[str, dict[str, object]] = {}
    for event in events:
        if event.object_type != "lead" or event.action != "merged":
            continue
        source = event.meta.get("merge_source_lead_id")
        if source:
            rows[str(source)] = {
                "source_lead_id": source,
                "destination_lead_id": event.meta.get("merge_destination_lead_id")
                or event.object_id,
                "date_merged": event.date_updated, "event_id": event.id}
    if rows:
        yield dlt.mark.with_hints(list(rows.values()), dlt.mark.make_hints(
            table_name=LEAD_MERGES_TABLE, primary_key="source_lead_id", write_disposition="merge",
            columns=described(LEAD_MERGES_TABLE, dict.fromkeys(next(iter(rows.values())), {})),
            file_format=rows_file_format(),
            additional_table_hints=table_hints(LEAD_MERGES_TABLE, on_bigquery())),
            create_table_variant=True)


EVENT_JSON_FIELDS = ("changed_fields", "data", "previous_data", "meta")
# the columns every event has (others, null in a window, may have no column yet)
EVENT_COLUMNS = ("id", "object_type", "object_id", "action", "date_created", "date_updated")
EVENT_ROWS = 1_000  # rows of the `events` table handed to dlt at a time


def _events_table(events: Iterable[Event]) -> Iterator[object]:
    """The window's raw events; consolidation rewrites an event, so they are merged on id."""
    columns = described(EVENTS_TABLE, {**{key: {} for key in EVENT_COLUMNS},
                                       **{key: {"data_type": "json"} for key in EVENT_JSON_FIELDS}})
    hints = dlt.mark.make_hints(table_name=EVENTS_TABLE, primary_key="id",
                                write_disposition="merge", columns=columns,
                                file_format=rows_file_format(),
                                additional_table_hints=table_hints(EVENTS_TABLE, on_bigquery()))
    rows = []
    for event in events:
        row = {key: value for key, value in event.raw.items() if key not in EVENT_JSON_FIELDS}
        row.update({key: event.raw.get(key) for key in EVENT_JSON_FIELDS})
        row["date_updated"] = event.date_updated
        row["date_created"] = to_utc(event.raw.get("date_created"))
        rows.append(row)
        if len(rows) == EVENT_ROWS:
            yield dlt.mark.with_hints(rows, hints, create_table_variant=True)
            rows = []
    if rows:
        yield dlt.mark.with_hints(rows, hints, create_table_variant=True)
