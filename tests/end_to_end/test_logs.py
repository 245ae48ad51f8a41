"""`close-sync`'s log as a scheduler, a log shipper and a person at a terminal get it.

One 800-lead organisation, synced twice by real processes without a terminal (`CI=true`): a
first load logging text, then an incremental run logging JSON. Each run logs one line per stage
and the summary, nothing else; the summary's numbers are checked against the tables (rows per
table, the rows deleted, the Event Log watermark) and the fake's request log. A small one is
synced under a pseudo-terminal: the live display, the stage lines intact above it.
"""

from __future__ import annotations

import json
import os
import pty
import random
import re
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from fcntl import ioctl
from pathlib import Path
from termios import TIOCSWINSZ

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from close_fake import FakeClose, generate_org, random_changes
from close_source.catalog import CATALOG
from close_source.run import state as st
from tests.cli_runs import KEY, close_sync, pipeline_of, run_env
from tests.helpers import rows
from tests.invariant import every_table_mismatches

STAGES = ["plan", "extract", "normalize", "load", "settle"]
LINE = re.compile(r"\d\d:\d\d:\d\d (\w+): (.*)")
SUMMARY = re.compile(r"run ok in [\d.]+s: (\d+) tables loaded, ([\d,]+) rows written, "
                     r"([\d,]+) rows deleted, ([\d,]+) requests to Close, Event Log watermark "
                     r"(\S+) \(duckdb dataset close\)")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Run:
    result: subprocess.CompletedProcess[str]
    requests: int  # the fake's API requests during the run
    counts: dict[str, int]  # rows per data table after the run
    loaded: dict[str, int]  # rows per table in the run's load package, delete markers aside
    deleted: int  # rows of the catalog's tables whose key is gone after the run
    changed: dict[str, int]  # rows per table not in it before the run (new or changed)
    watermark: datetime | None  # the oldest watermark the pipeline's state holds


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    org = generate_org(seed=27, leads=800)
    workdir = tmp_path_factory.mktemp("logs")
    env = {"SOURCES__CLOSE__API_KEY": KEY, "SOURCES__CLOSE__EXPORT_POLL_INTERVAL": "0.02",
           "CI": "true",
           # unset, as in a user's shell: with Airflow installed (dev.py installs it) dlt
           # imports it, and Airflow set up logging anew: every line of the run vanished
           "PROVIDERS__ENABLE_AIRFLOW_SECRETS": None}
    found = {}
    with FakeClose(org, api_key=KEY) as fake:
        for name, args in (("first", ["run"]), ("incremental", ["--log-format", "json", "run"])):
            if name == "incremental":
                org.advance(timedelta(minutes=15))
                random_changes(org, random.Random(27), 60, step=timedelta(seconds=5))
                org.advance(timedelta(seconds=30))
            tables_before = _tables(workdir) if name != "first" else {}
            before = len(fake.requests)
            result = close_sync(args, workdir, SOURCES__CLOSE__BASE_URL=fake.base_url, **env)
            assert result.returncode == 0, result.stderr[-3000:]
            found[name] = _run(result, len(fake.requests) - before, workdir, tables_before)
        assert not every_table_mismatches(org, pipeline_of(workdir, None))
    return found


