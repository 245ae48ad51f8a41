"""What a reader of the warehouse finds after a run: no staging dataset beside the real one
(`close_source.run.staging`), and on PostgreSQL a primary key on each root table's key and an
index on each column naming a lead and on each child table's parent key
(`close_source.run.postgres_keys`), made once, also in a warehouse made before them; and a
missing PostgreSQL driver said in one line.

One organisation per warehouse is synced by a full load, then by an incremental run of changes
(a lead merge among them, with the `events` table), and on PostgreSQL once more with nothing to
apply after its keys were dropped, as in a warehouse an older close-dlt loaded; what each run
left is kept for the tests to read.
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dlt
import psycopg2
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import changes as c
from close_fake import org as o
from close_fake.churn import random_changes
from close_source.catalog import CATALOG, EVENTS_TABLE
from close_source.run import postgres_keys
from tests.cli_runs import (
    assert_one_line_user_error,
    output,
    pipeline_of,
    run_env,
    run_to_the_end,
    sessions_waiting_on_a_lock,
    start_run,
    wait_until,
)
from tests.conftest import WAREHOUSES, warehouse
from tests.helpers import rows, sync
from tests.invariant import every_table_mismatches

TABLES = [entry.table for entry in CATALOG] + [EVENTS_TABLE]
# (table, index, primary, its columns) of every index of the dataset's tables
KEYS_SQL = """
SELECT c.relname, i.relname, x.indisprimary, ARRAY(SELECT a.attname FROM unnest(x.indkey)
    WITH ORDINALITY AS k(attnum, position) JOIN pg_attribute a ON a.attrelid = x.indrelid
    AND a.attnum = k.attnum ORDER BY k.position)
FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'close' ORDER BY 1, 2"""
Key = tuple[str, str, bool, tuple[str, ...]]


@dataclass
class Seen:
    """What one run left in the warehouse."""

    staging: list[str]  # schemas named like a staging dataset
    mismatches: dict[str, Any]
    through_staging: set[str]  # tables the run's load merged or swapped in from staging
    primary_keys: dict[str, tuple[str, ...]]  # per data table of the schema: its key hint
    columns: dict[str, list[str]]  # per data table: its columns
    keys: list[Key] = field(default_factory=list)  # PostgreSQL


@dataclass
class Synced:
    kind: str
    pipeline: dlt.Pipeline
    org: FakeOrg
    runs: dict[str, Seen]


def staging_schemas(pipeline: dlt.Pipeline, kind: str) -> list[str]:
    sql = ("SELECT nspname FROM pg_namespace WHERE nspname LIKE '%staging%'" if kind == "postgres"
           else "SELECT schema_name FROM information_schema.schemata "
                "WHERE schema_name LIKE '%staging%' UNION ALL SELECT DISTINCT table_schema "
                "FROM information_schema.tables WHERE table_schema LIKE '%staging%'")
    return sorted({row[0] for row in rows(pipeline, sql)})


def keys(pipeline: dlt.Pipeline) -> list[Key]:
    return [(table, index, primary, tuple(columns))
            for table, index, primary, columns in rows(pipeline, KEYS_SQL)]


def seen(pipeline: dlt.Pipeline, org: FakeOrg, kind: str) -> Seen:
    package = pipeline.last_trace.last_load_info.load_packages[-1]
    followed_up = {job.job_file_info.table_name for job in package.jobs["completed_jobs"]
                   if job.job_file_info.file_format == "sql"}
    schema = pipeline.default_schema
    columns = {table: schema.get_table_columns(table) for table in schema.data_table_names()}
    primary_keys = {table: tuple(name for name, column in found.items()
                                 if column.get("primary_key"))
                    for table, found in columns.items()}
    return Seen(staging_schemas(pipeline, kind), every_table_mismatches(org, pipeline),
                followed_up, primary_keys, {table: list(found) for table, found in columns.items()},
                keys(pipeline) if kind == "postgres" else [])


def ours(key: Key) -> bool:
    """Not one dlt made: its tables' and the `_dlt_id` UNIQUE of tables loaded from dicts."""
    table, _, _, columns = key
    return not table.startswith("_dlt") and columns != ("_dlt_id",)


def drop_keys(pipeline: dlt.Pipeline) -> None:
    """The dataset as an older close-dlt left it: no primary key, no index of ours."""
    with pipeline.sql_client() as client:
        for table, index, primary, columns in keys(pipeline):
            if not ours((table, index, primary, columns)):
                continue
            client.execute_sql(f'ALTER TABLE close."{table}" DROP CONSTRAINT "{index}"'
                               if primary else f'DROP INDEX close."{index}"')


