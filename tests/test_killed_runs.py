"""A `close-sync run` killed (SIGKILL) at any point: the next run neither loses nor duplicates
a change. The watermark lives in dlt's state, committed with the load it belongs to, so a run
that dies while reading leaves the previous watermark, and one that dies while loading leaves
a load package that the next run finishes before it reads on."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import dlt
import psycopg2
import pytest

from close_source.fake import FakeClose, FakeOrg, RequestRecord, generate_org
from close_source.fake import changes as c
from close_source.fake import org as o
from close_source.fake.churn import random_changes
from close_source.sync import PIPELINE_NAME, make_pipeline
from tests.invariant import every_table_mismatches

KEY = "api_killed_run_test_key"


def start_run(workdir: Path, fake: FakeClose, dsn: str | None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION"))}
    env.update(DLT_DATA_DIR=str(workdir / "dlt_data"), RUNTIME__DLTHUB_TELEMETRY="false",
               SOURCES__CLOSE__API_KEY=KEY, SOURCES__CLOSE__BASE_URL=fake.base_url,
               SOURCES__CLOSE__EXPORT_POLL_INTERVAL="0.02")
    args = ["run"]
    if dsn is not None:
        env["DESTINATION__POSTGRES__CREDENTIALS"] = dsn
        args += ["--destination", "postgres"]
    # output to a file: a pipe nobody reads while the test waits would block the run
    log = open(workdir / "run.log", "a")  # noqa: SIM115 - the child process owns it
    return subprocess.Popen([sys.executable, "-m", "close_source.cli", *args], cwd=workdir,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def output(workdir: Path) -> str:
    return (workdir / "run.log").read_text()[-3000:]


def run_to_the_end(workdir: Path, fake: FakeClose, dsn: str | None) -> None:
    process = start_run(workdir, fake, dsn)
    process.wait(timeout=300)
    assert process.returncode == 0, output(workdir)


def pipeline_of(workdir: Path, dsn: str | None) -> dlt.Pipeline:
    """The CLI's pipeline, opened in this process to read what it loaded."""
    os.environ["DLT_DATA_DIR"] = str(workdir / "dlt_data")
    try:
        destination = dlt.destinations.postgres(dsn) if dsn else None
        cwd = os.getcwd()
        os.chdir(workdir)  # the DuckDB file lies in the working directory of the run
        try:
            pipeline = make_pipeline(destination, progress=False,
                                     pipelines_dir=str(workdir / "dlt_data" / "pipelines"))
        finally:
            os.chdir(cwd)
        return pipeline
    finally:
        del os.environ["DLT_DATA_DIR"]


def changed(org: FakeOrg, seed: int) -> None:
    org.advance(timedelta(minutes=10))
    random_changes(org, random.Random(seed), 30, step=timedelta(seconds=5))
    lead = org.all(o.LEAD)[0]
    c.update(org, o.LEAD, lead["id"], {"name": f"Renamed {seed}"})  # leads surely change
    org.advance(timedelta(seconds=30))


def kill_on(process_of: Callable[[], subprocess.Popen[str] | None], endpoint: str,
            nth: int) -> Callable[[RequestRecord], None]:
    """A fake-server hook: SIGKILL the run when its `nth` request to `endpoint` arrives."""
    seen = [0]

    def hook(record: RequestRecord) -> None:
        if record.path.rstrip("/").endswith(endpoint.strip("/")):
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
    holds; other tables of the same load may have been merged already."""
    dsn = postgres_server.new_database()
    org = generate_org(seed=83, leads=10)
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, dsn)
        changed(org, 83)
        blocker = psycopg2.connect(dsn)
        try:
            with blocker.cursor() as cursor:
                cursor.execute("LOCK TABLE close.leads IN ACCESS EXCLUSIVE MODE")
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
    deadline = time.monotonic() + 240
    watcher = psycopg2.connect(dsn)
    # each query its own transaction: pg_stat_activity is a snapshot per transaction (and
    # `with connection` would open one even in autocommit mode)
    watcher.autocommit = True
    try:
        with watcher.cursor() as cursor:
            while time.monotonic() < deadline:
                assert process.poll() is None, output(workdir)
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                               "current_database() AND wait_event_type = 'Lock'")
                if cursor.fetchone()[0]:
                    return
                time.sleep(0.05)
    finally:
        watcher.close()
    pytest.fail(f"the loader never reached the locked table: {output(workdir)}")
