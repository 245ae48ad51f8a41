"""The stage history SQL of each dialect, on hand-made status changes in an in-memory DuckDB.

DuckDB's SQL runs as it is. BigQuery is unreachable here: its SQL is parsed by sqlglot (dlt's
own SQL parser) as BigQuery, translated to DuckDB and run on the same rows, so its window,
NULL columns and seconds arithmetic are checked, not only its syntax. PostgreSQL's runs on a
real server in tests/end_to_end/test_stage_history.py."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import dlt
import duckdb
import pytest
import sqlglot

from close_source.run import stage_history as sh

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LEAD_CHANGES = [  # id, lead, old, new, date_created, created_by, user_id, _deleted_at
    ("acti_1", "lead_a", "s_new", "s_open", "2024-03-01 12:00:00+00", "user_1", "user_1", None),
    ("acti_2", "lead_a", "s_open", "s_won", "2024-03-01 12:01:30.5+00", None, "user_2", None),
    ("acti_3", "lead_a", "s_open", "s_lost", "2024-03-01 12:01:00+00", "user_1", "user_1",
     "2024-03-02 00:00:00+00"),  # soft-deleted: left out, and no previous change of acti_2
    ("acti_4", "lead_a", "s_won", "s_open", "2024-03-02 12:01:30.5+00", "user_1", None, None),
    # a tie on date_created, ordered by id bytes: "acti_B" < "acti_a" (a collation ignoring
    # case would put "acti_a" first)
    ("acti_a", "lead_b", "s_open", "s_won", "2024-03-01 13:00:00+00", "user_1", None, None),
    ("acti_B", "lead_b", "s_new", "s_open", "2024-03-01 13:00:00+00", "user_2", None, None),
]
EXPECTED = {  # activity id -> (from, to, changed_by, seconds_in_from_status)
    "acti_1": ("s_new", "s_open", "user_1", None),
    "acti_2": ("s_open", "s_won", "user_2", 90.5),
    "acti_4": ("s_won", "s_open", "user_1", 86400.0),
    "acti_B": ("s_new", "s_open", "user_2", None),
    "acti_a": ("s_open", "s_won", "user_1", 0.0),
}


@pytest.fixture(scope="module")
def warehouse() -> Any:
    db = duckdb.connect()
    db.execute("CREATE SCHEMA close")
    db.execute("CREATE TABLE close.lead_status_changes (id VARCHAR, lead_id VARCHAR, "
               "old_status_id VARCHAR, new_status_id VARCHAR, date_created TIMESTAMPTZ, "
               "created_by VARCHAR, user_id VARCHAR, _deleted_at TIMESTAMPTZ)")
    db.executemany("INSERT INTO close.lead_status_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   LEAD_CHANGES)
    db.execute("CREATE TABLE close.opportunity_status_changes (id VARCHAR, lead_id VARCHAR, "
               "opportunity_id VARCHAR, old_status_id VARCHAR, new_status_id VARCHAR, "
               "new_status_type VARCHAR, date_created TIMESTAMPTZ, user_id VARCHAR)")
    db.execute("INSERT INTO close.opportunity_status_changes VALUES "
               "('acti_o1', 'lead_a', 'oppo_1', 's_1', 's_2', 'active', '2024-03-01 10:00:00+00', "
               "'user_1'), ('acti_o2', 'lead_a', 'oppo_1', 's_2', 's_3', 'won', "
               "'2024-03-01 10:00:01+00', 'user_1'), ('acti_o3', 'lead_a', 'oppo_2', 's_1', "
               "'s_3', 'won', '2024-03-01 10:00:02+00', 'user_1')")
    yield db
    db.close()


def source_columns(db: Any, table: str) -> set[str]:
    return {row[0] for row in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
        [table]).fetchall()}


def stage_rows(db: Any, kind: str, stage: sh.Stage) -> list[dict[str, Any]]:
    """The stage's rows by `kind`'s SQL: DuckDB's as it is, BigQuery's translated."""
    source = f"close.{stage.source}"
    sql = sh.select_sql(stage, sh.DIALECTS[kind], source, source_columns(db, stage.source))
    if kind != "duckdb":
        sql = sqlglot.transpile(sql, read=kind, write="duckdb")[0]
    cursor = db.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("kind", ["duckdb", "bigquery"])
def test_each_change_gets_the_seconds_since_the_objects_previous_one(warehouse, kind):
    found = {row["activity_id"]: row for row in stage_rows(warehouse, kind, sh.STAGES[0])}
    assert {activity: (row["from_status_id"], row["to_status_id"], row["changed_by"],
                       row["seconds_in_from_status"]) for activity, row in found.items()} \
        == EXPECTED
    assert found["acti_2"]["changed_at"] == datetime(2024, 3, 1, 12, 1, 30, 500000, tzinfo=UTC)
    assert found["acti_2"]["lead_id"] == "lead_a"
    assert [name for name, _, _ in sh.STAGES[0].columns] + [sh.SECONDS_COLUMN] == list(
        found["acti_1"])


@pytest.mark.parametrize("kind", ["duckdb", "bigquery"])
def test_columns_the_source_lacks_are_null_and_each_object_counts_alone(warehouse, kind):
    found = {row["activity_id"]: row for row in stage_rows(warehouse, kind, sh.STAGES[1])}
    assert {activity: row["seconds_in_from_status"] for activity, row in found.items()} == {
        "acti_o1": None, "acti_o2": 1.0, "acti_o3": None}
    assert found["acti_o2"]["to_status_type"] == "won"
    assert found["acti_o2"]["from_status_type"] is None  # no old_status_type column
    assert found["acti_o2"]["from_status_label"] is None
    assert found["acti_o2"]["changed_by"] == "user_1"  # user_id: no created_by column
    assert found["acti_o2"]["changed_by_name"] is None
    assert found["acti_o2"]["opportunity_id"] == "oppo_1"


def test_postgres_orders_ties_by_id_bytes_whatever_the_database_collation():
    sql = sh.select_sql(sh.STAGES[0], sh.DIALECTS["postgres"], "close.lead_status_changes",
                        {"id", "lead_id", "date_created"})
    assert 'ORDER BY changed_at, activity_id COLLATE "C")' in sql
    sqlglot.parse_one(sql, read="postgres")


class Recorder:
    """A stand-in for dlt's BigQuery SQL client: keeps the SQL it is given."""

    dataset_name = "close"

    def __init__(self) -> None:
        self.statements: list[str] = []

    def fully_qualified_dataset_name(self) -> str:
        return "`project`.`close`"

    def execute_sql(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        self.statements.append(sql)
        return []


def test_bigquery_statements_are_bigquery_sql():
    client = Recorder()
    bigquery = sh.DIALECTS["bigquery"]
    bigquery.catalog(client, ["lead_status_changes", "lead_status_history"])  # type: ignore[arg-type]
    bigquery.source_columns(client, "lead_status_changes")  # type: ignore[arg-type]
    select = sh.select_sql(sh.STAGES[0], bigquery, "`project`.`close`.`lead_status_changes`",
                           {"id", "lead_id", "date_created"})
    replace = bigquery.replace("`project`.`close`.`lead_status_history`", select,
                               sh.marker("1796632549.3549552"))
    assert len(replace) == 1 and not bigquery.in_transaction  # one atomic statement
    for sql in client.statements + replace:
        parsed = sqlglot.parse_one(sql, read="bigquery")
        assert parsed.sql("bigquery")
    assert "INFORMATION_SCHEMA.TABLE_OPTIONS" in client.statements[0]
    assert replace[0].startswith("CREATE OR REPLACE TABLE `project`.`close`.`lead_status_history`"
                                 " OPTIONS(description = 'Stage history")


@pytest.mark.parametrize("comment", [
    sh.marker("1796632549.3549552")[1:-1],  # DuckDB and PostgreSQL: the text
    '"' + sh.marker("1796632549.3549552")[1:-1] + '"',  # BigQuery: a string literal
])
def test_a_stage_tables_comment_names_the_newest_load_it_includes(comment):
    assert sh._built_through(comment) == 1796632549.3549552  # noqa: SLF001
    assert sh._built_through(None) is None  # noqa: SLF001 - missing, or not ours: rebuilt
    assert sh._built_through("made by hand") is None  # noqa: SLF001


@pytest.mark.parametrize(("destination", "said"), [
    ("filesystem", ""),  # no SQL: nothing to say
    ("motherduck", "stage history tables (lead_status_history, opportunity_status_history) "
                   "are built on DuckDB, PostgreSQL and BigQuery; not on motherduck"),
])
def test_other_destinations_get_no_stage_tables(tmp_path, caplog, destination, said):
    factory = getattr(dlt.destinations, destination)
    made = factory(bucket_url=str(tmp_path)) if destination == "filesystem" else factory()
    pipeline = dlt.pipeline(pipeline_name=f"stage_{destination}", destination=made,
                            pipelines_dir=str(tmp_path))
    caplog.set_level(logging.INFO, logger="close_source")
    sh.ensure(pipeline)  # would fail connecting, were it to try: no credentials
    assert [record.getMessage() for record in caplog.records] == ([said] if said else [])
