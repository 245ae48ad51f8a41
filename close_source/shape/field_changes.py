"""Event Log events -> `field_changes` rows: one per changed field per event.

What Close says changed, under the names the object's table uses: a custom field by its
column (`custom.cf_x` -> `custom_industry`), a nested object by its flattened columns
(`address__city`). Values are Close's, as JSON text, the same on every destination.

- `updated`: the fields in `changed_fields`, old values from `previous_data` (Close keeps the
  earliest of consolidated changes), new ones from `data`. A listed field without values (a
  non-admin key's event older than an hour; a field Close leaves out) keeps its row, with null
  values and `values_known` false.
- `created`: every field the new object has a value for but its id (old: null); without its
  `data`, one row for the whole object (below), values unknown.
- any other action without `changed_fields` (`deleted`, `merged`, `completed`, `sent`...): one
  row for the whole object, field `*`: a delete's `old_value` is the object as it was (from
  `previous_data`), another action's `new_value` the object as it became (a merge: the
  destination lead). A lead's delete brings a delete of each object it had: a row each.
Bookkeeping fields (`date_updated`, `updated_by`, `updated_by_name`) are never rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from close_source.catalog import FIELD_CHANGES_TABLE, Entry
from close_source.read.event_log import Event
from close_source.records import Json, Row
from close_source.shape.arrow_tables import TableSpec
from close_source.shape.custom_columns import CustomColumns
from close_source.shape.rows import flatten

NOISE = frozenset({"date_updated", "updated_by", "updated_by_name"})
WHOLE_OBJECT = "*"
_CUSTOM_KEY = "custom."



def field_changes_spec() -> TableSpec:
    return TableSpec(
        FIELD_CHANGES_TABLE,
        {"event_id": "text", "field": "text", "object_type": "text", "object_id": "text",
         "lead_id": "text", "old_value": "text", "new_value": "text", "changed_at": "timestamp",
         "user_id": "text", "action": "text", "values_known": "bool"},
        primary_key=("event_id", "field"), mode="merge", hard_deletes=False)


def field_change_rows(entry: Entry, event: Event, custom: CustomColumns | None,
                      keeps: Callable[[str, str], bool] | None = None) -> Iterator[Row]:
    """The rows of one event of the entry's objects; `keeps(table, field)`: whether a field's
    changes are recorded (an excluded field's are not: `read/privacy.py`)."""
    data, previous = event.data, event.previous_data
    changed = event.raw.get("changed_fields")
    if isinstance(changed, list) and changed:
        fields = [str(name) for name in changed]
    elif event.action == "created" and data is not None:
        fields = [key for key, value in data.items()
                  if value is not None and key not in entry.primary_key]
    elif event.action == "deleted":
        yield _row(event, WHOLE_OBJECT, previous, None, previous is not None)
        return
    else:
        yield _row(event, WHOLE_OBJECT, None, data, data is not None)
        return
    for field in fields:
        if field in NOISE or field in entry.drop or (keeps and not keeps(entry.table, field)):
            continue
        if event.action == "created":
            known = data is not None
        else:  # `data` is the whole object: a field it lacks has no value (a cleared one)
            known = data is not None and previous is not None and \
                (field in data or field in previous)
        old = _columns(entry, field, (previous or {}).get(field), custom, event)
        new = _columns(entry, field, (data or {}).get(field), custom, event)
        columns = list(dict.fromkeys([*old, *new]))
        for column in columns:
            before, after = old.get(column), new.get(column)
            if known and before == after and len(columns) > 1:
                continue  # a nested object's columns that did not change
            yield _row(event, column, before, after, known)


def _columns(entry: Entry, field: str, value: Any, custom: CustomColumns | None,
             event: Event) -> dict[str, Any]:
    """{column of the object's table: value} for one field's value."""
    if field.startswith(_CUSTOM_KEY) and custom is not None and entry.custom_field_type:
        activity_type = (event.data or event.previous_data or {}).get("custom_activity_type_id")
        column = custom.column_of(entry.table, field[len(_CUSTOM_KEY):], activity_type)
        return {column or field: value}
    if isinstance(value, Mapping) and value:
        row: Row = {}
        flatten(row, field, value)
        return row
    return {field: value}


def _row(event: Event, field: str, old: Any, new: Any, known: bool) -> Row:
    return {"event_id": event.id, "field": field, "object_type": event.object_type,
            "object_id": event.object_id, "lead_id": event.lead_id,
            "old_value": _json(old), "new_value": _json(new), "changed_at": event.date_updated,
            "user_id": event.raw.get("user_id"), "action": event.action, "values_known": known}


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Json):
        return str(value)
    return orjson.dumps(value, default=str).decode()
