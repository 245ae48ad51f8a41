"""Shaped rows -> Arrow tables per table, each object once per table: rows are turned into
Arrow 1,000 at a time, and handed to dlt in items as large as a small memory budget allows."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa

from close_source.catalog import Entry, history_table
from close_source.key_set import KeySet
from close_source.records import TOMBSTONE, Row
from close_source.shape.arrow_tables import (
    FROM_DLT,
    Columns,
    TableSpec,
    WriteMode,
    empty_table,
    json_data_type,
    table_specs,
    to_arrow,
)
from close_source.shape.custom_columns import CustomColumns
from close_source.shape.rows import shape
from close_source.shape.versions import first_seen, history_spec, version_of
from close_source.stages import TALLY

log = logging.getLogger(__name__)


class HeldBudget:
    """Arrow data held back by every batcher of the process at once. A full load reads its
    list-endpoint tables in parallel (dlt's extract workers), each table with a batcher of its
    own, while the export's batcher fills: a budget per batcher would hold it that many times
    over (bench/whole_run.py)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def change(self, size: int) -> None:
        with self._lock:
            self._held += size

    @property
    def held(self) -> int:
        return self._held

    def exceeded(self) -> bool:
        return self._held > self.limit


# Arrow data held back to make larger items, across batchers: 8 MB, not 16, took a whole run's
# peak at 100,000 leads from 406 to 391 MB, the extract no slower (bench/WHOLE_RUN.md)
HELD = HeldBudget(8 << 20)


@dataclass
class ArrowBatcher:
    """Collects rows per table and hands them out as typed Arrow tables with their hints."""

    specs: dict[str, TableSpec]
    mode: WriteMode = "replace"
    batch_rows: int = 1_000
    _pending: dict[str, Columns] = field(default_factory=dict)
    _sent_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _complete: set[str] = field(default_factory=set)
    _schema_loaded: set[str] = field(default_factory=set)
    _children: dict[str, list[str]] = field(default_factory=dict)
    json_type: str = field(default_factory=lambda: json_data_type())
    block_objects: int = 256
    scratch: Path | None = None  # where the key sets of big tables go (the pipeline's dir)
    budget: HeldBudget = HELD  # what every batcher's held data may reach
    held_rows: int = 50_000  # rows of one item, at most
    # per root table, the keys of the objects added: one row per key, whatever Close returns
    seen: dict[str, KeySet] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    # objects waiting for their keys to be checked, a block at a time, per entry
    _blocks: dict[str, tuple[Entry, CustomColumns | None, list[dict[str, Any]]]] = field(
        default_factory=dict)
    _held: dict[str, list[pa.Table]] = field(default_factory=dict)
    _held_size: dict[str, int] = field(default_factory=dict)
    # the columns the destination has of a table (None: it has no such table); without it,
    # what dlt's schema says was loaded
    stored_columns: Callable[[str], Collection[str] | None] | None = None
    # tables read in full whose rows are also versions in `<table>_history`
    versioned: frozenset[str] = frozenset()
    # child tables never written: their lists are excluded (`exclude_columns`)
    dropped: frozenset[str] = frozenset()

    @classmethod
    def for_entries(cls, entries: Iterable[Entry], mode: WriteMode = "replace",
                    batch_rows: int = 1_000, custom: CustomColumns | None = None,
                    soft_deletes: bool = False, scratch: Path | None = None,
                    stored_columns: Callable[[str], Collection[str] | None] | None = None,
                    history: Collection[str] = (),
                    dropped: frozenset[str] = frozenset()) -> ArrowBatcher:
        """`history`: tables that keep versions (their `<table>_history` tables get specs;
        in a replacing batcher, every row read is also a version)."""
        specs: dict[str, TableSpec] = {}
        children: dict[str, list[str]] = {}
        for entry in entries:
            entry_specs = [spec for spec in table_specs(entry, custom, soft_deletes)
                           if spec.name not in dropped]
            specs.update({spec.name: spec for spec in entry_specs})
            children[entry.table] = [spec.name for spec in entry_specs]
            if entry.table in history:
                versions = history_spec(entry, custom, soft_deletes)
                specs[versions.name] = versions
                if mode == "replace":  # made with its table, even when Close has no object
                    children[entry.table].append(versions.name)
        versioned = frozenset(history) & set(children) if mode == "replace" else frozenset()
        return cls(specs, mode, batch_rows, _children=children, scratch=scratch,
                   stored_columns=stored_columns, versioned=versioned, dropped=dropped)

    def add_object(self, entry: Entry, obj: dict[str, Any],
                   custom: CustomColumns | None) -> Iterator[Any]:
        """Shape and queue one API object, unless an object with its key was added already.

        A server may ignore a filter that splits a read, or shift pages while they are read:
        whatever it returns, a table gets one row per key. The first copy is kept; on a full
        load a later change to the object is replayed from the Event Log by the next run (T0
        precedes every read), and in incremental runs the change set holds one state per key.
        Keys are checked a block of objects at a time (`key_set.py`).
        """
        block = self._blocks.get(entry.table)
        if block is None:
            block = self._blocks[entry.table] = (entry, custom, [])
        block[2].append(obj)
        if len(block[2]) >= self.block_objects:
            yield from self._shape_block(entry.table)

    def drain(self) -> Iterator[Any]:
        """Shape every object still waiting for its key check."""
        for table in list(self._blocks):
            yield from self._shape_block(table)

    def _shape_block(self, table: str) -> Iterator[Any]:
        entry, custom, objects = self._blocks.pop(table)
        seen = self.seen.get(table)
        if seen is None:
            seen = self.seen[table] = KeySet(self.scratch)
        fresh = seen.add_new([object_key(entry, obj) for obj in objects])
        for obj, new in zip(objects, fresh, strict=True):
            if not new:
                self.duplicates[table] = self.duplicates.get(table, 0) + 1
                continue
            for shaped_table, row in shape(entry, obj, custom):
                yield from self.add(shaped_table, row)
                if shaped_table in self.versioned and (since := first_seen(row)) is not None:
                    yield from self.add(history_table(shaped_table), version_of(row, since))

    def unseen(self, table: str, keys: list[Any]) -> list[Any]:
        """Of these keys, those no object added to the table had (after `drain`)."""
        seen = self.seen.get(table)
        if seen is None:
            return keys
        return [key for key, known in zip(keys, seen.contains(keys), strict=True) if not known]

    def report_duplicates(self) -> None:
        """One warning per table that Close sent the same object more than once."""
        for table, count in sorted(self.duplicates.items()):
            log.warning("%s: Close returned %d object(s) more than once (an ignored filter or "
                        "pages that shifted while read); one row per key kept", table, count)
        self.duplicates.clear()

    def add(self, table: str, row: Row) -> Iterator[Any]:
        """Queue a row; yields a table's Arrow batch when it is full."""
        if table in self.dropped:
            return
        spec = self.specs.get(table)
        if (spec is None or spec.hard_deletes) and self.mode == "replace" and \
                row.get(TOMBSTONE):
            return  # a replaced table holds only what this load brings
        if spec is not None and spec.hard_deletes and row.get(TOMBSTONE):
            TALLY.tombstone(table)
        columns = self._pending.get(table)
        if columns is None:
            columns = self._pending[table] = Columns()
        columns.append(row)
        if columns.rows >= self.batch_rows:
            yield from self._flush(table)

    def completed(self, entry_table: str) -> None:
        """The entry was read to the end: its tables are replaced even when nothing came."""
        self._complete.update(self._children.get(entry_table, ()))

    def is_complete(self, entry_table: str) -> bool:
        return entry_table in self._complete

    def flush(self) -> Iterator[Any]:
        yield from self.drain()
        for table in list(self._pending):
            if self._pending[table].rows:
                yield from self._flush(table)
        for table in list(self._held):
            yield self._release(table)
        for table in self._to_declare():
            spec = self.specs[table]
            # with the columns whose types are known (its key among them): dlt makes no
            # table of an item without columns, and a replace of a table never made fails
            empty = empty_table(spec)
            yield dlt.mark.with_hints(empty, spec.hints(empty.column_names, self.mode,
                                                        self.json_type),
                                      create_table_variant=True)

    def _to_declare(self) -> list[str]:
        """Tables that get an item without rows: a replaced table read to the end, so it is
        emptied even when nothing came; and a table whose destination lacks a declared column
        (a custom field created since it was loaded, or mid-run), which dlt adds to a table
        only when a load package has a job for it. Merged, the empty job changes no row."""
        tables = self._complete if self.mode == "replace" else set(self.specs)
        return sorted(table for table in tables
                      if (self.mode == "replace" and table not in self._sent_columns)
                      or self._lacks_declared(self.specs[table]))

    def close(self) -> None:
        """The key sets' files go (after `flush` and whatever needed `unseen`), and what a
        read that failed still held leaves the budget."""
        for keys in self.seen.values():
            keys.close()
        self.budget.change(-sum(self._held_size.values()))
        self._held.clear()
        self._held_size.clear()

    def _flush(self, table: str) -> Iterator[Any]:
        """The table's rows become an Arrow batch, held back with the table's earlier ones:
        dlt's extract costs ~7 ms an item whatever its size (bench/), so items are made as
        large as the budget of Arrow data held by all batchers allows (`held_rows` at most)."""
        columns = self._pending.pop(table)
        spec = self.specs[table]
        self._load_destination_types(spec)
        batch = to_arrow(spec, columns)
        self._held.setdefault(table, []).append(batch)
        self._held_size[table] = self._held_size.get(table, 0) + batch.nbytes
        self.budget.change(batch.nbytes)
        if sum(len(held) for held in self._held[table]) >= self.held_rows:
            yield self._release(table)
        # over the budget, a batcher hands out its own largest (it can hand out no other's)
        while self._held and self.budget.exceeded():
            yield self._release(max(self._held_size, key=self._held_size.__getitem__))

    def _release(self, table: str) -> Any:
        held = self._held.pop(table)
        self.budget.change(-self._held_size.pop(table))
        arrow_table = held[0] if len(held) == 1 else \
            pa.concat_tables(held, promote_options="default")
        spec = self.specs[table]
        names = tuple(name for name in arrow_table.column_names
                      if name != TOMBSTONE or not spec.hard_deletes)
        if self._sent_columns.get(table) == names:
            return dlt.mark.with_table_name(arrow_table, table)
        self._sent_columns[table] = names
        return dlt.mark.with_hints(arrow_table, spec.hints(names, self.mode, self.json_type),
                                   create_table_variant=True)

    def _lacks_declared(self, spec: TableSpec) -> bool:
        """Whether a declared column is neither in the table's last item nor in the table the
        destination has (or, not knowing it, the one dlt's schema says was loaded)."""
        declared = spec.declared_types()
        sent = self._sent_columns.get(spec.name)
        if self.stored_columns is not None:
            stored = self.stored_columns(spec.name)
        else:
            stored = (table or {}).get("columns", {}) if (table := _loaded_table(spec.name)) \
                else None
        if not declared or (sent is None and stored is None):
            return False  # nothing declared, or no table to add columns to
        known = {*(sent or ()), *(stored or ())}
        return any(name not in known for name in declared)

    def _load_destination_types(self, spec: TableSpec) -> None:
        """Types of earlier runs win over inference, so a column never changes type."""
        if spec.name in self._schema_loaded:
            return
        self._schema_loaded.add(spec.name)
        table = _loaded_table(spec.name)
        for name, column in (table or {}).get("columns", {}).items():
            column_type = FROM_DLT.get(column.get("data_type", ""))
            if column_type and not name.startswith("_dlt"):
                spec.types.setdefault(name, column_type)


def _loaded_table(name: str) -> dict[str, Any] | None:
    """The table as dlt's schema knows it from earlier loads (None outside a pipeline)."""
    try:
        schema = dlt.current.source_schema()
    except Exception:  # noqa: BLE001 - outside a pipeline (unit tests): nothing loaded
        return None
    return schema.tables.get(name)  # type: ignore[return-value]


def object_key(entry: Entry, obj: dict[str, Any]) -> Any:
    if len(entry.primary_key) == 1:
        return obj.get(entry.primary_key[0])
    return tuple(obj.get(name) for name in entry.primary_key)
