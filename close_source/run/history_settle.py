"""After a load: the versions of every `<table>_history` made whole, in the destination.

A run writes versions as it sees them (`run/history.py`, and each row of a full read); what
needs every version of an object is settled here, in SQL, where they all are:

1. a version equal to the one before it (every column of the table, `date_updated` included)
   is removed (a delete that ended it ends the one before): a full reload (`--full-refresh`,
   the 30-day guard, a backup) of an object that did not change adds nothing, whatever time
   it gives the object;
2. each version ends where the next begins (`_valid_to`), and only the last can be `_deleted`;
3. an open version whose object is no longer in its table (a delete a full reload found, a
   merge away) ends at the run's time in Close, `_deleted`.

Each table's statements run in one transaction. Only tables whose versions or rows a load
wrote since they were last settled are settled (a scan of the whole table: ~6 s on PostgreSQL
at 300,000 versions): a file in the pipeline's working directory says a run began loading and
did not settle yet, so the next run settles everything after a run killed in between. The
same SQL serves DuckDB, PostgreSQL and BigQuery (window functions, UPDATE ... FROM, IS NOT
DISTINCT FROM); BigQuery's is untested (unreachable here).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dlt
from dlt.common.destination.exceptions import SqlClientNotAvailable
from dlt.common.pipeline import LoadInfo

from close_source.catalog import BY_TABLE, history_table
from close_source.records import DELETED_AT, TOMBSTONE
from close_source.run import state as st
from close_source.shape.versions import EVENT_ID, VALID_FROM, VALID_TO
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

BOOKKEEPING = frozenset({VALID_FROM, VALID_TO, EVENT_ID, TOMBSTONE})


PENDING = "close-history-unsettled"  # in the working directory: loaded, not settled yet


@dataclass
class Settling:
    """Which tables one run must settle: those its loads wrote (a history table or the table
    it follows), or all, when an earlier run loaded and did not settle."""

    pipeline: dlt.Pipeline
    everything_: bool = False
    tables: set[str] = field(default_factory=set)

    @classmethod
    def begin(cls, pipeline: dlt.Pipeline) -> Settling:
        pending = Path(pipeline.working_dir) / PENDING
        settling = cls(pipeline, everything_=pending.exists())
        pending.parent.mkdir(parents=True, exist_ok=True)
        pending.touch()
        return settling

    def everything(self) -> None:
        self.everything_ = True

    def loaded(self, info: LoadInfo) -> None:
        for package in info.load_packages:
            for jobs in package.jobs.values():
                self.tables.update(job.job_file_info.table_name for job in jobs)

    def settle(self, source_name: str) -> None:
        settle(self.pipeline, source_name, None if self.everything_ else self.tables)
        (Path(self.pipeline.working_dir) / PENDING).unlink(missing_ok=True)


def settle(pipeline: dlt.Pipeline, source_name: str,
           loaded: Collection[str] | None = None) -> None:
    """Settle the history tables the last run kept (one no longer in `history` stays as it
    was left: its objects' later changes are not in it); `loaded`: only those whose rows, or
    their table's, were loaded (None: all)."""
    schema = pipeline.default_schema if pipeline.default_schema_name else None
    if schema is None:
        return
    source_state = (pipeline.state.get("sources") or {}).get(source_name) or {}
    names = {history_table(table): table for table in st.run_history(source_state)}
    kept = [name for name in schema.data_table_names() if name in names and
            (loaded is None or name in loaded or names[name] in loaded)]
    if not kept:
        return
    try:
        sql_client = pipeline.sql_client()
    except SqlClientNotAvailable:
        return
    ended_at = to_utc(st.run_close_time(source_state)) or datetime.now(UTC)
    with sql_client as client:
        for name in kept:
            columns = [column for column in schema.get_table_columns(name)
                       if not column.startswith("_dlt") and column not in BOOKKEEPING]
            main = names[name]
            main_columns = set(schema.get_table_columns(main)) if main in schema.tables \
                else set()
            statements = settling(client, name, main if main_columns else None, columns,
                                  DELETED_AT in main_columns)
            with client.begin_transaction():
                for statement in statements:
                    client.execute_sql(statement, *([ended_at] if "%s" in statement else []))
            log.debug("%s: versions settled", name)


def settling(client: object, table: str, main: str | None, columns: Iterable[str],
             soft_deletes: bool) -> list[str]:
    """The statements that settle one history table (`main`: its table, when loaded)."""
    q = client.escape_column_name  # type: ignore[attr-defined]
    history = client.make_qualified_table_name(table)  # type: ignore[attr-defined]
    key, since, until, deleted = q(BY_TABLE[table[:-len("_history")]].primary_key[0]), \
        q(VALID_FROM), q(VALID_TO), q(TOMBSTONE)
    window = f"OVER (PARTITION BY {key} ORDER BY {since})"
    same = " AND ".join(f"(LAG({q(c)}) {window} IS NOT DISTINCT FROM {q(c)})" for c in columns)
    repeats = (f"(SELECT * FROM (SELECT {key} AS k, {since} AS f, {until} AS t, "
               f"{deleted} AS ended, LAG({since}) {window} AS previous_from, "
               f"COALESCE(LAG({deleted}) {window}, FALSE) AS previous_deleted, "
               f"({same or 'TRUE'}) AS unchanged FROM {history}) v "
               f"WHERE v.previous_from IS NOT NULL AND v.unchanged AND NOT v.previous_deleted)")
    statements = [
        # a repeat that a delete ended hands its end to the version it repeats
        f"UPDATE {history} SET {until} = d.t, {deleted} = TRUE FROM {repeats} d "
        f"WHERE d.ended AND d.k = {history}.{key} AND d.previous_from = {history}.{since}",
        f"DELETE FROM {history} WHERE EXISTS (SELECT 1 FROM {repeats} d "
        f"WHERE d.k = {history}.{key} AND d.f = {history}.{since})",
        f"UPDATE {history} SET {until} = n.next_from, {deleted} = FALSE FROM (SELECT {key} AS k, "
        f"{since} AS f, LEAD({since}) {window} AS next_from FROM {history}) n "
        f"WHERE n.k = {history}.{key} AND n.f = {history}.{since} AND n.next_from IS NOT NULL "
        f"AND ({history}.{until} IS NULL OR {history}.{until} <> n.next_from "
        f"OR {history}.{deleted})",
    ]
    if main is not None:
        live = f" AND m.{q(DELETED_AT)} IS NULL" if soft_deletes else ""
        statements.append(
            f"UPDATE {history} SET {until} = %s, {deleted} = TRUE WHERE {until} IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {client.make_qualified_table_name(main)} m "  # type: ignore[attr-defined]
            f"WHERE m.{key} = {history}.{key}{live})")
    return statements
