"""The backup format (`read/backup.py`) and how a backup is written (`run/backup.py`): what a
restore gets back, and every way a backup can be unfinished or damaged, refused before anything
is read."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from close_source.errors import AccessDenied, ConfigError
from close_source.read.backup import MANIFEST, Backup, BackupError, export_of
from close_source.read.custom_fields import RawDefinitions
from close_source.records import Page
from close_source.run.backup import STAGING, BackupRecorder

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
USERS = [{"id": "user_1", "first_name": "Ada", "custom": {"n": 1.5}},
         {"id": "user_2", "first_name": "Bo", "date_created": "2026-01-01T00:00:00"}]
FIRST = RawDefinitions({"lead": [{"id": "cf_1", "name": "Budget", "type": "number"}]}, {})
SECOND = RawDefinitions({"lead": [{"id": "cf_1", "name": "Budget", "type": "number"},
                                  {"id": "cf_2", "name": "New", "type": "text"}]}, {})


def _denied() -> Iterator[Page]:
    raise AccessDenied(403, "GET", "/role/", "not allowed")
    yield []  # pragma: no cover


def write_backup(directory: Path, tables: tuple[str, ...] = ("users", "roles"),
                 users: list[dict] | None = None) -> BackupRecorder:
    recorder = BackupRecorder(directory, tables)
    recorder.began({"id": "user_1"}, T0)
    definitions = recorder.definitions(iter([FIRST, SECOND]).__next__)
    definitions()
    definitions()
    assert list(recorder.record("users", iter([users or USERS]))) == [users or USERS]
    with pytest.raises(AccessDenied):
        list(recorder.record("roles", _denied()))
    recorder.completed(["users"])
    assert not (directory / MANIFEST).exists()  # roles is not done
    recorder.completed(["roles"])
    return recorder


def test_a_restore_gets_back_what_the_backup_read(tmp_path: Path) -> None:
    write_backup(tmp_path)
    backup = Backup.open(tmp_path)
    assert [obj for page in backup.pages("users") for obj in page] == USERS
    with pytest.raises(AccessDenied) as denied:
        list(backup.pages("roles"))
    assert (denied.value.status, denied.value.path) == (403, "/role/")
    replay = backup.definitions()
    assert [replay(), replay(), replay()] == [FIRST, SECOND, SECOND]
    assert backup.t0 == T0 and backup.me == {"id": "user_1"}
    assert backup.tables == ("roles", "users") and backup.complete is False
    assert backup.export is None
    assert not (tmp_path / STAGING).exists()
    with pytest.raises(BackupError, match="holds no tasks"):
        list(backup.pages("tasks"))


def test_the_restore_client_sends_nothing(tmp_path: Path) -> None:
    write_backup(tmp_path)
    read = Backup.open(tmp_path).read_context(max_skip=100)
    with pytest.raises(RuntimeError, match="reads only its backup"):
        read.client.get("me/")
    assert read.client.requests_sent == 1  # it got as far as the transport, and no further


def _flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / MANIFEST).unlink(), "no finished backup: manifest.json is missing"),
    (lambda d: (d / "users.jsonl.gz").unlink(), "users.jsonl.gz is missing"),
    (lambda d: _flip_a_byte(d / "users.jsonl.gz"), "users.jsonl.gz does not match its sha256"),
    (lambda d: (d / "users.jsonl.gz").write_bytes((d / "users.jsonl.gz").read_bytes()[:-3]),
     "users.jsonl.gz holds"),
    (lambda d: (d / MANIFEST).write_text((d / MANIFEST).read_text().replace(
        '"objects": 2', '"objects": 3')), "manifest.json does not match its checksum"),
    (lambda d: (d / MANIFEST).write_text("{"), "manifest.json is unreadable"),
    (lambda d: (d / MANIFEST).write_text(json.dumps({"format": "close-dlt backup",
                                                     "version": 9})), "format version 9"),
    (lambda d: (d / MANIFEST).write_text("[]"), "is not the manifest of a close-dlt backup"),
])
def test_an_unfinished_or_damaged_backup_is_refused(tmp_path: Path, damage, message) -> None:
    write_backup(tmp_path)
    Backup.open(tmp_path)  # whole, it opens
    damage(tmp_path)
    with pytest.raises(BackupError, match=message):
        Backup.open(tmp_path)


def test_a_new_backup_replaces_the_old_one_only_when_complete(tmp_path: Path) -> None:
    write_backup(tmp_path)
    before = (tmp_path / MANIFEST).read_text()
    renamed = [{"id": "user_1", "first_name": "Ada Lovelace"}]
    recorder = BackupRecorder(tmp_path, ("users",))
    recorder.began({}, T0)
    list(recorder.record("users", iter([renamed])))
    # not complete yet: the previous backup is whole and unchanged
    assert (tmp_path / MANIFEST).read_text() == before
    assert [o for p in Backup.open(tmp_path).pages("users") for o in p] == USERS
    recorder.completed(["users"])
    assert [o for p in Backup.open(tmp_path).pages("users") for o in p] == renamed
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "users.jsonl.gz"]


def test_a_read_that_stops_early_leaves_no_table_file(tmp_path: Path) -> None:
    recorder = BackupRecorder(tmp_path, ("users",))
    pages = recorder.record("users", iter([USERS, USERS]))
    next(pages)
    pages.close()
    assert list((tmp_path / STAGING).iterdir()) == []
    recorder.completed(["users"])
    with pytest.raises(BackupError, match="holds no users"):
        list(Backup.open(tmp_path).pages("users"))


def test_a_backup_of_the_events_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="events is read from the Event Log"):
        BackupRecorder(tmp_path, ("leads", "events"))


def test_an_export_file_kept_by_an_earlier_version_keeps_its_t0(tmp_path: Path) -> None:
    """`export_file` pointing at a file an earlier `close-sync backup` kept beside its
    `<export id>.manifest.json`."""
    path = tmp_path / "expo_1.json.gz"
    path.write_bytes(gzip.compress(b"[]"))
    assert export_of(path) is None
    (tmp_path / "expo_1.manifest.json").write_text(json.dumps(
        {"export_id": "expo_1", "created_at": T0.isoformat(), "file": path.name}))
    kept = export_of(path)
    assert kept is not None and (kept.export_id, kept.created_at, kept.exact) == (
        "expo_1", T0, False)
    with pytest.raises(BackupError, match="SOURCES__CLOSE__EXPORT_FILE=.*expo_1.json.gz"):
        Backup.open(tmp_path)  # not one `close-sync restore` reads: it says what to do
