"""Readers never see a half-loaded table, and a re-run after a failed load loads nothing twice.

Tables replaced in full are loaded into the staging dataset and swapped in by one transaction
(dlt's `insert-from-staging`), so a run killed while it writes them leaves every table as the
previous run left it. A load job whose rows the destination committed but whose completion dlt
had not recorded is not run on top of them again: the package is loaded again from a fresh
staging dataset (`close_source.run.resume`).
"""

from __future__ import annotations

import random
import re
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from close_fake import FakeClose, generate_org
from close_fake.churn import random_changes
from close_source.catalog import BY_TABLE
from close_source.pipeline import PIPELINE_NAME
from close_source.run.environment import run_environment
from tests.cli_runs import (
    KEY,
    output,
    pipeline_of,
    run_to_the_end,
    sessions_waiting_on_a_lock,
    start_run,
    wait_until,
)
from tests.helpers import rows
from tests.invariant import every_table_mismatches

FULL_LOAD = {"SOURCES__CLOSE__SYNC_MODE": "full"}  # a reload that replaces every table


def snapshot(workdir: Path, dsn: str | None) -> dict[str, Any]:
    """Per data table: its row count and, for tables with ids, the sorted ids."""
    pipeline = pipeline_of(workdir, dsn)
    found: dict[str, Any] = {}
    for table in sorted(pipeline.default_schema.data_table_names()):
        columns = pipeline.default_schema.tables[table]["columns"]
        select = "id" if "id" in columns else "count(*)"
        found[table] = sorted(row[0] for row in rows(pipeline, f"SELECT {select} FROM "
                                                               f"close.{table}"))
    return found


def _dsn(request: pytest.FixtureRequest, kind: str) -> str | None:
    return request.getfixturevalue("postgres_server").new_database() if kind == "postgres" \
        else None


def test_replace_strategy_is_insert_from_staging_during_a_run(request, tmp_path):
    for kind in ("duckdb", "postgres"):
        pipeline = pipeline_of(tmp_path / kind, _dsn(request, kind))
        with run_environment():
            assert pipeline.destination_client().config.replace_strategy == \
                "insert-from-staging"
        # after it, dlt's own default again: nothing of the run stays in the process
        assert pipeline.destination_client().config.replace_strategy != "insert-from-staging"


def swapped_in(workdir: Path, dsn: str | None) -> set[str]:
    """The tables the last run's load copied in from the staging dataset: each has a
    follow-up SQL job (the staging dataset itself is dropped after the run)."""
    package = pipeline_of(workdir, dsn).last_trace.last_load_info.load_packages[-1]
    return {job.job_file_info.table_name for job in package.jobs["completed_jobs"]
            if job.job_file_info.file_format == "sql"}


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_first_load_writes_tables_directly_and_a_reload_swaps_them_in(request, tmp_path,
                                                                       kind):
    """A first load has no previous rows to keep visible: its tables are loaded in place, not
    copied from staging (a quarter of its time); a reload goes through staging."""
    dsn = _dsn(request, kind)
    org = generate_org(seed=60, leads=10)
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, dsn)
        # but merges, which go through staging anyway: the custom field changes, and the
        # (empty) field changes
        assert swapped_in(tmp_path, dsn) <= {"custom_field_changes", "field_changes"}
        run_to_the_end(tmp_path, fake, dsn, **FULL_LOAD)
        assert {"leads", "users"} <= swapped_in(tmp_path, dsn)
    assert not every_table_mismatches(org, pipeline_of(tmp_path, dsn))


def test_duckdb_killed_while_swapping_in_a_table_keeps_every_table(tmp_path):
    """The run dies inside the transaction that replaces the first table, right after its
    rows were written: nothing of it is visible, and every table holds the previous rows."""
    org = generate_org(seed=61, leads=10)
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, None)
        before = snapshot(tmp_path, None)
        killed = start_run(tmp_path, fake, None, hook="kill-in-replace", **FULL_LOAD)
        killed.wait(timeout=300)
        assert killed.returncode == -signal.SIGKILL, output(tmp_path)
        assert snapshot(tmp_path, None) == before
        run_to_the_end(tmp_path, fake, None)
    assert not every_table_mismatches(org, pipeline_of(tmp_path, None))


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_killed_between_a_child_tables_delete_and_insert_keeps_every_table(request, tmp_path,
                                                                           kind):
    """A child table's replace is a DELETE and an INSERT from staging, with no DDL in it: dlt
    1.31 ran such a job in autocommit, so a kill between the two left the table empty."""
    org = generate_org(seed=62, leads=10)
    dsn = _dsn(request, kind)
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, dsn)
        before = snapshot(tmp_path, dsn)
        assert before["leads__addresses"][0] > 0
        killed = start_run(tmp_path, fake, dsn, hook="kill-between-statements",
                           CLOSE_TEST_TABLE="leads__addresses", **FULL_LOAD)
        killed.wait(timeout=300)
        assert killed.returncode == -signal.SIGKILL, output(tmp_path)
        assert snapshot(tmp_path, dsn) == before
        run_to_the_end(tmp_path, fake, dsn)
    assert not every_table_mismatches(org, pipeline_of(tmp_path, dsn))


