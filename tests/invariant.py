"""The central invariant: every table equals the fake organisation's current state.

Compared per table: the set of keys, every top-level scalar of every object (timestamps in
UTC), every custom value in the column `custom_fields` names for it, and each child table's
rows per parent. Lists kept as JSON columns are compared decoded.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import dlt

from close_source.catalog import BY_TABLE, CATALOG
from close_source.fake import FakeOrg
from close_source.timestamps import to_date, to_utc
from tests.helpers import as_json, rows
from tests.oracle import (
    NOT_LISTED,
    TABLE_OF_KIND,
    custom_definitions,
    decoded,
    expected_objects,
    typed,
)

KIND_OF_TABLE = {table: kind for kind, table in TABLE_OF_KIND.items()}


def db_rows(pipeline: dlt.Pipeline, table: str,
            where: str | None = None) -> dict[Any, dict[str, Any]]:
    entry = BY_TABLE[table]
    sql = f"SELECT * FROM close.{table}" + (f" WHERE {where}" if where else "")
    with pipeline.sql_client() as client, client.execute_query(sql) as cursor:
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


def custom_columns(pipeline: dlt.Pipeline, kind: str) -> dict[str, str]:
    return dict(rows(pipeline, "SELECT id, column_name FROM close.custom_fields "
                               f"WHERE object_type = '{kind}' AND NOT is_deleted"))


def mismatches(org: FakeOrg, pipeline: dlt.Pipeline, table: str, limit: int = 10,
               soft: bool = False) -> list[str]:
    """What differs between the table and the organisation (empty when equal); with `soft`,
    rows with `_deleted_at` set are left out (soft deletes)."""
    entry = BY_TABLE[table]
    expected = expected_objects(org, table)
    live = soft and entry.incremental != "refresh"
    actual = db_rows(pipeline, table, "_deleted_at IS NULL" if live else None)
    problems: list[str] = []
    if set(actual) != set(expected):
        problems.append(f"{table}: missing {sorted(set(expected) - set(actual))[:5]}, "
                        f"extra {sorted(set(actual) - set(expected))[:5]}")
    kind = KIND_OF_TABLE.get(table)
    definitions = {fid: d for (k, fid), d in custom_definitions(org).items() if k == kind}
    columns = custom_columns(pipeline, kind) if kind else {}
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
        where = (f" WHERE {key} IN (SELECT id FROM close.{table} WHERE _deleted_at IS NULL)"
                 if live else "")
        counts = dict(rows(pipeline, f"SELECT {key}, count(*) FROM close.{table}__{list_name}"
                                     f"{where} GROUP BY {key}"))
        want = {obj_id: len(obj.get(list_name) or []) for obj_id, obj in expected.items()
                if obj.get(list_name)}
        if counts != want:
            differing = sorted(k for k in set(counts) | set(want)
                               if counts.get(k) != want.get(k))[:5]
            problems.append(f"{table}__{list_name}: rows per parent differ for {differing}")
    return problems


def every_table_mismatches(org: FakeOrg, pipeline: dlt.Pipeline,
                           soft: bool = False) -> dict[str, list[str]]:
    found = {}
    for entry in CATALOG:
        if problems := mismatches(org, pipeline, entry.table, soft=soft):
            found[entry.table] = problems
    return found
