"""Stage history: `lead_status_history` and `opportunity_status_history`, one row per status
change of a lead or an opportunity, with the seconds it spent in the status it left.

Derived in SQL, in the destination, from the status-change activity tables (`lead_status_changes`,
`opportunity_status_changes`), which a first load reads whole: the history covers the
organisation's whole past, not only the time since the first sync. Close folds quick repeated
changes into one activity and deletes a change reverted quickly (Close API: Event Log, List of
events): the activity tables follow, and each stage table is rebuilt whole from its source.
Soft-deleted activities (`_deleted_at` set) are left out.

The stage tables are ours, not dlt's: the connector's dlt schema does not know them, so dlt
never loads, alters or drops them. Tables, not views: on PostgreSQL a view on
`lead_status_changes` would make dlt's DROP TABLE of it fail (`--full-refresh`, replaces).

A stage table is rebuilt after a run's load when a load since its last build wrote its source
table, or when it is missing; readers see the old table or the new one, never neither
(CREATE OR REPLACE; PostgreSQL: DROP and CREATE in one transaction). Which loads those were:
dlt keeps every completed load package, with its jobs, in the pipeline's working directory,
and the stage table's comment names the newest load its build included. So a run that died
between its load and the rebuild is caught up by the next one, and a run that changed no
status change asks the destination one catalog query.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseException
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.destinations.sql_client import SqlClientBase

from close_source.stages import note

log = logging.getLogger("close_source.progress")

LOCK_TIMEOUT = "10s"  # PostgreSQL: a reader holding the old table longer leaves it to next run
MARKER = re.compile(r"built through load (\d+(?:\.\d+)?)")

Column = tuple[str, str, tuple[str, ...]]  # name, kind (text | timestamp), source columns


@dataclass(frozen=True)
class Stage:
    """One stage table: its source table, the column naming the object whose status changed,
    and its columns, each from the first of its source columns the source has (NULL when it
    has none: every destination gets the same columns)."""

    table: str
    source: str
    object_column: str
    columns: tuple[Column, ...]


def _columns(*middle: Column) -> tuple[Column, ...]:
    return (("activity_id", "text", ("id",)), *middle,
            ("changed_at", "timestamp", ("date_created",)),
            ("changed_by", "text", ("created_by", "user_id")),
            ("changed_by_name", "text", ("created_by_name", "user_name")))


def _status(side: str, source: str, *parts: str) -> tuple[Column, ...]:
    return tuple((f"{side}_{part}", "text", (f"{source}_{part}",)) for part in parts)


STAGES = (
    Stage("lead_status_history", "lead_status_changes", "lead_id", _columns(
        ("lead_id", "text", ("lead_id",)),
        *_status("from", "old", "status_id", "status_label"),
        *_status("to", "new", "status_id", "status_label"))),
    Stage("opportunity_status_history", "opportunity_status_changes", "opportunity_id", _columns(
        ("opportunity_id", "text", ("opportunity_id",)), ("lead_id", "text", ("lead_id",)),
        *_status("from", "old", "status_id", "status_label", "status_type", "pipeline_id"),
        *_status("to", "new", "status_id", "status_label", "status_type", "pipeline_id"))),
)
SECONDS_COLUMN = "seconds_in_from_status"


@dataclass(frozen=True)
class Dialect:
    """The SQL that differs between destinations."""

    types: dict[str, str]  # our column kinds -> the destination's types, for NULL columns
    seconds: str  # a double: the seconds from {earlier} to {later}, both timestamps
    byte_order: str  # appended to a text in ORDER BY: ties ordered alike everywhere
    catalog: Callable[[SqlClientBase[Any], list[str]], list[tuple[str, str | None]]]
    source_columns: Callable[[SqlClientBase[Any], str], set[str]]
    replace: Callable[[str, str, str], list[str]]  # (table, select, comment) -> statements
    in_transaction: bool = True


def _information_schema_columns(client: SqlClientBase[Any], table: str) -> set[str]:
    return {row[0] for row in client.execute_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = "
        "current_database() AND table_schema = %s AND table_name = %s",
        client.dataset_name, table)}


def _duckdb_catalog(client: SqlClientBase[Any], tables: list[str]) -> list[tuple[str, str | None]]:
    return [(row[0], row[1]) for row in client.execute_sql(
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = "
        f"current_database() AND schema_name = %s AND table_name IN ({_literals(tables)})",
        client.dataset_name)]


def _postgres_catalog(client: SqlClientBase[Any],
                      tables: list[str]) -> list[tuple[str, str | None]]:
    return [(row[0], row[1]) for row in client.execute_sql(
        "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
        f"AND c.relkind IN ('r', 'p') AND c.relname IN ({_literals(tables)})",
        client.dataset_name)]


def _bigquery_catalog(client: SqlClientBase[Any],
                      tables: list[str]) -> list[tuple[str, str | None]]:
    dataset = client.fully_qualified_dataset_name()
    return [(row[0], row[1]) for row in client.execute_sql(
        f"SELECT t.table_name, o.option_value FROM {dataset}.INFORMATION_SCHEMA.TABLES AS t "
        f"LEFT JOIN {dataset}.INFORMATION_SCHEMA.TABLE_OPTIONS AS o "
        "ON o.table_name = t.table_name AND o.option_name = 'description' "
        f"WHERE t.table_name IN ({_literals(tables)})")]


def _bigquery_columns(client: SqlClientBase[Any], table: str) -> set[str]:
    return {row[0] for row in client.execute_sql(
        f"SELECT column_name FROM {client.fully_qualified_dataset_name()}"
        f".INFORMATION_SCHEMA.COLUMNS WHERE table_name = {_literals([table])}")}


DIALECTS = {
    "duckdb": Dialect(
        types={"text": "VARCHAR", "timestamp": "TIMESTAMPTZ"},
        seconds="CAST(epoch_us({later}) - epoch_us({earlier}) AS DOUBLE) / 1000000",
        byte_order="", catalog=_duckdb_catalog, source_columns=_information_schema_columns,
        replace=lambda table, select, comment: [
            f"CREATE OR REPLACE TABLE {table} AS {select}",
            f"COMMENT ON TABLE {table} IS {comment}"]),
    "postgres": Dialect(
        types={"text": "text", "timestamp": "timestamptz"},
        seconds="CAST(EXTRACT(EPOCH FROM {later} - {earlier}) AS double precision)",
        byte_order=' COLLATE "C"', catalog=_postgres_catalog,
        source_columns=_information_schema_columns,
        replace=lambda table, select, comment: [
            f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'", f"DROP TABLE IF EXISTS {table}",
            f"CREATE TABLE {table} AS {select}", f"COMMENT ON TABLE {table} IS {comment}"]),
    "bigquery": Dialect(  # untested against a real BigQuery (README)
        types={"text": "STRING", "timestamp": "TIMESTAMP"},
        seconds="TIMESTAMP_DIFF({later}, {earlier}, MICROSECOND) / 1000000",
        byte_order="", catalog=_bigquery_catalog, source_columns=_bigquery_columns,
        replace=lambda table, select, comment: [
            f"CREATE OR REPLACE TABLE {table} OPTIONS(description = {comment}) AS {select}"],
        in_transaction=False),
}


def select_sql(stage: Stage, dialect: Dialect, source: str, source_columns: set[str]) -> str:
    """The stage table's rows, from the source table `source` (a qualified name) having
    `source_columns`."""
    picked = []
    for name, kind, candidates in stage.columns:
        present = [column for column in candidates if column in source_columns]
        value = (f"CAST(NULL AS {dialect.types[kind]})" if not present else present[0]
                 if len(present) == 1 else f"COALESCE({', '.join(present)})")
        picked.append(f"{value} AS {name}")
    live = " WHERE _deleted_at IS NULL" if "_deleted_at" in source_columns else ""
    previous = (f"LAG(changed_at) OVER (PARTITION BY {stage.object_column} "
                f"ORDER BY changed_at, activity_id{dialect.byte_order})")
    seconds = dialect.seconds.format(later="changed_at", earlier=previous)
    names = ", ".join(name for name, _, _ in stage.columns)
    return (f"SELECT {names}, {seconds} AS {SECONDS_COLUMN} "
            f"FROM (SELECT {', '.join(picked)} FROM {source}{live}) AS changes")


def marker(load_id: str) -> str:
    """The stage table's comment, as an SQL literal: what it is, and the newest load its
    build included."""
    return (f"'Stage history, rebuilt by close-sync from its status-change table after each "
            f"load that changes it; built through load {load_id}'")


def ensure(pipeline: dlt.Pipeline) -> None:
    """Rebuild the stage tables whose source a load changed since their build, or that are
    missing, in the pipeline's dataset."""
    destination = pipeline.destination
    if destination is None or not issubclass(destination.client_class, SqlJobClientBase):
        return  # no SQL (filesystem): nothing to build with
    kind = destination.destination_type.rsplit(".", 1)[-1]
    dialect = DIALECTS.get(kind)
    if dialect is None:
        log.info("stage history tables (%s) are built on DuckDB, PostgreSQL and BigQuery; "
                 "not on %s", ", ".join(stage.table for stage in STAGES), kind)
        return
    started = time.monotonic()
    built: list[str] = []
    with pipeline.sql_client() as client:
        found = dict(dialect.catalog(client, [name for stage in STAGES
                                              for name in (stage.table, stage.source)]))
        stale = _stale(pipeline, [stage for stage in STAGES if stage.source in found], found)
        newest = max(pipeline.list_completed_load_packages(), key=_load_time, default="0")
        for stage in stale:
            try:
                _rebuild(client, dialect, stage, newest)
                built.append(stage.table)
            except DatabaseException as error:
                log.warning("stage history: %s not rebuilt, the next run tries again: %s",
                            stage.table, str(error).strip().split("\n", 1)[0])
    if built:
        note(log, "stage history: rebuilt %s in %.1fs", ", ".join(built),
             time.monotonic() - started)


