"""`close-sync backup`, then `close-sync restore` with the network off: a backup holds every
table as Close returned it, and a restore rebuilds each of them, with no key and no request,
equal row for row to the live full load the backup was made with, on DuckDB and PostgreSQL.
A later `run` continues from the backup's T0 through the Event Log."""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import shutil
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from close_fake import FakeClose, FakeOrg, generate_org, random_changes
from close_fake.exports.host import FILES_PREFIX
from close_source.catalog import CATALOG
from close_source.pipeline import run_sync
from close_source.source import close_source
from close_source.timestamps import to_utc
from tests.cli_runs import (
    assert_one_line_user_error,
    close_sync,
    output,
    pipeline_of,
    start_run,
)
from tests.conftest import WAREHOUSES
from tests.helpers import as_json, new_pipeline, sql_client, sync
from tests.invariant import every_table_mismatches, mismatches
from tests.oracle import expected_objects

SECRET = "api_B4ckup_k3y_n3ver_written_9f2e"
DENIED = "webhook_subscriptions"  # the key may not read /webhook/: the backup says so
SEED, LEADS = 43, 12


def org_at_backup() -> FakeOrg:
    """The organisation as it was when the backup was made (generation is deterministic)."""
    return generate_org(seed=SEED, leads=LEADS)


def _env(fake: FakeClose) -> dict[str, str]:
    return {"SOURCES__CLOSE__API_KEY": SECRET, "SOURCES__CLOSE__BASE_URL": fake.base_url,
            "SOURCES__CLOSE__EXPORT_POLL_INTERVAL": "0.02"}


@dataclass(frozen=True)
class Backup:
    org: FakeOrg
    directory: Path  # what `close-sync backup --output` wrote
    live: Path  # the working directory of that run: its load is the live full load
    stopped_base_url: str  # the fake's address, closed since
    stdout: str
    served_export: bytes  # the export file as the fake served it

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.directory / "manifest.json").read_text())


@pytest.fixture(scope="module")
def backup(tmp_path_factory: pytest.TempPathFactory) -> Backup:
    root = tmp_path_factory.mktemp("backup")
    (root / "live").mkdir()
    org = org_at_backup()
    with FakeClose(org, api_key=SECRET, forbidden={"/webhook/"}) as fake:
        result = close_sync(["backup", "--output", str(root / "backup")], root / "live",
                            **_env(fake))
        assert result.returncode == 0, result.stderr
        manifest = json.loads((root / "backup" / "manifest.json").read_text())
        job = fake.exports.job(manifest["export"]["export_id"])
        assert job is not None
        served = job.path.read_bytes()
    return Backup(org, root / "backup", root / "live", fake.base_url, result.stdout, served)


def table_lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rb") as lines:
        return [orjson.loads(line) for line in lines]


def test_the_backup_holds_every_table_as_close_returned_it(backup: Backup) -> None:
    manifest = backup.manifest
    assert manifest["complete"] is True
    assert set(manifest["tables"]) == {entry.table for entry in CATALOG}
    export = manifest["export"]
    assert export["objects"]["leads"] == len(expected_objects(backup.org, "leads")) == LEADS
    kept = (backup.directory / export["file"]).read_bytes()
    assert kept == backup.served_export  # exactly as downloaded
    exported = {lead["id"] for lead in json.loads(gzip.decompress(kept))}
    assert exported == set(expected_objects(backup.org, "leads"))
    listed = {entry.table for entry in CATALOG if entry.export_path is None} - {
        "custom_fields", DENIED}
    assert set(manifest["files"]) == listed
    for table in listed:
        objects = table_lines(backup.directory / manifest["files"][table]["file"])
        assert manifest["files"][table]["objects"] == len(objects), table
        assert {obj["id"] for obj in objects} == set(expected_objects(backup.org, table)), table
    assert manifest["denied"][DENIED]["status"] == 403
    (definitions,) = manifest["custom_field_definitions"]
    assert {d["id"] for d in definitions["by_object_type"]["lead"]} == {
        field["id"] for field in backup.org.all("custom_field.lead")}
    assert manifest["me"]["id"] == backup.org.admin_user_id
    # the T0s are those the live load continues from
    live = pipeline_of(backup.live, None).state["sources"]["close"]
    assert to_utc(export["created_at"]) == to_utc(live["full_load"]["t0"])
    tasks = live["tables"]["tasks"]["watermark"]  # a list read: T0, re-scanned from events_from
    assert to_utc(manifest["t0"]) == to_utc(tasks["read_until"])
    assert min(to_utc(manifest["t0"]), to_utc(manifest["events_from"])) == \
        to_utc(tasks["newest_event"])
    assert f"close-sync restore {backup.directory}" in backup.stdout
    assert not (backup.directory / ".backup-in-progress").exists()
    # the key is in no file, in clear or as the Basic auth header carries it
    header = base64.b64encode(f"{SECRET}:".encode())
    for path in backup.directory.iterdir():
        raw = path.read_bytes()
        for content in (raw, gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw):
            assert SECRET.encode() not in content and header not in content, path.name


