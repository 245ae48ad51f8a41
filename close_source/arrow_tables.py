"""Rows -> typed Arrow tables with dlt hints: the fast path into every destination.

dlt's row-by-row normalizer costs ~38 µs a row; Arrow tables pass through it almost untouched.
Column types come, in order, from the catalog (timestamps, dates, keys), from the destination
schema of earlier runs, and from the first non-null value seen. A value that does not fit its
column's type is never dropped: a text column takes its JSON text; any other column sends it, as
text, to a `<column>__v_text` variant column (dlt's own convention) with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import dlt
import orjson
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns

from close_source.catalog import Entry
from close_source.shaping import POSITION, TOMBSTONE, Json, Row, child_table

log = logging.getLogger(__name__)


class _ArrowHintNoise(logging.Filter):
    """dlt warns whenever declared hints refine an Arrow type (json over string, a not-null
    key): that is exactly what the hints are for, so the warning says nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


logging.getLogger("dlt").addFilter(_ArrowHintNoise())

JSON = "json"
_ARROW: dict[str, pa.DataType] = {
    "text": pa.string(), JSON: pa.string(), "bigint": pa.int64(), "double": pa.float64(),
    "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
}
_FROM_DLT = {"text": "text", "json": JSON, "bigint": "bigint", "double": "double",
             "bool": "bool", "timestamp": "timestamp", "date": "date", "decimal": "double",
             "wei": "double"}


def kind_of(value: Any) -> str:
    """The column type a single non-null Python value asks for."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Json):
        return JSON
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, date):
        return "date"
    return JSON


def _fits(kind: str, value: Any) -> bool:
    """Text and JSON columns take anything (as its JSON text); numbers widen int to double."""
    actual = kind_of(value)
    return actual == kind or kind in ("text", JSON) or (kind == "double" and actual == "bigint")


@dataclass
class TableSpec:
    """What one destination table needs: its hints and its known column types."""

    name: str
    types: dict[str, str]
    primary_key: tuple[str, ...] = ()
    merge_key: str | None = None

    def hints(self, columns: Iterable[str]) -> Any:
        column_hints: TTableSchemaColumns = {}
        for column in columns:
            kind = self.types[column]
            hint: dict[str, Any] = {"name": column, "data_type": kind}
            if kind == "timestamp":
                hint["timezone"] = True
            if column in self.primary_key:
                hint.update(primary_key=True, nullable=False)
            column_hints[column] = hint  # type: ignore[assignment]
        if self.merge_key:
            column_hints[TOMBSTONE] = {"name": TOMBSTONE, "data_type": "bool",
                                       "hard_delete": True}
            return dlt.mark.make_hints(
                table_name=self.name, columns=column_hints, merge_key=self.merge_key,
                write_disposition={"disposition": "merge", "strategy": "delete-insert"},
            )
        return dlt.mark.make_hints(
            table_name=self.name, columns=column_hints, primary_key=list(self.primary_key),
            write_disposition="merge",
        )


def table_specs(entry: Entry) -> list[TableSpec]:
    """The entry's root table and child tables, with the types the catalog declares."""
    root_types = {key: "timestamp" for key in entry.all_timestamps}
    root_types.update({key: "date" for key in entry.dates})
    root_types.update({key: "text" for key in entry.primary_key})
    specs = [TableSpec(entry.table, root_types, primary_key=entry.primary_key)]
    for list_name in entry.child_lists:
        key = entry.child_key or "parent_id"
        specs.append(TableSpec(child_table(entry, list_name),
                               {key: "text", POSITION: "bigint"}, merge_key=key))
    return specs