def _rebuild(client: SqlClientBase[Any], dialect: Dialect, stage: Stage, newest: str) -> None:
    select = select_sql(stage, dialect, client.make_qualified_table_name(stage.source),
                        dialect.source_columns(client, stage.source))
    statements = dialect.replace(client.make_qualified_table_name(stage.table), select,
                                 marker(newest))
    with client.begin_transaction() if dialect.in_transaction else nullcontext():
        for statement in statements:
            client.execute_sql(statement)


def _stale(pipeline: dlt.Pipeline, stages: list[Stage],
           comments: dict[str, str | None]) -> list[Stage]:
    """The stages missing (or not built here: no marker), or whose source a load this working
    directory completed after their build wrote. A load whose jobs dlt no longer keeps
    (`load.delete_completed_jobs`) counts as one that wrote every table."""
    built = {stage.table: _built_through(comments.get(stage.table)) for stage in stages}
    since = min((at for at in built.values() if at is not None), default=float("inf"))
    written: list[tuple[float, set[str] | None]] = []
    for load_id in pipeline.list_completed_load_packages():
        if (loaded := _load_time(load_id)) > since:
            jobs = pipeline.get_load_package_info(load_id).jobs["completed_jobs"]
            written.append((loaded, {job.job_file_info.table_name for job in jobs} or None))
    return [stage for stage in stages if (at := built[stage.table]) is None or any(
        loaded > at and (tables is None or stage.source in tables) for loaded, tables in written)]


def _built_through(comment: str | None) -> float | None:
    """The newest load the stage table's build included, from its comment."""
    found = MARKER.search(comment or "")
    return float(found.group(1)) if found else None


def _load_time(load_id: str) -> float:
    """dlt's load ids are the package's creation time (`time.time()` as text)."""
    return float(load_id)


def _literals(values: list[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)