@pytest.fixture(scope="module", params=WAREHOUSES)
def synced(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    kind = request.param
    org = generate_org(seed=90, leads=12)
    workdir = tmp_path_factory.mktemp(f"clean-{kind}")
    runs: dict[str, Seen] = {}
    with FakeClose(org) as fake:
        pipeline = sync(fake, workdir, warehouse=warehouse(request, kind))
        runs["full"] = seen(pipeline, org, kind)
        org.advance(timedelta(minutes=10))
        random_changes(org, random.Random(90), 30, step=timedelta(seconds=5))
        source, destination = (lead["id"] for lead in org.all(o.LEAD)[:2])
        c.merge_leads(org, source, destination)
        org.advance(timedelta(seconds=30))
        sync(fake, workdir, pipeline=pipeline, resources=TABLES)
        runs["incremental"] = seen(pipeline, org, kind)
        if kind == "postgres":
            drop_keys(pipeline)
            assert [key for key in keys(pipeline) if ours(key)] == []
            org.advance(timedelta(minutes=10))
            sync(fake, workdir, pipeline=pipeline, resources=TABLES)
            runs["nothing to apply"] = seen(pipeline, org, kind)
        yield Synced(kind, pipeline, org, runs)


# ---- staging --------------------------------------------------------------------------------


def test_no_staging_dataset_is_left_after_a_run(synced):
    for run, found in synced.runs.items():
        assert found.staging == [], (run, found.staging)
        assert found.mismatches == {}, (run, found.mismatches)
    # the incremental run did load through staging: merges, and the every-run tables' swaps
    assert {"leads", "users", "lead_merges", "events"} <= synced.runs["incremental"].through_staging
    if "nothing to apply" in synced.runs:
        assert "users" in synced.runs["nothing to apply"].through_staging


# ---- PostgreSQL keys ------------------------------------------------------------------------


on_postgres = pytest.mark.parametrize("synced", ["postgres"], indirect=True)


@on_postgres
def test_every_root_table_has_its_primary_key(synced):
    for run, found in synced.runs.items():
        primary = {table: columns for table, _, is_primary, columns in found.keys if is_primary}
        for table, key in found.primary_keys.items():
            if "__" in table:  # child tables: keyed by parent and position, not an id
                assert not key and table not in primary, (run, table)
            else:
                assert primary.get(table) == key, (run, table, key)
        assert primary["custom_fields"] == ("id", "object_type"), run
        assert primary["leads"] == ("id",), run
        if run != "full":
            assert primary["lead_merges"] == ("source_lead_id",), run
            assert primary["events"] == ("id",), run


@on_postgres
def test_lead_ids_and_parent_keys_are_indexed(synced):
    parent_keys = {f"{entry.table}__{name}": entry.child_key for entry in CATALOG
                   for name in entry.child_lists}
    for run, found in synced.runs.items():
        leading = {(table, columns[0]) for table, _, _, columns in found.keys}
        for table, columns in found.columns.items():
            for column in columns:
                if column == "lead_id" or column.endswith("_lead_id"):
                    assert (table, column) in leading, (run, table, column)
            if table in parent_keys:
                assert (table, parent_keys[table]) in leading, (run, table)
        assert ("calls", "lead_id") in leading and ("contacts__emails", "contact_id") in leading


@on_postgres
def test_a_later_run_makes_no_second_index_and_names_fit(synced):
    for run, found in synced.runs.items():
        on_columns = [(table, columns) for table, _, _, columns in found.keys]
        assert len(on_columns) == len(set(on_columns)), run
        assert all(len(index) <= 63 for _, index, _, _ in found.keys)
    # the runs after the first one index only the tables it had not loaded
    later = set(synced.runs["incremental"].keys) - set(synced.runs["full"].keys)
    assert {table for table, *_ in later} == {"lead_merges", "events"}
    # made again in the dataset an older version left without them
    assert synced.runs["nothing to apply"].keys == synced.runs["incremental"].keys


def test_index_names_stay_within_postgres_limit():
    long_table = "custom_activity_" + "x" * 60
    names = {postgres_keys.index_name(long_table + suffix, "lead_id_idx") for suffix in "ab"}
    assert len(names) == 2 and all(len(name) <= 63 for name in names)
    assert postgres_keys.index_name("calls", "pkey") == "calls_pkey"


@on_postgres
def test_a_second_run_making_the_same_key_waits_and_adds_nothing(synced, caplog):
    """Another run (of another pipeline into this dataset) holds the key-making lock and
    makes `leads`' primary key itself: this run waits, sees it and makes nothing."""
    pipeline = synced.pipeline
    dsn = pipeline.destination_client().config.credentials.to_native_representation()
    with pipeline.sql_client() as client:
        client.execute_sql("ALTER TABLE close.leads DROP CONSTRAINT leads_pkey")
    other = psycopg2.connect(dsn)
    errors: list[BaseException] = []
    holding = threading.Event()

    def this_run_waits() -> bool:
        return any("pg_advisory_xact_lock" in query
                   for query in sessions_waiting_on_a_lock(dsn))

    def other_run() -> None:
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)",
                               (postgres_keys.advisory_key("close"),))
                cursor.execute("ALTER TABLE close.leads ADD CONSTRAINT leads_pkey "
                               "PRIMARY KEY (id)")
            holding.set()
            wait_until(this_run_waits, None, "this run waits for the lock", timeout=60)
            other.commit()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
            other.rollback()
        finally:
            holding.set()

    caplog.set_level(logging.INFO, logger="close_source")
    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert holding.wait(timeout=60)
        postgres_keys.ensure(pipeline)
    finally:
        thread.join(timeout=60)
        other.close()
    assert not errors
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert [key for key in keys(pipeline) if key[0] == "leads" and key[2]] == \
        [("leads", "leads_pkey", True, ("id",))]