def normalized_rows(pipeline: Any, table: str) -> list[tuple[Any, ...]]:
    """The table's rows as comparable values (JSON decoded, timestamps in UTC), sorted; dlt's
    own load ids left out."""
    types = {name: column.get("data_type") for name, column in
             pipeline.default_schema.get_table_columns(table).items()}
    with sql_client(pipeline) as client, \
            client.execute_query(f"SELECT * FROM close.{table}") as cursor:
        names = [column[0] for column in cursor.description]
        found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def value(name: str, raw: Any) -> Any:
        if raw is not None and types.get(name) == "json":
            return orjson.dumps(as_json(raw), option=orjson.OPT_SORT_KEYS)
        if isinstance(raw, datetime):
            return raw.astimezone(UTC)
        return raw

    kept = sorted(name for name in names if not name.startswith("_dlt"))
    return sorted((tuple((name, value(name, row[name])) for name in kept) for row in found),
                  key=repr)


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_a_restore_with_the_network_off_equals_the_live_full_load(
        backup: Backup, tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> None:
    dsn = request.getfixturevalue("postgres_server").new_database() \
        if kind == "postgres" else None
    connects = tmp_path / "connects.json"
    restore = start_run(tmp_path, None, dsn, hook="offline",  # no key configured
                        args=("restore", str(backup.directory)),
                        SOURCES__CLOSE__BASE_URL=backup.stopped_base_url,
                        CLOSE_TEST_CONNECTS=str(connects))
    restore.wait(timeout=300)
    assert restore.returncode == 0, output(tmp_path)
    assert json.loads(connects.read_text()) == [], "the restore tried to reach the network"
    assert "Restored from the backup" in output(tmp_path)

    restored, live = pipeline_of(tmp_path, dsn), pipeline_of(backup.live, None)
    loaded = [entry.table for entry in CATALOG if entry.table != DENIED]
    assert every_table_mismatches(backup.org, restored, tables=loaded) == {}
    tables = sorted(live.default_schema.data_table_names())
    assert sorted(restored.default_schema.data_table_names()) == tables
    for table in tables:
        assert normalized_rows(restored, table) == normalized_rows(live, table), table
    # the same watermarks, names and custom columns: later runs continue alike
    kept, live_kept = (p.state["sources"]["close"] for p in (restored, live))
    assert kept["tables"] == live_kept["tables"]
    assert kept["custom_columns"] == live_kept["custom_columns"]


def test_the_offline_probe_stops_a_run_that_needs_close(tmp_path: Path) -> None:
    """The probe above can fail: a run that must reach Close cannot."""
    connects = tmp_path / "connects.json"
    with FakeClose(org_at_backup(), api_key=SECRET) as fake:
        run = start_run(tmp_path, fake, None, hook="offline", CLOSE_TEST_CONNECTS=str(connects),
                        SOURCES__CLOSE__MAX_ATTEMPTS="1")
        run.wait(timeout=300)
    assert run.returncode == 2, output(tmp_path)
    assert json.loads(connects.read_text())


def test_a_run_after_a_restore_continues_from_t0_through_the_event_log(
        backup: Backup, tmp_path: Path) -> None:
    restore = close_sync(["restore", str(backup.directory)], tmp_path)
    assert restore.returncode == 0, restore.stderr
    org = org_at_backup()
    org.advance(timedelta(minutes=15))
    changes = random_changes(org, random.Random(8), 40, step=timedelta(seconds=5))
    org.advance(timedelta(seconds=30))
    with FakeClose(org, api_key=SECRET) as fake:
        run = close_sync(["run"], tmp_path, **_env(fake))
        endpoints = [r.endpoint for r in fake.requests]
    assert run.returncode == 0, run.stderr
    assert "/export/lead/" not in endpoints and "/event/" in endpoints
    assert len(changes) == 40
    assert every_table_mismatches(org, pipeline_of(tmp_path, None)) == {}


def test_a_backup_older_than_29_days_loads_its_tables_in_full_again(
        backup: Backup, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """In-process, as the Python API restores: only the tables named."""
    pipeline = new_pipeline(tmp_path)
    pipeline.activate()
    run_sync(pipeline, close_source(restore_from=str(backup.directory),
                                    tables=["leads", "users"]))
    # with `field_changes`, empty: made by any run that reads no Event Log
    assert sorted(pipeline.default_schema.data_table_names()) == ["field_changes", "leads",
                                                                   "leads__addresses", "users"]
    org = org_at_backup()
    org.advance(timedelta(days=30))
    with FakeClose(org) as fake:
        sync(fake, tmp_path, resources=["leads"], pipeline=pipeline)
        exports = [r for r in fake.requests if r.endpoint == "/export/lead/"]
    assert len(exports) == 1
    assert "more than 29 days ago" in caplog.text
    assert mismatches(org, pipeline, "leads", columns_from_state=True) == []


def test_a_partial_backup_says_so_and_restores_its_tables_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    org = org_at_backup()
    directory = tmp_path / "backup"
    with FakeClose(org) as fake:
        sync(fake, tmp_path / "live", resources=["leads", "calls"], backup_dir=str(directory))
    manifest = json.loads((directory / "manifest.json").read_text())
    assert (manifest["complete"], manifest["tables"]) == (False, ["calls", "leads"])
    # the tables leads and calls copy names from, and roles (the key's role), kept too
    assert set(manifest["files"]) == {"users", "lead_statuses", "roles"}
    pipeline = new_pipeline(tmp_path / "restored")
    pipeline.activate()
    run_sync(pipeline, close_source(restore_from=str(directory)))
    assert "holds only calls, leads" in caplog.text
    assert sorted(pipeline.default_schema.data_table_names()) == ["calls", "field_changes",
                                                                   "leads", "leads__addresses"]
    assert every_table_mismatches(org, pipeline, tables=["leads", "calls"]) == {}


def test_a_damaged_backup_is_refused_in_one_line(backup: Backup, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(backup.directory, damaged)
    users = damaged / backup.manifest["files"]["users"]["file"]
    raw = bytearray(users.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    users.write_bytes(bytes(raw))
    (tmp_path / "run").mkdir()
    result = close_sync(["restore", str(damaged)], tmp_path / "run")
    assert_one_line_user_error(result, "damaged", users.name, "sha256")
    assert not (tmp_path / "run" / "close_crm.duckdb").exists()  # nothing was loaded


def test_a_killed_backup_never_looks_finished(tmp_path: Path) -> None:
    """Killed while it downloads the export: every other table may be read by then, the
    backup is not."""
    directory = tmp_path / "backup"
    started, backup_run = threading.Event(), []

    def kill_at_the_download(record: Any) -> None:
        if record.path.startswith(FILES_PREFIX):
            started.wait(timeout=60)
            os.kill(backup_run[0].pid, signal.SIGKILL)

    with FakeClose(org_at_backup(), api_key=SECRET, on_request=kill_at_the_download) as fake:
        backup_run.append(start_run(tmp_path, fake, None, SOURCES__CLOSE__API_KEY=SECRET,
                                    args=("backup", "--output", str(directory))))
        started.set()
        backup_run[0].wait(timeout=300)
    assert backup_run[0].returncode == -signal.SIGKILL, output(tmp_path)
    assert any((directory / ".backup-in-progress").iterdir())  # it had begun writing
    result = close_sync(["restore", str(directory)], tmp_path)
    assert_one_line_user_error(result, "no finished backup", "manifest.json is missing")
