"""Rows -> typed Arrow tables with dlt hints: the fast path into every destination.

dlt's row-by-row normalizer costs ~38 µs a row; Arrow tables pass through it almost untouched.
Column types come, in order, from the catalog (timestamps, dates, keys), from the destination
schema of earlier runs, and from the first non-null value seen. A value that does not fit its
column's type is never dropped: a text column takes its JSON text; any other column sends it, as
text, to a `<column>__v_text` variant column (dlt's own convention) with a warning.

Speed (bench/): values go into per-column lists as each row arrives; Arrow infers and casts
whole columns in C++ (timestamps are parsed from Close's ISO strings by Arrow), and the
per-value Python checks run only for a column Arrow's inference disagrees with. Hints are sent
only when a table's columns change.

Write modes: a full load *replaces* each table (the export and the list endpoints are complete
snapshots), so an emptied collection or child list is emptied here too; incremental runs
*merge*: roots on their key, child tables per parent (delete-insert on the parent key), an
emptied child list sending a hard-delete tombstone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import dlt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pt
from dlt.common.schema.typing import TTableSchemaColumns

from close_source.catalog import Entry, child_table
from close_source.records import DELETED_AT, POSITION, TOMBSTONE, Json, Row
from close_source.shape.custom_columns import CustomColumns
from close_source.shape.descriptions import (
    column_description,
    custom_fields_of,
    destination_kind,
    in_schema,
    table_hints,
)
from close_source.timestamps import to_date, to_utc

log = logging.getLogger(__name__)


WriteMode = Literal["replace", "merge"]


JSON = "json"


_ARROW: dict[str, pa.DataType] = {
    "text": pa.string(), JSON: pa.string(), "bigint": pa.int64(), "double": pa.float64(),
    "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
}


FROM_DLT = {"text": "text", "json": JSON, "bigint": "bigint", "double": "double",
             "bool": "bool", "timestamp": "timestamp", "date": "date", "decimal": "double",
             "wei": "double"}


def column_type_of(value: Any) -> str:
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


def _fits(column_type: str, value: Any) -> bool:
    """Text and JSON columns take anything (as its JSON text); numbers widen int to double."""
    actual = column_type_of(value)
    return actual == column_type or column_type in ("text", JSON) or \
        (column_type == "double" and actual == "bigint")


def json_data_type() -> str:
    """How JSON columns are declared to the destination the running pipeline loads into.

    BigQuery stores a value loaded into a JSON column as it appears in the load file, and our
    JSON travels as text (a JSON string scalar, not the array, would land). So on BigQuery they
    are STRING columns holding JSON text, which BigQuery's JSON functions read directly.
    """
    return "text" if on_bigquery() else JSON


def on_bigquery() -> bool:
    """Whether the running pipeline loads into BigQuery."""
    return destination_kind() == "bigquery"


@dataclass
class TableSpec:
    """What one destination table needs: its hints and its known column types."""

    name: str
    types: dict[str, str]
    primary_key: tuple[str, ...] = ()
    merge_key: str | None = None
    # columns every batch carries, null or not (custom fields): asked for at each batch,
    # since a reload of the definitions may add some mid-run
    declared: Callable[[], dict[str, str]] | None = None
    # a table written another way than the batcher's (a history table merged beside replaced
    # tables); `hard_deletes` false: a `_deleted` column is data, not dlt's delete marker
    mode: WriteMode | None = None
    hard_deletes: bool = True
    # the run's custom columns: those of the table (or of the table it keeps versions of)
    # are described by their field
    custom: CustomColumns | None = None

    def declared_types(self) -> dict[str, str]:
        if self.declared is None:
            return {}
        declared = self.declared()
        self.types.update(declared)
        return declared

    def hints(self, columns: Iterable[str], mode: WriteMode, json_type: str = JSON) -> Any:
        column_hints: TTableSchemaColumns = {}
        fields = custom_fields_of(self.custom, self.name) if (describe := in_schema()) else {}
        for column in columns:
            column_type = self.types[column]
            hint: dict[str, Any] = {"name": column,
                                    "data_type": json_type if column_type == JSON else column_type}
            if describe:
                hint["description"] = column_description(self.name, column, fields)
            if column_type == "timestamp":
                hint["timezone"] = True
            if column in self.primary_key:
                hint.update(primary_key=True, nullable=False)
            column_hints[column] = hint  # type: ignore[assignment]
        mode = self.mode or mode
        described = table_hints(self.name, on_bigquery())
        tombstone: Any = {"name": TOMBSTONE, "data_type": "bool", "hard_delete": True}
        if describe:
            tombstone["description"] = column_description(self.name, TOMBSTONE)
        if mode == "replace":
            return dlt.mark.make_hints(table_name=self.name, columns=column_hints,
                                       write_disposition="replace",
                                       additional_table_hints=described)
        if self.merge_key:
            column_hints[TOMBSTONE] = tombstone
            return dlt.mark.make_hints(
                table_name=self.name, columns=column_hints, merge_key=self.merge_key,
                write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                additional_table_hints=described,
            )
        # a root row carrying `_deleted` true is a hard delete of that key
        if self.hard_deletes:
            column_hints[TOMBSTONE] = tombstone
        return dlt.mark.make_hints(
            table_name=self.name, columns=column_hints, primary_key=list(self.primary_key),
            write_disposition={"disposition": "merge", "strategy": "delete-insert"},
            additional_table_hints=described,
        )


def table_specs(entry: Entry, custom: CustomColumns | None = None,
                soft_deletes: bool = False) -> list[TableSpec]:
    """The entry's root table and child tables, with the types the catalog declares; with
    `soft_deletes`, tables whose rows can be deleted declare `_deleted_at`."""
    root_types = {key: "timestamp" for key in entry.all_timestamps}
    root_types.update({key: "date" for key in entry.dates})
    root_types.update({key: "text" for key in entry.primary_key})
    always = {DELETED_AT: "timestamp"} if soft_deletes and entry.incremental != "every_run" else {}
    declared = None
    if always or (custom is not None and entry.custom_field_type):
        def declared() -> dict[str, str]:
            columns = dict(always)
            if custom is not None and entry.custom_field_type:
                columns.update(custom.column_types(entry.table))
            return columns
    specs = [TableSpec(entry.table, root_types, primary_key=entry.primary_key,
                       declared=declared, custom=custom)]
    for list_name in entry.child_lists:
        key = entry.child_key or "parent_id"
        specs.append(TableSpec(child_table(entry, list_name),
                               {key: "text", POSITION: "bigint"}, merge_key=key))
    return specs


@dataclass
class Columns:
    """Rows of one table collected column by column, as they arrive."""

    rows: int = 0
    values: dict[str, list[Any]] = field(default_factory=dict)

    def append(self, row: Row) -> None:
        count, values = self.rows, self.values
        for key, value in row.items():
            column = values.get(key)
            if column is None:
                column = values[key] = [None] * count
            column.append(value)
        self.rows = count + 1
        if len(row) != len(values):  # pad the columns this row lacks
            for column in values.values():
                if len(column) == count:
                    column.append(None)


def empty_table(spec: TableSpec) -> pa.Table:
    """No rows, every column whose type is known (its key among them): dlt makes no table of
    an item without columns."""
    return to_arrow(spec, Columns(values={name: [] for name in spec.types}))


def to_arrow(spec: TableSpec, columns: Columns) -> pa.Table:
    """One Arrow table; new columns get the type of their first non-null value."""
    declared = spec.declared_types()
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.values.items():
        if name == TOMBSTONE:
            continue
        column_type = spec.types.get(name) or _first_column_type(values)
        if column_type is None:
            continue  # null in every row and never typed: no column yet
        spec.types[name] = column_type
        arrays[name], variants = _column(spec.name, name, column_type, values)
        if variants is not None:
            variant = f"{name}__v_text"
            spec.types[variant] = "text"
            arrays[variant] = pa.array(variants, type=pa.string())
    for name, column_type in declared.items():
        if name not in arrays:
            arrays[name] = pa.nulls(columns.rows, _ARROW[column_type])
    if TOMBSTONE in columns.values:
        arrays[TOMBSTONE] = pa.array(columns.values[TOMBSTONE], type=pa.bool_())
    return pa.table(arrays)


def _first_column_type(values: list[Any]) -> str | None:
    column_types = {column_type_of(value) for value in values if value is not None}
    if not column_types:
        return None
    if column_types <= {"bigint", "double"}:
        return "double" if "double" in column_types else "bigint"
    for value in values:
        if value is not None:
            return column_type_of(value)
    return None  # pragma: no cover


def _column(table: str, name: str, column_type: str,
            values: list[Any]) -> tuple[pa.Array, list[str | None] | None]:
    """Arrow infers (and parses ISO timestamps) in C++; Python checks only when it disagrees."""
    if column_type == "text":
        try:  # the usual case, without inference
            return pa.array(values, type=pa.string()), None
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    elif column_type == JSON and all(value is None or type(value) is Json for value in values):
        return pa.array(values, type=pa.string()), None
    if column_type != JSON:
        try:
            inferred = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            inferred = None
        if inferred is not None:
            if _compatible(column_type, inferred.type):
                target = _ARROW[column_type]
                return (inferred if inferred.type == target else inferred.cast(target)), None
            if column_type in ("timestamp", "date") and pt.is_string(inferred.type):
                try:
                    return pc.cast(inferred, _ARROW[column_type]), None
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass  # naive or unusual strings: parsed one by one below
        if column_type in ("timestamp", "date"):
            values = _parse_dates(column_type, values)
    values, variants = _split_misfits(table, name, column_type, values)
    return _array(column_type, values), variants


def _compatible(column_type: str, arrow_type: pa.DataType) -> bool:
    if pt.is_null(arrow_type):
        return True
    if column_type == "text":
        return pt.is_string(arrow_type)
    if column_type == "bigint":
        return pt.is_int64(arrow_type)
    if column_type == "double":
        return pt.is_float64(arrow_type) or pt.is_int64(arrow_type)
    if column_type == "bool":
        return pt.is_boolean(arrow_type)
    if column_type == "timestamp":
        return pt.is_timestamp(arrow_type) and arrow_type.tz is not None
    if column_type == "date":
        return pt.is_date32(arrow_type)
    return False


def _parse_dates(column_type: str, values: list[Any]) -> list[Any]:
    """Close's naive, offset and date-only forms; what does not parse stays as it came."""
    convert = to_utc if column_type == "timestamp" else to_date
    parsed = []
    for value in values:
        if isinstance(value, str) and (converted := convert(value)) is not None:
            value = converted
        parsed.append(value)
    return parsed


def _split_misfits(table: str, column: str, column_type: str,
                   values: list[Any]) -> tuple[list[Any], list[str | None] | None]:
    misfits = [i for i, value in enumerate(values)
               if value is not None and not _fits(column_type, value)]
    if not misfits:
        return values, None
    log.warning("%s.%s: %d value(s) do not fit type %s; kept as text in %s__v_text",
                table, column, len(misfits), column_type, column)
    variants: list[str | None] = [None] * len(values)
    for i in misfits:
        value = values[i]
        variants[i] = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        values[i] = None
    return values, variants


def _array(column_type: str, values: list[Any]) -> pa.Array:
    if column_type in ("text", JSON):
        keep = Json if column_type == JSON else str
        values = [value if value is None or isinstance(value, keep) else
                  orjson.dumps(value, default=str).decode() for value in values]
    elif column_type == "double":
        values = [float(value) if isinstance(value, int) else value for value in values]
    return pa.array(values, type=_ARROW[column_type])
