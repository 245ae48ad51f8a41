"""One run at a time: a second `close-sync run` of the same pipeline exits 2 and says who runs,
on DuckDB and PostgreSQL (there also from another machine: another working directory, the same
dataset); a run killed while it holds the lock leaves nothing the next run must clean up."""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest

from close_fake import FakeClose, RequestRecord, generate_org
from close_source.pipeline import PIPELINE_NAME
from close_source.run.lock import holder_of
from tests.cli_runs import KEY, output, pipeline_of, run_to_the_end, start_run, wait_until
from tests.invariant import every_table_mismatches


def hold_the_first_preflight(arrived: threading.Event,
                             release: threading.Event) -> Callable[[RequestRecord], None]:
    """A fake-server hook: the first `GET /me/` (made under the run lock) waits for `release`."""

    def hook(record: RequestRecord) -> None:
        if record.path.rstrip("/").endswith("/me") and not arrived.is_set():
            arrived.set()
            release.wait(timeout=240)

    return hook


def working_dir(workdir: Path) -> Path:
    return workdir / "dlt_data" / "pipelines" / PIPELINE_NAME


@pytest.mark.parametrize("case", ["duckdb", "postgres", "postgres from another machine"])
def test_a_second_run_exits_2_while_the_first_completes(request, tmp_path, case):
    dsn = request.getfixturevalue("postgres_server").new_database() \
        if case.startswith("postgres") else None
    first_dir = tmp_path / "a"
    second_dir = tmp_path / "b" if case.endswith("machine") else first_dir
    org = generate_org(seed=91, leads=10)
    arrived, release = threading.Event(), threading.Event()
    with FakeClose(org, api_key=KEY, on_request=hold_the_first_preflight(arrived, release)) \
            as fake:
        first = start_run(first_dir, fake, dsn)
        try:
            wait_until(arrived.is_set, first, "the first run's preflight")
            second = start_run(second_dir, fake, dsn, log="second.log")
            second.wait(timeout=120)
            assert first.poll() is None  # the first was holding the lock all along
        finally:
            release.set()
        first.wait(timeout=300)
        assert first.returncode == 0, output(first_dir)
    lines = output(second_dir, "second.log").splitlines()
    assert second.returncode == 2, lines
    assert "Traceback" not in "\n".join(lines)
    (message,) = [line for line in lines if line.startswith("close-sync: ")]
    if case.endswith("machine"):  # the file lock is another machine's: PostgreSQL's holds
        assert re.fullmatch(
            rf"close-sync: another close-sync run of pipeline {PIPELINE_NAME} is loading "
            rf"dataset close of this PostgreSQL database \(pid {first.pid} on \S+, "
            r"started \d\d:\d\d UTC\)", message), message
    else:
        assert re.fullmatch(rf"close-sync: another close-sync run of pipeline {PIPELINE_NAME} "
                            rf"is in progress \(pid {first.pid}, started \d\d:\d\d UTC\)",
                            message), message
    assert not every_table_mismatches(org, pipeline_of(first_dir, dsn))


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_run_killed_while_holding_the_lock_is_taken_over(request, tmp_path, kind):
    dsn = request.getfixturevalue("postgres_server").new_database() if kind == "postgres" \
        else None
    org = generate_org(seed=92, leads=10)
    arrived, release = threading.Event(), threading.Event()
    with FakeClose(org, api_key=KEY, on_request=hold_the_first_preflight(arrived, release)) \
            as fake:
        killed = start_run(tmp_path, fake, dsn)
        try:
            wait_until(arrived.is_set, killed, "the run's preflight")
            assert (holder_of(working_dir(tmp_path)) or {}).get("pid") == killed.pid
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=60)
        finally:
            release.set()
        assert killed.returncode == -signal.SIGKILL
        assert (working_dir(tmp_path) / "close-sync.lock").exists()  # left behind, not held
        assert holder_of(working_dir(tmp_path)) is None
        if dsn is not None:  # the server ends the killed run's session when it sees it closed
            wait_until(lambda: not _advisory_locks(dsn), None, "the killed session's end")
        run_to_the_end(tmp_path, fake, dsn)
    assert not every_table_mismatches(org, pipeline_of(tmp_path, dsn))


def _advisory_locks(dsn: str) -> int:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            return int(cursor.fetchone()[0])
    finally:
        connection.close()