def _tables(workdir: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every data table's rows, whole."""
    pipeline = pipeline_of(workdir, None)
    return {table: rows(pipeline, f"SELECT * FROM close.{table}")
            for table in pipeline.default_schema.data_table_names()}


def _keys(tables: dict[str, list[tuple[object, ...]]], workdir: Path) -> dict[str, set[str]]:
    """Per catalog table with one key column: its keys."""
    pipeline = pipeline_of(workdir, None)
    found = {}
    for entry in CATALOG:
        if entry.table in tables and len(entry.primary_key) == 1:
            columns = list(pipeline.default_schema.get_table_columns(entry.table))
            at = columns.index(entry.primary_key[0])
            found[entry.table] = {str(row[at]) for row in tables[entry.table]}
    return found


def _as_before(found: list[tuple[object, ...]], before: list[tuple[object, ...]]) -> Counter:
    """Rows in the columns the table had before (a custom field added one to every row)."""
    width = len(before[0]) if before else None
    return Counter(repr(row[:width]) for row in found)


def _run(result: subprocess.CompletedProcess[str], requests: int, workdir: Path,
         before: dict[str, list[tuple[object, ...]]]) -> Run:
    pipeline = pipeline_of(workdir, None)
    after = _tables(workdir)
    load_id = rows(pipeline, "SELECT max(load_id) FROM close._dlt_loads")[0][0]
    loaded: dict[str, int] = {}
    package = workdir / "dlt_data" / "pipelines" / "close_crm" / "load" / "loaded" / load_id
    for path in (package / "completed_jobs").glob("*.parquet"):
        data = pq.read_table(path)
        marked = pc.sum(data["_deleted"]).as_py() or 0 if "_deleted" in data.column_names \
            else 0
        loaded[path.name.split(".")[0]] = loaded.get(path.name.split(".")[0], 0) + \
            data.num_rows - marked
    keys_before, keys_after = _keys(before, workdir), _keys(after, workdir)
    deleted = sum(len(keys - keys_after.get(table, set()))
                  for table, keys in keys_before.items())
    changed = {table: sum((_as_before(found, before.get(table, []))
                           - Counter(map(repr, before.get(table, [])))).values())
               for table, found in after.items()}
    marks = st.watermarks(pipeline.state["sources"]["close"])
    watermark = min((mark.newest_event for mark in marks.values()), default=None)
    return Run(result, requests, {table: len(found) for table, found in after.items()},
               {table: count for table, count in loaded.items() if count}, deleted,
               {table: count for table, count in changed.items() if count}, watermark)


def test_a_first_load_without_a_terminal_logs_a_line_per_stage_and_the_summary(runs):
    run = runs["first"]
    assert run.result.stdout == ""  # the tables' counts are for a terminal
    lines = run.result.stderr.splitlines()
    assert [LINE.fullmatch(line)[1] for line in lines] == [*STAGES, "summary"], lines
    said = SUMMARY.fullmatch(LINE.fullmatch(lines[-1])[2])
    assert said, lines[-1]
    tables, written, deleted, requests = (int(said[i].replace(",", "")) for i in range(1, 5))
    # a first load writes every row its tables hold
    held = {table: count for table, count in run.counts.items() if count}
    assert held == run.loaded
    assert (tables, written, deleted) == (len(held), sum(held.values()), 0)
    assert requests == run.requests
    assert datetime.fromisoformat(said[5]) == run.watermark
    assert "Resources:" not in run.result.stderr  # dlt's periodic blocks are gone


def test_an_incremental_run_logs_json_its_summary_equal_to_the_tables(runs):
    run = runs["incremental"]
    assert run.result.stdout == ""
    records = [json.loads(line) for line in run.result.stderr.splitlines()]
    assert [(r["logger"], r.get("stage")) for r in records] == \
        [("close_source.stage", stage) for stage in STAGES] + [("close_source.summary", None)]
    assert all(r["level"] == "info" and r["msg"] and r["ts"] for r in records)
    assert "Event Log:" in records[1]["msg"]  # the window read, said by the extract line
    summary = records[-1]
    assert summary["msg"].startswith("summary: run ok in ")
    written = {table: count for table, count in summary["tables"].items() if count}
    assert written == run.loaded  # per table: the rows this load upserted
    assert summary["rows_written"] == sum(run.loaded.values())
    assert summary["tables_loaded"] == len(summary["tables"]) >= len(run.loaded)
    # every row new or changed in a table was written (some written again unchanged)
    assert all(count <= written.get(table, 0) for table, count in run.changed.items()), \
        (run.changed, written)
    assert sum(run.changed.values()) > 0
    assert summary["rows_deleted"] == run.deleted > 0
    assert summary["requests"] == run.requests
    assert datetime.fromisoformat(summary["event_log_watermark"]) == run.watermark
    assert (summary["destination"], summary["dataset"], summary["ok"]) == ("duckdb", "close", True)
    assert records[1]["rows"] == records[2]["rows"] >= summary["rows_written"]


def test_a_user_error_in_json_is_one_object(tmp_path):
    result = close_sync(["run", "--log-format", "json"], tmp_path, CI="true")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    error = json.loads(line)
    assert error["level"] == "error" and error["exit_code"] == 2
    assert "SOURCES__CLOSE__API_KEY" in error["msg"] and not error["msg"].startswith("close-")


def test_a_terminal_gets_the_live_display_and_the_stage_lines_above_it(tmp_path):
    org = generate_org(seed=28, leads=40)
    with FakeClose(org, api_key=KEY) as fake:
        live = _in_a_terminal(["run"], tmp_path, fake)
        quiet = _in_a_terminal(["run", "-q"], tmp_path, fake)
    assert "\x1b[?25l" in live  # the display hid the cursor: it was up
    shown = ANSI.sub("", live)
    for task in ("extract: resources", "normalize: files", "load: jobs"):
        assert task in shown, shown[-3000:]
    # each stage line whole, on its own line: the display moved aside for it
    lines = [piece.rsplit("\r", 1)[-1] for piece in shown.split("\r\n")]
    said = [m[1] for line in lines if (m := LINE.fullmatch(line))]
    assert said == [*STAGES, "summary"], lines
    assert "Resources:" not in shown
    assert re.search(r"\r\ntable +rows +\(close\)\r\nactivity", shown) or \
        "table                       rows   (close)" in shown  # the counts, for a person
    # quiet: no display, the summary line alone
    assert "\x1b[?25l" not in quiet
    (line,) = [line for line in quiet.split("\r\n") if line]
    assert LINE.fullmatch(line)[1] == "summary", quiet


def _in_a_terminal(args: list[str], workdir: Path, fake: FakeClose) -> str:
    """`close-sync ARGS` with a pseudo-terminal as stdin, stdout and stderr; what it wrote."""
    env = run_env(workdir, fake, None, TERM="xterm-256color", COLUMNS="110", LINES="30")
    env.pop("CI", None)
    primary, secondary = pty.openpty()
    ioctl(secondary, TIOCSWINSZ, struct.pack("HHHH", 30, 110, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "close_source.cli", *args], cwd=workdir,
                               env=env, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    written = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the process closed its side
            break
        if not chunk:
            break
        written += chunk
    os.close(primary)
    assert process.wait(timeout=300) == 0, written.decode(errors="replace")[-3000:]
    return written.decode()
