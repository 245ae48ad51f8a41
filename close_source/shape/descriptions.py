"""What each table and column holds, for people reading the warehouse: one text per table and
column, from `descriptions.toml` (written from Close's API docs) and, for a custom field's
column, from the field's definition (its Close name, id, type and choices).

The same texts become dlt's `description` hints (which dlt writes to BigQuery) and the
`COMMENT ON` of DuckDB and PostgreSQL (`run/comments.py`). Every column gets one: a column the
file does not name is described by the shape of its name (a flattened nested field, a variant
column), or as the Close field it is.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from dlt.destinations.impl.bigquery.bigquery_adapter import TABLE_DESCRIPTION_HINT

from close_source.catalog import BY_TABLE, CATALOG
from close_source.records import SEPARATOR
from close_source.running import running_pipeline
from close_source.shape.custom_columns import PREFIX, UNMAPPED, CustomColumns, FieldColumns

HISTORY_SUFFIX = "_history"
VARIANT_SUFFIX = "__v_text"  # dlt's variant column of values that fit no type
# BigQuery's limit for a description; the others take more, the same text goes everywhere
MAX_LENGTH = 1024
MAX_CHOICES = 30
# Where `run/comments.py` writes the descriptions (COMMENT ON, after each load), they stay out of
# dlt's schema: dlt writes no description there, and the hints cost every run's extract, which
# merges them per item (measured: a sixth more CPU for a small organisation's runs).
COMMENTED = frozenset({"duckdb", "postgres"})
ACTIVITY_TABLES = frozenset(entry.table for entry in CATALOG if entry.path.startswith("activity/"))
# what a value of these Close field types is, one value and several
_ONE = {"datetime": "in UTC", "user": "a user id, users.id", "contact": "a contact id, contacts.id"}
_SEVERAL = {"datetime": " of UTC times", "user": " of user ids, users.id",
            "contact": " of contact ids, contacts.id"}


@cache
def _texts() -> dict[str, Any]:
    with (Path(__file__).with_name("descriptions.toml")).open("rb") as handle:
        return tomllib.load(handle)


def known_tables() -> frozenset[str]:
    """Every table the file describes."""
    return frozenset(_texts()["tables"])


def table_description(table: str) -> str | None:
    """The table's description; None for a table that is not close-sync's."""
    tables = _texts()["tables"]
    if table in tables:
        return _fit(tables[table]["description"])
    base = history_base(table)
    if base is not None:
        return _fit(f"Versions of {base} (history = [\"{base}\"]): one row per version of an "
                    f"object, in Close's time (_valid_from, _valid_to); the current ones equal "
                    f"{base}. Every column of {base}, plus _valid_from, _valid_to, _event_id "
                    f"and _deleted.")
    parent, _, list_name = table.partition(SEPARATOR)
    if parent in BY_TABLE and list_name in BY_TABLE[parent].child_lists:
        return _fit(f"The {list_name} list of each {parent} row: one row per element, in the "
                    f"list's order (_pos).")
    return None


def history_base(table: str) -> str | None:
    """`leads` for `leads_history`, if it is a history table."""
    base = table.removesuffix(HISTORY_SUFFIX)
    return base if base != table and base in BY_TABLE else None


def column_description(table: str, column: str,
                       custom: Mapping[str, FieldColumns] | None = None) -> str:
    """The column's description; `custom`: the table's custom fields by column
    (`fields_by_column`)."""
    field = (custom or {}).get(column)
    if field is not None:
        return custom_column_description(field, column)
    texts = _texts()
    base = history_base(table)
    found = listed_description(base or table, column)
    if base is not None:
        found = texts["history_columns"].get(column) or found
    if found is None and column.startswith(PREFIX) and column != UNMAPPED and \
            (base or table) in _tables_with_custom_fields():
        found = (f"A Close custom field's values (custom_fields names it: column_name = "
                 f"'{column}').")
    return _fit(found or _by_shape(column))


def listed_columns(table: str) -> list[str]:
    """The columns the file describes for `table` (for a history table: the ones it adds to
    its table's), in the file's order: the documentation of tables no full load writes."""
    texts = _texts()
    if history_base(table) is not None:
        return list(texts["history_columns"])
    return list(texts["tables"].get(table, {}).get("columns", {}))


def listed_description(table: str, column: str) -> str | None:
    """The column's description in the file (its table's, its kind's or every table's)."""
    texts = _texts()
    own = texts["tables"].get(table, {}).get("columns", {})
    if column in own:
        return str(own[column])
    if table in ACTIVITY_TABLES and column in texts["activity_columns"]:
        return str(texts["activity_columns"][column])
    found = texts["columns"].get(column)
    return str(found) if found is not None else None


def _by_shape(column: str) -> str:
    if column.endswith(VARIANT_SUFFIX):
        return (f"Values of {column.removesuffix(VARIANT_SUFFIX)} that do not fit its type, "
                f"as text (dlt's variant column; a warning said so when they came).")
    if SEPARATOR in column:
        return (f"Close's {'.'.join(column.split(SEPARATOR))}: a field of a nested object, "
                f"flattened into its own column.")
    return f"Close's {column} field, as its API returns it."


@cache
def _tables_with_custom_fields() -> frozenset[str]:
    return frozenset(entry.table for entry in CATALOG if entry.custom_field_type)


def destination_kind() -> str | None:
    """The running pipeline's destination (`duckdb`, `bigquery`, ...); None outside one."""
    pipeline = running_pipeline()
    destination = pipeline.destination if pipeline is not None else None
    return destination.destination_type.rsplit(".", 1)[-1] if destination is not None else None


