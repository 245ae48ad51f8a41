"""The central invariant: every table equals the fake organisation's current state.

Compared per table: the set of keys, every top-level scalar of every object (timestamps in
UTC), every custom value in the column `custom_fields` names for it, and each child table's
rows per parent. Lists kept as JSON columns are compared decoded.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from close_fake import FakeOrg
from close_source.catalog import BY_TABLE, CATALOG
from close_source.timestamps import to_date, to_utc
from tests.helpers import as_json, one_connection, rows, sql_client
from tests.oracle import (
    NOT_LISTED,
    TABLE_OF_OBJECT_TYPE,
    custom_definitions,
    decoded,
    expected_objects,
    typed,
)

OBJECT_TYPE_OF_TABLE = {table: kind for kind, table in TABLE_OF_OBJECT_TYPE.items()}


def db_rows(pipeline: dlt.Pipeline, table: str,
            where: str | None = None) -> dict[Any, dict[str, Any]]:
    entry = BY_TABLE[table]
    sql = f"SELECT * FROM {pipeline.dataset_name}.{table}" + (f" WHERE {where}" if where else "")
    with sql_client(pipeline) as client, client.execute_query(sql) as cursor:
        names = [column[0] for column in cursor.description]
        result = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    key = (lambda row: row["id"]) if entry.primary_key == ("id",) else (
        lambda row: tuple(row[k] for k in entry.primary_key))
    keyed = {key(row): row for row in result}
    assert len(keyed) == len(result), f"duplicate keys in {table}"
    return keyed


def same_value(entry: Any, field: str, api_value: Any, db_value: Any) -> bool:
    if field in entry.dates:
        return to_date(api_value) == (db_value if isinstance(db_value, date) else None)
    if isinstance(db_value, datetime):
        return to_utc(api_value) == to_utc(db_value)
    if isinstance(api_value, float) or isinstance(db_value, float):
        return db_value is not None and abs(float(api_value) - float(db_value)) < 1e-9
    return api_value == db_value


def custom_columns(pipeline: dlt.Pipeline, kind: str, from_state: bool = False) -> dict[str, str]:
    """Field id -> the column its values are in now: as the `custom_fields` table names it,
    or (`from_state`: that table may be older than the table checked, in subset runs) as the
    pipeline state froze it for the table."""
    if not from_state:
        return dict(rows(pipeline, f"SELECT id, column_name FROM {pipeline.dataset_name}."
                                   "custom_fields "
                                   f"WHERE object_type = '{kind}' AND NOT is_deleted"))
    kept = pipeline.state["sources"]["close"]["custom_columns"]["name"][TABLE_OF_OBJECT_TYPE[kind]]
    return {field_id: value["columns"][value["column_type"]] for field_id, value in kept.items()
            if value.get("active", True)}


def duplicate_keys(pipeline: dlt.Pipeline) -> dict[str, list[Any]]:
    """Every table of the dataset whose key is not unique: catalog tables on their primary
    key, child tables on (parent, position), `lead_merges`, `events`, `field_changes` and
    `custom_field_changes` on theirs."""
    keys: dict[str, tuple[str, ...]] = {"lead_merges": ("source_lead_id",), "events": ("id",),
                                        "field_changes": ("event_id", "field"),
                                        "custom_field_changes": ("change_id",)}
    for entry in CATALOG:
        keys[entry.table] = entry.primary_key
        keys[f"{entry.table}_history"] = (*entry.primary_key, "_valid_from")
        for list_name in entry.child_lists:
            keys[f"{entry.table}__{list_name}"] = (entry.child_key or "parent_id", "_pos")
    found = {}
    for table in pipeline.default_schema.data_table_names():
        if table not in keys:
            continue  # tables of other points (custom_field_changes): their own tests
        columns = ", ".join(keys[table])
        try:
            repeated = rows(pipeline, f"SELECT {columns}, count(*) FROM "
                                      f"{pipeline.dataset_name}.{table} "
                                      f"GROUP BY {columns} HAVING count(*) > 1 LIMIT 5")
        except DatabaseUndefinedRelation:  # declared, never created: no rows
            continue
        if repeated:
            found[table] = repeated
    return found


def mismatches(org: FakeOrg, pipeline: dlt.Pipeline, table: str, limit: int = 10,
               soft: bool = False, columns_from_state: bool = False) -> list[str]:
    """What differs between the table and the organisation (empty when equal); with `soft`,
    rows with `_deleted_at` set are left out (soft deletes)."""
    entry = BY_TABLE[table]
    expected = expected_objects(org, table)
    live = soft and entry.incremental != "every_run"
    where = "_deleted_at IS NULL" if live else None
    if table == "custom_fields":  # a deleted field keeps its row, marked (README)
        where = "NOT is_deleted"
        deleted = db_rows(pipeline, table, "is_deleted")
        if set(deleted) & set(expected):
            return [f"custom_fields: fields Close has are marked deleted: "
                    f"{sorted(set(deleted) & set(expected))[:5]}"]
    actual = db_rows(pipeline, table, where)
    problems: list[str] = []
    if set(actual) != set(expected):
        problems.append(f"{table}: missing {sorted(set(expected) - set(actual))[:5]}, "
                        f"extra {sorted(set(actual) - set(expected))[:5]}")
    kind = OBJECT_TYPE_OF_TABLE.get(table)
    definitions = {fid: d for (k, fid), d in custom_definitions(org).items() if k == kind}
    columns = custom_columns(pipeline, kind, columns_from_state) if kind else {}
    naming = pipeline.default_schema.naming
    for key in sorted(set(actual) & set(expected), key=str):
        obj, row = expected[key], actual[key]
        for field, value in obj.items():
            if field in entry.drop or field in NOT_LISTED.get(table, ()):
                continue
            if field.startswith("custom.") or field == "_deleted_at":
                continue
            column = naming.normalize_identifier(field)
            if isinstance(value, list | dict):
                if column in row and isinstance(value, list) and field not in entry.child_lists \
                        and as_json(row[column]) != value:
                    problems.append(f"{table} {key} {field}: {row[column]!r} != {value!r}")
                continue
            if value is None:
                if row.get(column) is not None:
                    problems.append(f"{table} {key} {field}: {row.get(column)!r} != None")
            elif column not in row or not same_value(entry, field, value, row[column]):
                problems.append(f"{table} {key} {field}: {row.get(column)!r} != {value!r}")
        for field_id, definition in definitions.items():
            column = columns.get(field_id)
            if column is None:
                problems.append(f"{table}: no column for custom field {field_id}")
                continue
            if column not in row:  # named, but not in the table (README: declared at once)
                problems.append(f"{table}: column {column} of custom field {field_id} missing")
                continue
            value = obj.get(f"custom.{field_id}")
            want = None if value is None else typed(definition, value)
            if decoded(definition, row.get(column)) != want:
                problems.append(f"{table} {key} {column}: {row.get(column)!r} != {want!r}")
        if len(problems) >= limit:
            break
    problems += _child_mismatches(org, pipeline, table, expected, live)
    return problems[:limit]


def _child_mismatches(org: FakeOrg, pipeline: dlt.Pipeline, table: str,
                      expected: dict[Any, dict[str, Any]], live: bool) -> list[str]:
    entry = BY_TABLE[table]
    problems = []
    for list_name in entry.child_lists:
        if not any(list_name in obj for obj in expected.values()):
            continue  # assembled at response time (a pipeline's statuses): not stored here
        key = entry.child_key or "parent_id"
        dataset = pipeline.dataset_name
        where = (f" WHERE {key} IN (SELECT id FROM {dataset}.{table} WHERE _deleted_at IS NULL)"
                 if live else "")
        counts = dict(rows(pipeline, f"SELECT {key}, count(*) FROM {dataset}.{table}__{list_name}"
                                     f"{where} GROUP BY {key}"))
        want = {obj_id: len(obj.get(list_name) or []) for obj_id, obj in expected.items()
                if obj.get(list_name)}
        if counts != want:
            differing = sorted(k for k in set(counts) | set(want)
                               if counts.get(k) != want.get(k))[:5]
            problems.append(f"{table}__{list_name}: rows per parent differ for {differing}")
    return problems


def every_table_mismatches(org: FakeOrg, pipeline: dlt.Pipeline, soft: bool = False,
                           tables: list[str] | None = None) -> dict[str, list[str]]:
    """Every table (or those named) against the organisation, and every table's keys."""
    with one_connection(pipeline):
        return _every_table_mismatches(org, pipeline, soft, tables)


def _every_table_mismatches(org: FakeOrg, pipeline: dlt.Pipeline, soft: bool,
                            tables: list[str] | None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in CATALOG:
        if tables is not None and entry.table not in tables:
            continue
        if problems := mismatches(org, pipeline, entry.table, soft=soft,
                                  columns_from_state=tables is not None):
            found[entry.table] = problems
    for table, repeated in duplicate_keys(pipeline).items():
        found.setdefault(table, []).append(f"{table}: duplicate keys {repeated}")
    return found
