"""A `close-sync run` killed (SIGKILL) at any point: the next run neither loses nor duplicates
a change. The watermark lives in dlt's state, committed with the load it belongs to, so a run
that dies while reading leaves the previous watermark, and one that dies while loading leaves
a load package that the next run finishes before it reads on."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg2
import pytest

from close_fake import FakeClose, FakeOrg, RequestRecord, generate_org
from close_fake import changes as c
from close_fake import org as o
from close_fake.churn import random_changes
from close_source.pipeline import PIPELINE_NAME
from tests.cli_runs import (
    KEY,
    output,
    pipeline_of,
    run_to_the_end,
    sessions_waiting_on_a_lock,
    start_run,
    wait_until,
)
from tests.invariant import every_table_mismatches


def changed(org: FakeOrg, seed: int) -> None:
    org.advance(timedelta(minutes=10))
    random_changes(org, random.Random(seed), 30, step=timedelta(seconds=5))
    lead = org.all(o.LEAD)[0]
    c.update(org, o.LEAD, lead["id"], {"name": f"Renamed {seed}"})  # leads surely change
    org.advance(timedelta(seconds=30))


def kill_on(process_of: Callable[[], subprocess.Popen[str] | None], endpoint: str,
            nth: int) -> Callable[[RequestRecord], None]:
    """A fake-server hook: SIGKILL the run when its `nth` request to `endpoint` (of the Event
    Log: for a window) arrives."""
    seen = [0]

    def hook(record: RequestRecord) -> None:
        window = "date_updated__gte" in record.params or "_cursor" in record.params
        if record.path.rstrip("/").endswith(endpoint.strip("/")) and \
                (endpoint != "/event/" or window):  # not the query of Close's time
            seen[0] += 1
            process = process_of()
            if seen[0] == nth and process is not None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()

    return hook


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_killed_while_reading_the_event_log(request, tmp_path: Path, kind: str):
    dsn = request.getfixturevalue("postgres_server").new_database() if kind == "postgres" \
        else None
    org = generate_org(seed=81, leads=10)
    running: list[subprocess.Popen[str]] = []
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, dsn)
        changed(org, 81)
        fake.on_request = kill_on(lambda: running[-1] if running else None, "/event/", 20)
        running.append(start_run(tmp_path, fake, dsn))
        running[-1].wait(timeout=300)
        assert running[-1].returncode == -signal.SIGKILL
        fake.on_request = None
        changed(org, 82)  # more changes before the next run
        run_to_the_end(tmp_path, fake, dsn)
    assert not every_table_mismatches(org, pipeline_of(tmp_path, dsn))


def test_killed_while_loading(postgres_server, tmp_path: Path):
    """PostgreSQL: the run is killed while its merge into `leads` waits for a lock the test
    holds; other tables of the same load may have been merged already. The lock lets reads
    through: the extract reads `leads` too (how many rows the deletes it applies remove)."""
    dsn = postgres_server.new_database()
    org = generate_org(seed=83, leads=10)
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, dsn)
        changed(org, 83)
        blocker = psycopg2.connect(dsn)
        try:
            with blocker.cursor() as cursor:
                cursor.execute("LOCK TABLE close.leads IN EXCLUSIVE MODE")
            process = start_run(tmp_path, fake, dsn)
            _wait_for_a_blocked_loader(dsn, process, tmp_path)
            process.kill()
            process.wait(timeout=60)
            assert process.returncode == -signal.SIGKILL
        finally:
            blocker.rollback()
            blocker.close()
        normalized = tmp_path / "dlt_data" / "pipelines" / PIPELINE_NAME / "load" / "normalized"
        assert list(normalized.iterdir()), "the killed run left its load package behind"
        changed(org, 84)
        run_to_the_end(tmp_path, fake, dsn)
    assert not every_table_mismatches(org, pipeline_of(tmp_path, dsn))


def _wait_for_a_blocked_loader(dsn: str, process: subprocess.Popen[str], workdir: Path) -> None:
    """Until a session of this database waits on our lock (a condition, not a fixed sleep)."""
    try:
        wait_until(lambda: bool(sessions_waiting_on_a_lock(dsn)), process,
                   "the loader reached the locked table")
    except AssertionError as failure:
        pytest.fail(f"{failure}: {output(workdir)}")