def test_postgres_killed_while_a_replace_waits_keeps_every_table(postgres_server, tmp_path):
    """The reload of `leads` waits for a lock the test holds (other tables of the load may be
    swapped in already); the run is killed there: each table is as before, `leads` too."""
    dsn = postgres_server.new_database()
    org = generate_org(seed=62, leads=10)
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, dsn)
        before = snapshot(tmp_path, dsn)
        blocker = psycopg2.connect(dsn)
        try:
            with blocker.cursor() as cursor:  # readers pass, writers wait
                cursor.execute("LOCK TABLE close.leads IN SHARE MODE")
            process = start_run(tmp_path, fake, dsn, **FULL_LOAD)
            wait_until(lambda: bool(sessions_waiting_on_a_lock(dsn)), process,
                       "the load reached the locked table")
            waiting = sessions_waiting_on_a_lock(dsn)
            assert "close" in waiting[0] and "leads" in waiting[0], waiting
            assert waiting[0].lstrip().upper().startswith(("DELETE", "INSERT", "TRUNCATE")), \
                waiting
            process.kill()
            process.wait(timeout=60)
        finally:
            blocker.rollback()
            blocker.close()
        assert snapshot(tmp_path, dsn) == before
        run_to_the_end(tmp_path, fake, dsn)
    assert not every_table_mismatches(org, pipeline_of(tmp_path, dsn))


@pytest.mark.parametrize(("kind", "run", "table"), [
    ("duckdb", "full", "leads"),  # a first load: tables written in place
    ("duckdb", "reload", "leads"),  # through staging
    ("postgres", "reload", "leads"),
    # a merge: dlt deduplicates root rows by key, not child rows (merged per parent)
    ("duckdb", "incremental", "leads__addresses"),
    # `--full-refresh`: initialising the package again drops every table again
    ("duckdb", "refresh", "leads"),
    ("postgres", "refresh", "leads"),
])
def test_a_job_committed_but_not_recorded_is_not_loaded_twice(request, tmp_path, kind, run,
                                                               table):
    """The run dies after the destination committed the job of `table` (its rows are in
    staging) and before dlt recorded it: the next run loads the package again, once."""
    dsn = _dsn(request, kind)
    org = generate_org(seed=63, leads=10)
    with FakeClose(org, api_key=KEY) as fake:
        if run != "full":
            run_to_the_end(tmp_path, fake, dsn)
            org.advance(timedelta(minutes=10))
            random_changes(org, random.Random(63), 30, step=timedelta(seconds=5))
            org.advance(timedelta(seconds=30))
        killed = start_run(tmp_path, fake, dsn, hook="kill-after-commit",
                           args=("run", "--full-refresh") if run == "refresh" else ("run",),
                           CLOSE_TEST_TABLE=table, **(FULL_LOAD if run == "reload" else {}))
        killed.wait(timeout=300)
        assert killed.returncode == -signal.SIGKILL, output(tmp_path)
        package = tmp_path / "dlt_data" / "pipelines" / PIPELINE_NAME / "load" / "normalized"
        # the package whose `table` job was left as started (once, in a CI run under load,
        # `normalized` held a second entry; not reproduced: named if it comes back)
        entries = sorted(path.name for path in package.iterdir())
        started = [name for name in entries if (package / name / "started_jobs").is_dir() and
                   any(p.name.startswith(f"{table}.")
                       for p in (package / name / "started_jobs").iterdir())]
        assert len(started) == 1, f"the {table} job was left as started in one of {entries}"
        run_to_the_end(tmp_path, fake, dsn)
    pipeline = pipeline_of(tmp_path, dsn)
    assert not every_table_mismatches(org, pipeline)  # raises on a duplicate key
    for child in pipeline.default_schema.data_table_names():
        if "__" in child:  # child tables: one row per parent and position
            key = BY_TABLE[child.split("__")[0]].child_key or "parent_id"
            assert rows(pipeline, f"SELECT {key}, _pos, count(*) FROM close.{child} "
                                  f"GROUP BY 1, 2 HAVING count(*) > 1") == [], child
    said = re.search(r"was partly loaded: (\d+) tables were committed and stay \(([^)]*)\); "
                     r"(\d+) load again \(([^)]*)\)", (tmp_path / "run.log").read_text())
    assert said is not None
    assert table in said.group(4).split(", ")  # its job was committed but not recorded
    assert table not in said.group(2).split(", ")
    if run == "refresh":
        assert said.group(1) == "0", said.group(0)
