"""`close-sync run` as separate processes against a fake Close in the test process: started,
waited for, killed, and their pipeline opened afterwards to read what they loaded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dlt
import psycopg2

from close_fake import FakeClose
from close_source.pipeline import PIPELINE_NAME, duckdb_destination, make_pipeline

KEY = "api_killed_run_test_key"
ROOT = Path(__file__).resolve().parent.parent


def run_env(workdir: Path, fake: FakeClose | None, dsn: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION"))}
    env.update(DLT_DATA_DIR=str(workdir / "dlt_data"), RUNTIME__DLTHUB_TELEMETRY="false",
               PYTHONPATH=str(ROOT))
    if fake is not None:
        env.update(SOURCES__CLOSE__API_KEY=KEY, SOURCES__CLOSE__BASE_URL=fake.base_url,
                   SOURCES__CLOSE__EXPORT_POLL_INTERVAL="0.02")
    if dsn is not None:
        env["DESTINATION__POSTGRES__CREDENTIALS"] = dsn
    env.update(extra)
    return env


def start_run(workdir: Path, fake: FakeClose, dsn: str | None, *, log: str = "run.log",
              hook: str | None = None, args: tuple[str, ...] = ("run",),
              **env: str) -> subprocess.Popen[str]:
    """`close-sync run` in `workdir`; `hook` names a fault of `tests/child.py` to install."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = list(args) + (["--destination", "postgres"] if dsn is not None else [])
    command = ["-m", "tests.child", hook, *argv] if hook else ["-m", "close_source.cli", *argv]
    # output to a file: a pipe nobody reads while the test waits would block the run
    out = open(workdir / log, "a")  # noqa: SIM115 - the child process owns it
    return subprocess.Popen([sys.executable, *command], cwd=workdir,
                            env=run_env(workdir, fake, dsn, **env), stdout=out,
                            stderr=subprocess.STDOUT, text=True)


def output(workdir: Path, log: str = "run.log") -> str:
    return (workdir / log).read_text()[-3000:]


def run_to_the_end(workdir: Path, fake: FakeClose, dsn: str | None, **kwargs: str) -> None:
    process = start_run(workdir, fake, dsn, **kwargs)
    process.wait(timeout=300)
    assert process.returncode == 0, output(workdir, kwargs.get("log", "run.log"))


def pipeline_of(workdir: Path, dsn: str | None) -> dlt.Pipeline:
    """The CLI's pipeline, opened in this process to read what it loaded."""
    workdir.mkdir(parents=True, exist_ok=True)
    # the DuckDB file lies in the working directory of the run
    destination = dlt.destinations.postgres(dsn) if dsn else \
        duckdb_destination(workdir / f"{PIPELINE_NAME}.duckdb")
    return make_pipeline(destination, progress=False,
                         pipelines_dir=str(workdir / "dlt_data" / "pipelines"))


def close_sync(args: list[str], cwd: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
    """`close-sync ARGS` run to its end in `cwd`, with only the given Close settings (None:
    the variable unset)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    environment.update(DLT_DATA_DIR=str(cwd / "dlt_data"), RUNTIME__DLTHUB_TELEMETRY="false")
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "close_source.cli", *args], cwd=cwd,
                          env={k: v for k, v in environment.items() if v is not None},
                          capture_output=True, text=True, timeout=300)


def assert_one_line_user_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2, no traceback, one `close-sync: ` line holding every needle; returns it."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("close-sync: ")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str] | None,
               what: str, timeout: float = 240) -> None:
    """Poll `condition` (a fact about the run, not a duration) until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended (code {process.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sessions_waiting_on_a_lock(dsn: str) -> list[str]:
    """Queries of this database's sessions that wait for a lock."""
    # each query its own transaction: pg_stat_activity is a snapshot per transaction
    watcher = psycopg2.connect(dsn)
    watcher.autocommit = True
    try:
        with watcher.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE datname = "
                           "current_database() AND wait_event_type = 'Lock'")
            return [row[0] for row in cursor.fetchall()]
    finally:
        watcher.close()
