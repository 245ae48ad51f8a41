"""History against the fake organisation: `field_changes` and the `<table>_history` versions.

- `version_mismatches`: per object, versions chain (each ends where the next begins, only the
  last may be open or `_deleted`), the open versions equal the table's rows column by column,
  and an object gone from its table has its last version closed and `_deleted`.
- `event_mismatches`: every event of the fake's log since `since` for the tables named: an
  `updated` event has a `field_changes` row per changed field with Close's old and new values
  (custom fields under any column the field has had), a version at the event's time showing
  its new values, and a delete ends the object's last version at the delete's time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import dlt

from close_fake import FakeOrg
from close_fake.events.log import events
from close_source.read.change_set import route
from close_source.read.event_log import canonical_object_type
from close_source.shape.field_changes import NOISE
from close_source.timestamps import to_utc
from tests.helpers import rows, sql_client

BOOKKEEPING = ("_valid_from", "_valid_to", "_event_id", "_deleted")


def _table_rows(pipeline: dlt.Pipeline, table: str, where: str = "") -> list[dict[str, Any]]:
    sql = f"SELECT * FROM {pipeline.dataset_name}.{table} {where}"
    with sql_client(pipeline) as client, client.execute_query(sql) as cursor:
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    return value


def version_mismatches(pipeline: dlt.Pipeline, tables: Iterable[str],
                       soft: bool = False) -> list[str]:
    found: list[str] = []
    for table in tables:
        history = _table_rows(pipeline, f"{table}_history")
        main = {row["id"]: row for row in _table_rows(pipeline, table)
                if not (soft and row.get("_deleted_at") is not None)}
        by_id: dict[str, list[dict[str, Any]]] = {}
        for row in history:
            by_id.setdefault(row["id"], []).append(row)
        for object_id, versions in by_id.items():
            versions.sort(key=lambda row: row["_valid_from"])
            for before, after in zip(versions, versions[1:], strict=False):
                if before["_valid_to"] != after["_valid_from"] or before["_deleted"]:
                    found.append(f"{table}_history {object_id}: version from "
                                 f"{before['_valid_from']} ends {before['_valid_to']} "
                                 f"(deleted: {before['_deleted']}), the next begins "
                                 f"{after['_valid_from']}")
            last = versions[-1]
            if object_id in main:
                if last["_valid_to"] is not None:
                    found.append(f"{table}_history {object_id}: no open version, yet in {table}")
                    continue
                row = main[object_id]
                differ = [column for column in row if not column.startswith("_dlt")
                          and column not in BOOKKEEPING
                          and column in last and
                          _comparable(row[column]) != _comparable(last[column])]
                if differ:
                    found.append(f"{table}_history {object_id}: the open version differs from "
                                 f"{table} in {differ[:5]}")
            elif last["_valid_to"] is None or not last["_deleted"]:
                found.append(f"{table}_history {object_id}: gone from {table}, yet its last "
                             f"version is open or not deleted")
        missing = set(main) - set(by_id)
        if missing:
            found.append(f"{table}_history: no version of {sorted(missing)[:5]}")
    return found


def event_mismatches(org: FakeOrg, pipeline: dlt.Pipeline, since: datetime,
                     tables: Iterable[str], versioned: Iterable[str] = (),
                     complete: bool = True) -> list[str]:
    """`complete`: every event since `since` was read from the log (no full read between);
    otherwise only the rows and versions there are checked, not that each event has them."""
    tables, versioned = set(tables), set(versioned)
    changes: dict[tuple[str, str], dict[str, Any]] = {
        (row["event_id"], row["field"]): row for row in _table_rows(pipeline, "field_changes")}
    columns_of = _custom_columns(pipeline)
    versions = {table: {(row["id"], to_utc(row["_valid_from"])): row
                        for row in _table_rows(pipeline, f"{table}_history")}
                for table in versioned}
    found: list[str] = []
    for event in events(org):
        entry = route(canonical_object_type(event.object_type))
        if entry is None or entry.table not in tables or event.date_updated < since:
            continue
        if event.action == "updated":
            for field in event.changed_fields:
                if field in NOISE or field in entry.drop:
                    continue
                found += _field_change(event, field, changes, columns_of.get(field[7:], ()),
                                       complete)
            if entry.table in versioned:
                copied = {copy.column for copy in entry.copies}  # relabelled in place
                found += _version_shows(event, versions[entry.table], columns_of, copied,
                                        complete)
        elif event.action == "deleted" and entry.table in versioned:
            ended = [row for (object_id, _), row in versions[entry.table].items()
                     if object_id == event.object_id and row["_deleted"]]
            # a delete a full read found (no events read between) ends at that run's time
            until = to_utc(ended[0]["_valid_to"]) if ended else None
            if (ended or complete) and (until is None or until < event.date_updated or
                                        (complete and until != event.date_updated)):
                found.append(f"{entry.table}_history {event.object_id}: its delete at "
                             f"{event.date_updated} ended no version then ({ended})")
    return found


def _field_change(event: Any, field: str, changes: dict[tuple[str, str], dict[str, Any]],
                  custom: Iterable[str], complete: bool) -> list[str]:
    old, new = (event.previous_data or {}).get(field), (event.data or {}).get(field)
    if isinstance(old, dict) or isinstance(new, dict):
        return []  # flattened into several columns: the shaping tests cover them
    names = list(custom) if field.startswith("custom.") else [field]
    row = next((changes[(event.id, name)] for name in names if (event.id, name) in changes),
               None)
    if row is None:
        if not complete:
            return []
        return [f"field_changes: no row for {field} ({old!r} -> {new!r}) of event {event.id} "
                f"({event.object_type} {event.object_id}), among {names}"]
    said = (_comparable(json.loads(row["old_value"])) if row["old_value"] else None,
            _comparable(json.loads(row["new_value"])) if row["new_value"] else None)
    if said != (_comparable(old), _comparable(new)) or not row["values_known"] or \
            to_utc(row["changed_at"]) != event.date_updated or row["action"] != "updated":
        return [f"field_changes {event.id} {field}: {said} at {row['changed_at']}, Close: "
                f"{(old, new)} at {event.date_updated}"]
    return []


def _version_shows(event: Any, versions: dict[tuple[str, datetime], dict[str, Any]],
                   columns_of: dict[str, tuple[str, ...]], copied: set[str],
                   complete: bool) -> list[str]:
    version = versions.get((event.object_id, event.date_updated))
    if version is None:
        if not complete:
            return []
        return [f"no version of {event.object_type} {event.object_id} at {event.date_updated}"]
    wrong = []
    for field in event.changed_fields:
        value = (event.data or {}).get(field)
        if field in NOISE or field in copied or isinstance(value, dict | list):
            continue
        names = columns_of.get(field[7:], ()) if field.startswith("custom.") else (field,)
        shown = [version.get(name) for name in names if name in version]
        if shown and not any(_comparable(to_utc(value) if isinstance(item, datetime) else value)
                             == _comparable(item) for item in shown):
            wrong.append(f"{field}: {shown} not {value!r}")
    return [f"version of {event.object_id} at {event.date_updated}: {wrong}"] if wrong else []


def _custom_columns(pipeline: dlt.Pipeline) -> dict[str, tuple[str, ...]]:
    """Field id -> every column it has had, in any table."""
    kept = pipeline.state["sources"]["close"]["custom_columns"]["name"]
    found: dict[str, set[str]] = {}
    for fields in kept.values():
        for field_id, value in fields.items():
            found.setdefault(field_id, set()).update(value["columns"].values())
    return {field_id: tuple(columns) for field_id, columns in found.items()}


def count(pipeline: dlt.Pipeline, sql: str) -> int:
    return int(rows(pipeline, sql)[0][0])
