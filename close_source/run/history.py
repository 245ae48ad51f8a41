"""History from the Event Log window a run applies: `field_changes` rows and versions.

Nothing here asks Close for more: the events are those the run reads anyway (`incremental.py`).

- `field_changes` (on unless `field_changes = false`): a row per changed field per event that
  is new to its table (`shape/field_changes.py`), merged on (event_id, field), so a replayed
  window or a consolidated event Close rewrote updates its rows instead of adding any.
- versions (`history = [...]`): per object the window changed, one version per event whose
  `data` shows the object as it became, at the event's time; the object's final state (as the
  main table gets it) is its last version, at its `date_updated`. A delete ends the last
  version (`_valid_to` the delete's time, `_deleted` true), in the window or stored. The
  versions before are closed after the load (`run/history_settle.py`): each ends where the next
  begins.

Memory: the window's events are paged from the window store; held here are the keys of the
versions written (so one load never carries a key twice) and the history tables' deleted ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from close_source.catalog import BY_TABLE, FIELD_CHANGES_TABLE, history_table
from close_source.read.change_set import ChangeSet, route
from close_source.read.event_log import Event
from close_source.read.window_store import Key, WindowStore
from close_source.records import TOMBSTONE
from close_source.run.context import RunContext
from close_source.run.resources import check_pipeline
from close_source.shape.arrow_tables import empty_table
from close_source.shape.batcher import ArrowBatcher
from close_source.shape.field_changes import field_change_rows, field_changes_spec
from close_source.shape.versions import VALID_TO, first_seen, root_row, version_of


def history_rows(ctx: RunContext, store: WindowStore, changes: ChangeSet,
                 batcher: ArrowBatcher, tables: list[str]) -> Iterator[object]:
    """Every history row of the window, into the batcher (whose specs include the history
    tables of `tables`)."""
    versioned = {table for table in tables if table in ctx.settings.history}
    if ctx.settings.field_changes:
        batcher.specs.setdefault(FIELD_CHANGES_TABLE, field_changes_spec())
        yield from _field_changes(ctx, store, changes, batcher, tables)
    if versioned:
        yield from _Versions(ctx, store, changes, batcher, versioned).rows()


def field_changes_table(ctx: RunContext) -> DltResource:
    """`field_changes` on a run that reads no Event Log (a first load): made, empty, where
    the destination lacks it, so that it is there to query from the first load on."""

    def declare() -> Iterator[object]:
        check_pipeline(ctx)
        if ctx.warehouse.columns(FIELD_CHANGES_TABLE) is None:
            spec = field_changes_spec()
            empty = empty_table(spec)
            yield dlt.mark.with_hints(empty, spec.hints(empty.column_names, "merge"),
                                      create_table_variant=True)

    return dlt.resource(declare, name=FIELD_CHANGES_TABLE)


def _applying(store: WindowStore, changes: ChangeSet, tables: set[str] | list[str]
              ) -> Iterator[tuple[str, Event]]:
    """(table, event) for each event new to a table of `tables`, oldest first."""
    for event in store.events():
        entry = route(event.object_type)
        if entry is not None and entry.table in tables and \
                changes.applies(entry.table, event.date_updated):
            yield entry.table, event


def _field_changes(ctx: RunContext, store: WindowStore, changes: ChangeSet,
                   batcher: ArrowBatcher, tables: list[str]) -> Iterator[object]:
    for table, event in _applying(store, changes, tables):
        for row in field_change_rows(BY_TABLE[table], event, ctx.custom,
                                     ctx.read.privacy.keeps_change):
            yield from batcher.add(FIELD_CHANGES_TABLE, row)


class _Versions:
    def __init__(self, ctx: RunContext, store: WindowStore, changes: ChangeSet,
                 batcher: ArrowBatcher, tables: set[str]) -> None:
        self.ctx, self.store, self.changes, self.batcher = ctx, store, changes, batcher
        self.tables = tables
        self.written: set[tuple[str, str, datetime]] = set()

    def rows(self) -> Iterator[object]:
        last_event: dict[Key, str] = {}  # each object's last event
        shown_last: dict[Key, str] = {}  # each object's last event with its data
        last_at: dict[tuple[Key, datetime], str] = {}  # of events at one time, the last wins
        for table, event in _applying(self.store, self.changes, self.tables):
            key = (table, event.object_id)
            last_event[key] = event.id
            if event.data is not None and event.action != "deleted":
                shown_last[key] = last_at[(key, event.date_updated)] = event.id
        deleted: dict[Key, datetime | None] = {}
        for key, state in self.store.states():  # final states first: they win a shared key
            if key[0] not in self.tables:
                continue
            if state is None:
                deleted[key] = self.store.deleted_at(key)
            elif (since := first_seen(state)) is not None:
                yield from self._version(key[0], state, since, last_event.get(key))
        for table, event in _applying(self.store, self.changes, self.tables):
            key = (table, event.object_id)
            if last_at.get((key, event.date_updated)) != event.id or \
                    (last_event[key] == event.id and key not in deleted):
                continue  # a later event shows it, or the final state stands for it
            assert event.data is not None
            if key in deleted and shown_last[key] == event.id:  # the delete ends it
                yield from self._version(table, event.data, event.date_updated, event.id,
                                         deleted[key] or event.date_updated, True)
            else:
                yield from self._version(table, event.data, event.date_updated, event.id)
        yield from self._close_stored({key: when for key, when in deleted.items()
                                       if key not in shown_last})

    def _version(self, table: str, obj: Mapping[str, Any], since: datetime, event_id: str | None,
                 until: datetime | None = None, deleted: bool = False) -> Iterator[object]:
        entry = BY_TABLE[table]
        row = root_row(entry, obj, self.ctx.custom)
        mark = (table, str(row.get("id")), since)
        if mark in self.written:
            return
        self.written.add(mark)
        yield from self.batcher.add(history_table(table),
                                    version_of(row, since, event_id, until, deleted))

    def _close_stored(self, deleted: dict[Key, datetime | None]) -> Iterator[object]:
        """Objects deleted with no version in the window: their stored open version ends."""
        by_table: dict[str, dict[str, datetime | None]] = {}
        for (table, object_id), when in deleted.items():
            by_table.setdefault(table, {})[object_id] = when
        for table, ids in by_table.items():
            name = history_table(table)
            for row in self.ctx.warehouse.rows_where(name, "id", list(ids)):
                when = ids.get(str(row.get("id"))) or self.ctx.started_at
                if row.get(VALID_TO) is None and when is not None:
                    row[VALID_TO], row[TOMBSTONE] = when, True
                    yield from self.batcher.add(name, row)
