"""API object -> table rows: one shaper per catalog entry, used by every read path.

The relational shape is ours, not dlt's normalizer's, so that list endpoints, the export and the
Event Log give identical rows and can be loaded as Arrow tables (the fast path):

- field names stay Close's; nested objects are flattened into `parent__child` columns;
- the entry's `child_lists` become child tables `<table>__<list>`, one row per element with the
  parent's id in `child_key` and the element's position in `_pos` (a list of plain values gives a
  `value` column);
- every other list, and anything nested inside a list, is kept as JSON;
- a parent whose child list is empty yields one tombstone row (`_deleted` true, never stored):
  child tables are merged per parent (delete its rows, insert the new ones), and the tombstone
  is what clears a list that became empty;
- objects that live in tables of their own (a lead's contacts, ...) are dropped (`entry.drop`);
- custom values become the columns `custom_columns.py` assigns.

Values stay as Close sent them: timestamps are parsed to UTC by the Arrow layer, column by column
(`shape/arrow_tables.py`), which is where the catalog's types apply.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from close_source.catalog import Entry, child_table
from close_source.records import POSITION, SEPARATOR, TOMBSTONE, Json, Row
from close_source.shape.custom_columns import CustomColumns


def shape(entry: Entry, obj: dict[str, Any],
          custom: CustomColumns | None = None) -> Iterator[tuple[str, Row]]:
    """(table, row) for the object and for each element of its child lists.

    With `custom`, the entry's custom values (taken out of `obj`) become their typed columns.
    """
    custom_values = custom.split(entry.table, obj) if custom and entry.custom_field_type else None
    root: Row = {}
    children: dict[str, list[Any]] = {}
    for key, value in obj.items():
        if key in entry.drop:
            continue
        if key in entry.child_lists:
            children[key] = value if isinstance(value, list) else []
            continue
        flatten(root, key, value)
    if custom_values:
        root.update(custom_values)
    yield entry.table, root
    parent_id = obj.get("id")
    parent_key = entry.child_key or "parent_id"
    for list_name in entry.child_lists:
        table = child_table(entry, list_name)
        elements = children.get(list_name) or []
        if not elements:
            yield table, {parent_key: parent_id, TOMBSTONE: True}
        for position, element in enumerate(elements):
            row: Row = {parent_key: parent_id, POSITION: position}
            if isinstance(element, Mapping):
                for key, value in element.items():
                    flatten(row, key, value)
            else:
                row["value"] = element
            yield table, row


_PLAIN = (str, int, float, bool, type(None))


def flatten(row: Row, key: str, value: Any) -> None:
    python_type = type(value)
    if python_type in _PLAIN:  # exact type checks first: this runs for every value of every object
        row[key] = value
    elif python_type is dict or isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            flatten(row, f"{key}{SEPARATOR}{sub_key}", sub_value)
    elif python_type is list or isinstance(value, tuple):
        row[key] = Json(orjson.dumps(value, default=str).decode())
    else:
        row[key] = value
