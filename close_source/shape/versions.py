"""Versions of an object: the rows of `<table>_history` (`history = [...]`).

A version is the object's row as its table has it, plus when it held in Close's time:
`_valid_from` (the event that began it, or the object's `date_updated` when a full read first
saw it), `_valid_to` (the next version's `_valid_from`; null while current), `_event_id` and
`_deleted` (the version a delete or a merge ended). Keyed by `(id, _valid_from)`: a replayed
window or a full reload of unchanged objects writes the same keys again and adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from close_source.catalog import Entry, history_table
from close_source.records import TOMBSTONE, Row
from close_source.shape.arrow_tables import TableSpec, table_specs
from close_source.shape.custom_columns import CustomColumns
from close_source.shape.rows import shape
from close_source.timestamps import to_utc

VALID_FROM, VALID_TO, EVENT_ID = "_valid_from", "_valid_to", "_event_id"
VERSION_COLUMNS = {VALID_FROM: "timestamp", VALID_TO: "timestamp", EVENT_ID: "text",
                   TOMBSTONE: "bool"}


def history_spec(entry: Entry, custom: CustomColumns | None = None,
                 soft_deletes: bool = False) -> TableSpec:
    """The table's own columns and the version columns, merged on (id, `_valid_from`);
    `_deleted` is data here, not dlt's delete marker."""
    root = table_specs(entry, custom, soft_deletes)[0]
    return replace(root, name=history_table(entry.table),
                   types={**root.types, **VERSION_COLUMNS},
                   primary_key=(*entry.primary_key, VALID_FROM), mode="merge",
                   hard_deletes=False)


def version_of(row: Mapping[str, Any], valid_from: datetime, event_id: str | None = None,
               valid_to: datetime | None = None, deleted: bool = False) -> Row:
    """A root row as a version."""
    return {**row, VALID_FROM: valid_from, VALID_TO: valid_to, EVENT_ID: event_id,
            TOMBSTONE: deleted}


def root_row(entry: Entry, obj: Mapping[str, Any], custom: CustomColumns | None) -> Row:
    """The object's row in its own table (custom values in their columns)."""
    return next(shape(entry, dict(obj), custom))[1]


def first_seen(row: Mapping[str, Any]) -> datetime | None:
    """When a version read in full began: the object's last change in Close."""
    return to_utc(row.get("date_updated") or row.get("date_created"))
