"""Descriptions in the warehouse: after each run's load, `COMMENT ON` every table and column of
the dataset (DuckDB, PostgreSQL) whose comment differs from its description.

dlt 1.31 writes descriptions to BigQuery only (the `description` hints `shape/descriptions.py`
gives; its DuckDB and PostgreSQL clients issue no COMMENT). So the dataset's comments are read
in one catalog query and only the differences are written: a run that changed nothing writes
nothing, and a table dlt made or made again (a first load, `--full-refresh`, a stage table
rebuilt) gets its comments back. Custom columns are described from the custom fields the source
state keeps with the tables' load (the field's name, type and choices as the run saw them): a
renamed field's comment follows on the run that syncs its table.

Each table's comments are written in one transaction; on PostgreSQL, COMMENT waits at most
`LOCK_TIMEOUT` for another session's lock on the table (readers do not hold it up). A table left
undescribed is tried again by the next run, with a warning. Tables of the dataset that are
neither close-sync's nor dlt's are left as they are, and so are the stage tables' own comments
(they name the newest load their build includes: `run/stage_history.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

import dlt
from dlt.destinations.exceptions import DatabaseException
from dlt.destinations.sql_client import SqlClientBase

from close_source.run import state as st
from close_source.run.stage_history import STAGES
from close_source.settings import ColumnNaming
from close_source.shape.custom_columns import FieldColumns
from close_source.shape.descriptions import (
    column_description,
    fields_by_column,
    history_base,
    table_description,
)

log = logging.getLogger("close_source.progress")

LOCK_TIMEOUT = "10s"
DLT_PREFIX = "_dlt"
STAGE_TABLES = frozenset(stage.table for stage in STAGES)

Comments = dict[str | None, str | None]  # column (None: the table) -> comment


@dataclass(frozen=True)
class Dialect:
    """How a destination lists its comments and writes one."""

    catalog: str  # (table, column or NULL for the table, comment) of every table of a schema
    literal: Callable[[SqlClientBase[Any], str], str]
    prelude: tuple[str, ...] = ()  # statements opening each table's transaction


def _standard_literal(_: SqlClientBase[Any], text: str) -> str:
    """DuckDB reads backslashes in a string as they are (dlt's E'' escape doubles them)."""
    return "'" + text.replace("'", "''") + "'"


def _client_literal(client: SqlClientBase[Any], text: str) -> str:
    return str(client.capabilities.escape_literal(text))


DIALECTS = {
    "duckdb": Dialect(
        "SELECT table_name, NULL, comment FROM duckdb_tables() WHERE database_name = "
        "current_database() AND schema_name = %s UNION ALL SELECT table_name, column_name, "
        "comment FROM duckdb_columns() WHERE database_name = current_database() AND "
        "schema_name = %s", _standard_literal),
    "postgres": Dialect(
        "SELECT c.relname, NULL, obj_description(c.oid, 'pg_class') FROM pg_class c JOIN "
        "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN "
        "('r', 'p') UNION ALL SELECT c.relname, a.attname, col_description(c.oid, a.attnum) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON "
        "n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND "
        "a.attnum > 0 AND NOT a.attisdropped", _client_literal,
        (f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'",)),
}


def ensure(pipeline: dlt.Pipeline) -> int:
    """Write the comments that differ from their descriptions; how many were written."""
    destination = pipeline.destination
    dialect = DIALECTS.get(destination.destination_type.rsplit(".", 1)[-1]) \
        if destination is not None else None
    if dialect is None:
        return 0
    started = time.monotonic()
    dlt_tables = pipeline.default_schema.tables if pipeline.default_schema_name else {}
    custom = custom_fields(pipeline.state.get("sources", {}).get(st.SOURCE) or {})
    written, failed = 0, []
    with pipeline.sql_client() as client:
        for table, present in sorted(read_comments(client, dialect).items()):
            wanted = descriptions(table, present, custom, dlt_tables.get(table))
            changed = {column: text for column, text in wanted.items()
                       if text and present.get(column) != text}
            if not changed:
                continue
            try:
                _write(client, dialect, table, changed)
                written += len(changed)
            except DatabaseException as error:
                failed.append(f"{table} ({str(error).strip().splitlines()[0]})")
    if written:  # a detail, not the stage line's: stage tables rebuilt lose theirs every time
        log.info("descriptions: %d comments written in %.1fs", written,
                 time.monotonic() - started)
    if failed:
        log.warning("descriptions: tables left without their comments, the next run tries "
                    "again: %s", "; ".join(failed))
    return written


def read_comments(client: SqlClientBase[Any], dialect: Dialect) -> dict[str, Comments]:
    """Every table of the dataset, its comment and its columns' (one query)."""
    found: dict[str, Comments] = {}
    for table, column, comment in client.execute_sql(dialect.catalog, client.dataset_name,
                                                     client.dataset_name) or []:
        found.setdefault(table, {})[column] = comment
    return found


def descriptions(table: str, columns: Comments, custom: Mapping[str, Mapping[str, FieldColumns]],
                 dlt_table: Mapping[str, Any] | None) -> Comments:
    """What the table's comment and each of its columns' should say; nothing for a table
    close-sync does not know."""
    if table.startswith(DLT_PREFIX):  # dlt's own tables: its schema describes them, mostly
        known = dlt_table.get("columns", {}) if dlt_table else {}
        return {None: (dlt_table or {}).get("description") or table_description(table),
                **{column: known.get(column, {}).get("description")
                   or column_description(table, column)
                   for column in columns if column is not None}}
    text = table_description(table)
    if text is None:
        return {}
    fields = custom.get(history_base(table) or table, {})
    wanted: Comments = {column: column_description(table, column, fields)
                        for column in columns if column is not None}
    if table not in STAGE_TABLES:
        wanted[None] = text
    return wanted


def custom_fields(source_state: Mapping[str, Any]) -> dict[str, dict[str, FieldColumns]]:
    """Per table, each custom column with its field, as the state keeps them (both namings:
    a pipeline that switched keeps the columns of each)."""
    found: dict[str, dict[str, FieldColumns]] = {}
    for naming in get_args(ColumnNaming):
        for table, kept in st.custom_columns(source_state, naming).items():
            fields = []
            for field_id, saved in kept.items():
                field = FieldColumns.from_state(field_id, saved)
                field.active = bool(field.was_active)  # as the run that saved it saw it
                fields.append(field)
            for column, field in fields_by_column(fields).items():
                found.setdefault(table, {}).setdefault(column, field)
    return found


def _write(client: SqlClientBase[Any], dialect: Dialect, table: str,
           changed: Mapping[str | None, str]) -> None:
    qualified = client.make_qualified_table_name(table)
    statements = [
        f"COMMENT ON TABLE {qualified} IS {dialect.literal(client, text)}" if column is None else
        f"COMMENT ON COLUMN {qualified}.{client.escape_column_name(column)} IS "
        f"{dialect.literal(client, text)}"
        for column, text in changed.items()]
    with client.begin_transaction():
        for statement in dialect.prelude:
            client.execute_sql(statement)
        client.execute_many(statements)