@on_postgres
def test_a_table_a_reader_holds_is_keyed_by_a_later_run(synced, caplog, monkeypatch):
    """A reader's open transaction on `leads` holds off the primary key (it would wait past
    the lock timeout): the run warns and goes on, the other tables keep theirs, the next run
    makes it."""
    pipeline = synced.pipeline
    dsn = pipeline.destination_client().config.credentials.to_native_representation()
    with pipeline.sql_client() as client:
        client.execute_sql("ALTER TABLE close.leads DROP CONSTRAINT leads_pkey")
        client.execute_sql("DROP INDEX close.calls_lead_id_idx")
    monkeypatch.setattr(postgres_keys, "LOCK_TIMEOUT", "200ms")
    reader = psycopg2.connect(dsn)
    try:
        with reader.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM close.leads")
        with caplog.at_level(logging.INFO, logger="close_source"):
            postgres_keys.ensure(pipeline)
    finally:
        reader.rollback()
        reader.close()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "leads (" in warned[0] and "lock timeout" in warned[0], warned
    found = keys(pipeline)
    assert not [key for key in found if key[0] == "leads" and key[2]]
    assert ("calls", "calls_lead_id_idx", False, ("lead_id",)) in found
    postgres_keys.ensure(pipeline)
    assert keys(pipeline) == synced.runs["nothing to apply"].keys


# ---- runs of the command line ---------------------------------------------------------------


def test_a_run_killed_while_making_a_key_leaves_no_half_of_it(postgres_server, tmp_path):
    """Killed right after a unique index was built, before it became the primary key and
    committed: nothing of it stays, and the next run makes every key."""
    dsn = postgres_server.new_database()
    org = generate_org(seed=91, leads=5)
    with FakeClose(org, api_key="api_killed_run_test_key") as fake:
        killed = start_run(tmp_path, fake, dsn, hook="kill-in-keys")
        killed.wait(timeout=300)
        assert killed.returncode < 0, output(tmp_path)
        pipeline = pipeline_of(tmp_path, dsn)
        assert [key for key in keys(pipeline) if ours(key)] == []
        assert not every_table_mismatches(org, pipeline)  # the load itself had committed
        run_to_the_end(tmp_path, fake, dsn)
    pipeline = pipeline_of(tmp_path, dsn)
    primary = {table for table, _, is_primary, _ in keys(pipeline) if is_primary}
    assert {"leads", "calls", "users", "custom_fields"} <= primary
    assert not every_table_mismatches(org, pipeline)


def test_postgres_without_its_driver_names_the_extra(tmp_path):
    """close-dlt installed without the `postgres` extra: psycopg2 cannot be imported."""
    env = run_env(tmp_path, None, "postgresql://loader:secret@127.0.0.1:9/analytics",
                  SOURCES__CLOSE__API_KEY="api_test")
    result = subprocess.run([sys.executable, "-m", "tests.child", "no-psycopg2", "run",
                             "--destination", "postgres"], cwd=tmp_path, env=env, text=True,
                            capture_output=True, timeout=120)
    line = assert_one_line_user_error(result, "postgres destination", "psycopg2",
                                      'pip install -e ".[postgres]" in close-dlt\'s clone')
    assert "secret" not in result.stderr + result.stdout, line