@dataclass
class ArrowBatcher:
    """Collects rows per table and hands them out as typed Arrow tables with their hints."""

    specs: Mapping[str, TableSpec]
    batch_rows: int = 5_000
    _rows: dict[str, list[Row]] = field(default_factory=dict)
    _schema_loaded: set[str] = field(default_factory=set)

    @classmethod
    def for_entries(cls, entries: Iterable[Entry], batch_rows: int = 5_000) -> ArrowBatcher:
        specs = {spec.name: spec for entry in entries for spec in table_specs(entry)}
        return cls(specs, batch_rows)

    def add(self, table: str, row: Row) -> Iterator[Any]:
        """Queue a row; yields a table's Arrow batch when it is full."""
        rows = self._rows.setdefault(table, [])
        rows.append(row)
        if len(rows) >= self.batch_rows:
            yield self._flush(table)

    def flush(self) -> Iterator[Any]:
        for table in list(self._rows):
            if self._rows[table]:
                yield self._flush(table)

    def _flush(self, table: str) -> Any:
        rows, self._rows[table] = self._rows[table], []
        spec = self.specs[table]
        self._load_destination_types(spec)
        arrow_table, columns = to_arrow(spec, rows)
        return dlt.mark.with_hints(arrow_table, spec.hints(columns), create_table_variant=True)

    def _load_destination_types(self, spec: TableSpec) -> None:
        """Types of earlier runs win over inference, so a column never changes type."""
        if spec.name in self._schema_loaded:
            return
        self._schema_loaded.add(spec.name)
        try:
            schema = dlt.current.source_schema()
        except Exception:  # noqa: BLE001 - outside a pipeline (unit tests): nothing to reuse
            return
        table = schema.tables.get(spec.name)
        for name, column in (table or {}).get("columns", {}).items():
            kind = _FROM_DLT.get(column.get("data_type", ""))
            if kind and not name.startswith("_dlt"):
                spec.types.setdefault(name, kind)


def to_arrow(spec: TableSpec, rows: list[Row]) -> tuple[pa.Table, list[str]]:
    """One Arrow table; new columns get the type of their first non-null value."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    names.pop(TOMBSTONE, None)
    has_tombstones = any(TOMBSTONE in row for row in rows)
    arrays: dict[str, pa.Array] = {}
    for name in names:
        values = [row.get(name) for row in rows]
        kind = spec.types.get(name) or _first_kind(values)
        if kind is None:
            continue  # null in every row and never typed: no column yet
        spec.types[name] = kind
        values, variants = _split_misfits(spec.name, name, kind, values)
        arrays[name] = _array(kind, values)
        if variants is not None:
            variant = f"{name}__v_text"
            spec.types[variant] = "text"
            arrays[variant] = pa.array(variants, type=pa.string())
    if has_tombstones:
        arrays[TOMBSTONE] = pa.array([row.get(TOMBSTONE) for row in rows], type=pa.bool_())
    return pa.table(arrays), [name for name in arrays if name != TOMBSTONE]


def _first_kind(values: list[Any]) -> str | None:
    kinds = {kind_of(value) for value in values if value is not None}
    if not kinds:
        return None
    if kinds <= {"bigint", "double"}:
        return "double" if "double" in kinds else "bigint"
    for value in values:
        if value is not None:
            return kind_of(value)
    return None  # pragma: no cover


def _split_misfits(table: str, column: str, kind: str,
                   values: list[Any]) -> tuple[list[Any], list[str | None] | None]:
    misfits = [i for i, value in enumerate(values) if value is not None and not _fits(kind, value)]
    if not misfits:
        return values, None
    log.warning("%s.%s: %d value(s) do not fit type %s; kept as text in %s__v_text",
                table, column, len(misfits), kind, column)
    variants: list[str | None] = [None] * len(values)
    for i in misfits:
        value = values[i]
        variants[i] = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        values[i] = None
    return values, variants


def _array(kind: str, values: list[Any]) -> pa.Array:
    if kind in ("text", JSON):
        keep = Json if kind == JSON else str
        values = [value if value is None or isinstance(value, keep) else
                  orjson.dumps(value, default=str).decode() for value in values]
    elif kind == "double":
        values = [float(value) if isinstance(value, int) else value for value in values]
    return pa.array(values, type=_ARROW[kind])