def in_schema() -> bool:
    """Whether descriptions go into dlt's schema as hints (see `COMMENTED`)."""
    return destination_kind() not in COMMENTED


def table_hints(table: str, bigquery: bool = False) -> dict[str, str] | None:
    """dlt's table hints carrying the table's description; on BigQuery also the one dlt
    writes there as the table's description (its column descriptions are `description`)."""
    text = table_description(table)
    if text is None or not in_schema():
        return None
    return {"description": text, **({TABLE_DESCRIPTION_HINT: text} if bigquery else {})}


def described(table: str, columns: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Column hints with their descriptions (for tables shaped without a `TableSpec`)."""
    describe = in_schema()
    return {name: {"name": name, **hint,
                   **({"description": column_description(table, name)} if describe else {})}
            for name, hint in columns.items()}


def custom_fields_of(custom: CustomColumns | None, table: str) -> dict[str, FieldColumns]:
    """The run's custom fields of `table` (or of the table it keeps versions of), by column."""
    columns = custom.tables.get(history_base(table) or table) if custom is not None else None
    # a copy made in one step: another thread may add a field (a reload of the definitions)
    return fields_by_column(list(columns.fields.values())) if columns is not None else {}


def fields_by_column(fields: Iterable[FieldColumns]) -> dict[str, FieldColumns]:
    """Each column of the fields (current and earlier ones) with its field."""
    return {column: field for field in fields for column in field.columns.values()}


def custom_column_description(field: FieldColumns, column: str) -> str:
    """`Close custom field "Industry" (cf_abc), type choices: Software, Retail.`"""
    head = f'Close custom field "{field.name}" ({field.field_id})'
    kind = _kind(field)
    if not field.active:
        return _fit(f"{head}, deleted in Close: no longer filled. It was {kind}.")
    if column != field.column:
        return _fit(f"{head}, {kind}: this column holds its values from before its type "
                    f"changed; they continue in {field.column}, and this one is no longer "
                    f"filled.")
    text = f"{head}, {kind}"
    if field.choices:
        shown = ", ".join(field.choices[:MAX_CHOICES])
        more = len(field.choices) - MAX_CHOICES
        text += f": {shown}" + (f", and {more} more (custom_fields.choices)" if more > 0 else "")
    if field.converting:
        text += ". Close is converting its values to another type: values that do not fit " \
                "are kept in custom_unmapped meanwhile"
    return _fit(text + ".")


def _kind(field: FieldColumns) -> str:
    """`type choices (several values, a JSON array)`, `type user (a user id, users.id)`."""
    if field.column_type == "json":
        note: str | None = "several values, a JSON array" + _SEVERAL.get(field.type, "")
    else:
        note = _ONE.get(field.type)
    kind = f"type {field.type}" if field.type else "a field"
    return f"{kind} ({note})" if note else kind


def _fit(text: str) -> str:
    return text if len(text) <= MAX_LENGTH else text[:MAX_LENGTH - 1] + "…"
