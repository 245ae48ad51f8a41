"""What the user can fix ends in one line naming it, exit code 2, no traceback: a DuckDB file
another process holds, a PostgreSQL DSN without password, a read-only or full file system, an
unwritable pipeline directory, a malformed `.dlt/*.toml`, a numeric or boolean setting with a
value it does not take. None of them blames credentials that are present, and none echoes a
secret. After a full disk, the next run with space completes the load and the tables are
exact."""

from __future__ import annotations

import inspect
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from close_fake import FakeClose, generate_org
from close_source import close_source
from close_source.pipeline import PIPELINE_NAME
from close_source.run.lock import run_lock
from tests.cli_runs import (
    KEY,
    assert_one_line_user_error,
    close_sync,
    pipeline_of,
    run_env,
)
from tests.invariant import every_table_mismatches


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Callable[[str], None]]:
    """A small file system of its own at `path` (tmpfs); yields `remount(options)`."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)

    try:
        yield remount
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def can_mount() -> bool:
    return shutil.which("mount") is not None and os.geteuid() == 0


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeClose]:
    with FakeClose(generate_org(seed=51, leads=8), api_key=KEY) as server:
        yield server


def run(cwd: Path, fake: FakeClose, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return close_sync(list(args or ["run"]), cwd, SOURCES__CLOSE__API_KEY=KEY,
                      SOURCES__CLOSE__BASE_URL=fake.base_url,
                      SOURCES__CLOSE__EXPORT_POLL_INTERVAL="0.02", **env)


def test_duckdb_file_held_by_another_process(fake, tmp_path):
    assert run(tmp_path, fake).returncode == 0
    database = tmp_path / f"{PIPELINE_NAME}.duckdb"
    with duckdb.connect(str(database)):  # this test process holds DuckDB's write lock
        result = run(tmp_path, fake)
    line = assert_one_line_user_error(result, f"the DuckDB file {database} is in use by another "
                                              f"process (PID {os.getpid()})",
                                      "close the file there", "it does not wait")
    assert "CREDENTIALS" not in line


def test_status_while_a_run_holds_the_file_says_a_run_is_in_progress(fake, tmp_path):
    assert run(tmp_path, fake).returncode == 0
    pipeline = pipeline_of(tmp_path, None)
    with run_lock(pipeline):
        with duckdb.connect(str(tmp_path / f"{PIPELINE_NAME}.duckdb")):
            result = run(tmp_path, fake, "status")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"A run of pipeline '{PIPELINE_NAME}' is in progress "
                                        f"(pid {os.getpid()}, started "), result.stdout
        assert "busy with that run" in result.stdout
        result = run(tmp_path, fake, "status")  # between its connections: the tables too
        second = run(tmp_path, fake)  # a second run stops at once, saying why
    assert result.returncode == 0, result.stderr
    assert "is in progress" in result.stdout and "leads  " in result.stdout
    assert_one_line_user_error(second, "another close-sync run", "is in progress")


def test_postgres_dsn_without_a_password(fake, tmp_path, postgres_server):
    dsn = postgres_server.dsn("postgres").replace(f":{postgres_server.password}@", "@")
    result = run(tmp_path, fake, "run", "--destination", "postgres",
                 DESTINATION__POSTGRES__CREDENTIALS=dsn)
    line = assert_one_line_user_error(result, "the postgres credentials have no password",
                                      "DESTINATION__POSTGRES__CREDENTIALS__PASSWORD")
    assert "no credentials" not in line
    assert postgres_server.password not in result.stdout + result.stderr


def test_status_with_a_wrong_postgres_password_fails_as_run_does(fake, tmp_path,
                                                                 postgres_server):
    """Before: `status` printed the working directory's "last run ... (succeeded)", then a
    traceback, exit 1."""
    dsn = postgres_server.new_database()
    assert run(tmp_path, fake, "run", "--destination", "postgres",
               DESTINATION__POSTGRES__CREDENTIALS=dsn).returncode == 0
    wrong = dsn.replace(f":{postgres_server.password}@", ":not-the-password@")
    results = [run(tmp_path, fake, command, "--destination", "postgres",
                   DESTINATION__POSTGRES__CREDENTIALS=wrong) for command in ("status", "run")]
    for result in results:
        assert_one_line_user_error(result, "cannot connect to the postgres destination",
                                   "password authentication failed")
        assert result.stdout == ""  # nothing misleading before the line
        assert "not-the-password" not in result.stderr


@pytest.mark.skipif(not can_mount(), reason="needs root to mount a read-only file system")
def test_read_only_working_directory(fake, tmp_path):
    with tmpfs(tmp_path / "ro", "4m") as remount:
        remount("ro")
        result = run(tmp_path / "ro", fake, DLT_DATA_DIR=str(tmp_path / "dlt_data"))
    line = assert_one_line_user_error(
        result, f"cannot write {tmp_path / 'ro' / PIPELINE_NAME}.duckdb: read-only file system",
        "the DuckDB file")
    assert "CREDENTIALS" not in line


@pytest.mark.skipif(not can_mount(), reason="needs root to mount a read-only file system")
def test_unwritable_pipeline_directory(fake, tmp_path):
    with tmpfs(tmp_path / "ro", "4m") as remount:
        remount("ro")
        result = run(tmp_path, fake, DLT_DATA_DIR=str(tmp_path / "ro" / "dlt"))
    assert_one_line_user_error(result, f"cannot write {tmp_path / 'ro' / 'dlt'}: read-only "
                                       "file system", "set DLT_DATA_DIR")


@pytest.mark.parametrize(("name", "content", "where"), [
    ("config.toml", '[sources.close]\ntimeout = 60\nmax_skip = = 3\n', "line 3 col 11"),
    ("secrets.toml", '[sources.close]\napi_key = "api_unterminated\n', "line 2 col 27"),
])
def test_malformed_toml_names_the_file_and_line(fake, tmp_path, name, content, where):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / name).write_text(content)
    result = run(tmp_path, fake)
    line = assert_one_line_user_error(result, f"{tmp_path / '.dlt' / name} is not valid TOML",
                                      where)
    assert "api_unterminated" not in line


SECONDS = "a number of seconds greater than 0"
SHARE = "a number greater than 0 and at most 1"
# Every numeric and boolean setting, once from .dlt/config.toml and once from the environment:
# a value that is not a number (or not true/false) from one, out of range from the other.
BAD_SETTINGS = [
    ("toml", "sources.close", "max_skip", '"x"', "a whole number greater than 0, not 'x'"),
    ("env", "sources.close", "max_skip", "-5", "a whole number greater than 0, not -5"),
    ("toml", "sources.close", "timeout", "-1", f"{SECONDS} (a year at most), not -1.0"),
    ("env", "sources.close", "timeout", "abc", f"{SECONDS} (a year at most), not 'abc'"),
    ("toml", "sources.close", "max_attempts", "0", "a whole number greater than 0, not 0"),
    ("env", "sources.close", "max_attempts", "three", "a whole number greater than 0"),
    ("toml", "sources.close", "rate_limit_share", "1.5", f"{SHARE}, not 1.5"),
    ("env", "sources.close", "rate_limit_share", "half", f"{SHARE}, not 'half'"),
    ("toml", "sources.close", "export_timeout", '"6h"', f"{SECONDS} (a year at most), not '6h'"),
    ("env", "sources.close", "export_timeout", "1e12", f"{SECONDS} (a year at most)"),
    ("toml", "sources.close", "export_poll_interval", "0", f"{SECONDS} (a year at most), not 0"),
    ("env", "sources.close", "export_poll_interval", "nan", f"{SECONDS} (a year at most), not nan"),
    ("toml", "sources.close", "window_memory_rows", '"lots"', "a whole number of rows, 0 or more"),
    ("env", "sources.close", "window_memory_rows", "-1", "a whole number of rows, 0 or more"),
    ("toml", "sources.close", "export_fallback", '"maybe"', "true or false, not 'maybe'"),
    ("env", "sources.close", "export_fallback", "2", "true or false, not '2'"),
    ("toml", "sources.close", "field_changes", "3", "true or false, not 3"),
    ("env", "sources.close", "field_changes", "perhaps", "true or false, not 'perhaps'"),
    ("toml", "extract", "workers", "0", "a whole number of threads greater than 0, not 0"),
    ("env", "extract", "workers", "abc", "a whole number of threads greater than 0, not 'abc'"),
]


def test_every_numeric_and_boolean_setting_is_covered():
    numeric = {name for name, parameter in inspect.signature(close_source).parameters.items()
               if type(parameter.default) in (int, float, bool)}
    for where in ("toml", "env"):
        covered = {name for origin, section, name, *_ in BAD_SETTINGS
                   if origin == where and section == "sources.close"}
        assert covered == numeric, where


@pytest.mark.parametrize(("origin", "section", "name", "value", "says"), BAD_SETTINGS,
                         ids=[f"{case[0]}-{case[2]}={case[3]}" for case in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_before_anything_is_read(fake, tmp_path, origin, section,
                                                           name, value, says):
    env = {"SOURCES__CLOSE__API_KEY": KEY, "SOURCES__CLOSE__BASE_URL": fake.base_url}
    variable = f"{section}.{name}".replace(".", "__").upper()
    if origin == "env":
        env[variable] = value
    else:
        (tmp_path / ".dlt").mkdir()
        (tmp_path / ".dlt" / "config.toml").write_text(f"[{section}]\n{name} = {value}\n")
    requests = len(fake.requests)
    result = close_sync(["run"], tmp_path, **env)
    assert_one_line_user_error(result, f"[{section}] {name} ({variable}) must be {says}")
    assert KEY not in result.stdout + result.stderr
    assert len(fake.requests) == requests, "the setting was checked after reading from Close"


@pytest.mark.parametrize(("name", "value", "says"), [
    ("rate_limit_share", "0", f"{SHARE}, not 0.0"), ("timeout", "-1", f"{SECONDS}")])
def test_verify_refuses_a_bad_client_setting_in_one_line(fake, tmp_path, name, value, says):
    """`close-sync verify` configures its client from [sources.close] as the sync does."""
    requests = len(fake.requests)
    result = close_sync(["verify"], tmp_path, SOURCES__CLOSE__API_KEY=KEY,
                        SOURCES__CLOSE__BASE_URL=fake.base_url,
                        **{f"SOURCES__CLOSE__{name.upper()}": value})
    assert_one_line_user_error(result, f"[sources.close] {name} "
                                       f"(SOURCES__CLOSE__{name.upper()}) must be {says}")
    assert len(fake.requests) == requests


def test_credentials_in_config_toml_say_where_they_belong(fake, tmp_path):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        '[destination.duckdb]\ncredentials = "elsewhere.duckdb"\n')
    assert_one_line_user_error(run(tmp_path, fake), "`destination.duckdb.credentials` is a "
                                                    "secret", ".dlt/secrets.toml")


def test_a_full_disk_exits_2_and_the_next_run_completes_the_load(tmp_path):
    """Working directory and pipeline directory on a 2 MB file system: the load fills it. With
    space again, the next run finishes that load (nothing twice) and reads on."""
    org = generate_org(seed=52, leads=30)
    small = tmp_path / "small"
    with FakeClose(org, api_key=KEY) as fake:
        if can_mount():
            with tmpfs(small, "2m") as remount:
                full = _run_in(small, fake)
                remount("size=256m")
                again = _run_in(small, fake)
                tables = every_table_mismatches(org, pipeline_of(small, None))
            reason = "no space left on device writing"
        else:  # no mounts here: a file size limit gives EFBIG where a full disk gives ENOSPC
            full = _run_in(small, fake, limit=600_000)
            again = _run_in(small, fake)
            tables = every_table_mismatches(org, pipeline_of(small, None))
            reason = "file too large"
    line = assert_one_line_user_error(full, reason, f"{small}", "run close-sync again")
    assert again.returncode == 0, again.stderr[-3000:]
    # a load job that found no space leaves its package to the next run; when every job
    # committed (to DuckDB's write-ahead log) and the checkpoint after the load step found none,
    # there is nothing to load again: opening the file replays the log
    loaded = re.search(r"\bload: \d+ jobs into", full.stderr)
    assert "loading it first" in again.stderr or loaded, full.stderr
    assert not tables, (line, tables)


def _run_in(workdir: Path, fake: FakeClose,
            limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def file_size_limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # type: ignore[arg-type]

    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "close_source.cli", "run"], cwd=workdir,
                          env=run_env(workdir, fake, None), capture_output=True, text=True,
                          timeout=300, preexec_fn=file_size_limit if limit else None)


def test_a_duckdb_file_named_like_its_dataset_is_one_line(fake, tmp_path):
    """`close.duckdb` holding dataset `close`: DuckDB's catalog and the schema share a name and
    every query is ambiguous. Said in one line, before anything is loaded."""
    result = run(tmp_path, fake, DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "close.duckdb"))
    assert_one_line_user_error(result, "the DuckDB file is named like its dataset (close.duckdb "
                                       "holding dataset close)", "--dataset")
    assert run(tmp_path, fake, "run", "--dataset", "crm",
               DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "close.duckdb")).returncode == 0
