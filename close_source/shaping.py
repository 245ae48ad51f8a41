"""API object -> table row: one shaper per catalog entry, used by every read path.

Rows keep Close's field names. Lists of objects stay in the row: dlt turns every top-level list
into a child table `<table>__<field>` (the source sets `max_table_nesting=1`, so anything nested
deeper lands as JSON) and replaces a parent's child rows on merge. Nested objects that live in
tables of their own (a lead's contacts, opportunities, tasks) are dropped here.
"""

from __future__ import annotations

from typing import Any

from dlt.common.schema.typing import TTableSchemaColumns

from close_source.catalog import Entry
from close_source.timestamps import to_date, to_utc

Row = dict[str, Any]


def shape(entry: Entry, obj: dict[str, Any]) -> Row:
    """One table row; values that fail to parse are kept as they came, never dropped."""
    row = {key: value for key, value in obj.items() if key not in entry.drop}
    for key in entry.all_timestamps:
        if key in row and (parsed := to_utc(row[key])) is not None:
            row[key] = parsed
    for key in entry.dates:
        if key in row and (day := to_date(row[key])) is not None:
            row[key] = day
    return row


def column_hints(entry: Entry) -> TTableSchemaColumns:
    """Types declared up front, so a column that is null in one load still gets its type."""
    columns: TTableSchemaColumns = {
        key: {"name": key, "data_type": "timestamp", "timezone": True}
        for key in entry.all_timestamps
    }
    for key in entry.dates:
        columns[key] = {"name": key, "data_type": "date"}
    for key in entry.primary_key:
        columns[key] = {"name": key, "data_type": "text", "nullable": False,
                        "primary_key": True}
    return columns
