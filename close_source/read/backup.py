"""A backup on disk: the format `close-sync backup` writes and `close-sync restore` reads, with
no network and no key.

A backup directory holds (docs/operations.md, "Backups"):

- `<export id>.json.gz`: the export file exactly as Close served it (leads with their
  contacts, opportunities and activities);
- `<table>.jsonl.gz`: every object the full read of each other table returned, as Close
  returned it, one JSON object per line; the small tables other tables copy names from are
  kept even when a partial backup does not restore them (names are compared with them);
- `manifest.json`, written last: the format version, the tables a restore loads and whether
  that is every table, the T0s (the export's creation time; Close's `Date` when the list
  reads began), each file's object count, size and sha256, the tables the key could not read,
  the custom field definitions and `GET /me/` as read, and a checksum of the manifest itself.

A restore checks all of it before it reads anything: no manifest (a backup killed or still
running), a file missing, cut or changed is refused in one line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from close_source.api.client import DEFAULT_BASE_URL, CloseClient
from close_source.errors import AccessDenied, ConfigError
from close_source.read.context import ReadContext
from close_source.read.custom_fields import RawDefinitions
from close_source.records import Page

MANIFEST = "manifest.json"
FORMAT, VERSION = "close-dlt backup", 1
TABLE_SUFFIX = ".jsonl.gz"
PAGE = 1000  # objects per page read back (the unit of work of a parallel dlt resource)
COMPRESSION = 6  # zlib's default: most of level 9's size at a fraction of its time


class BackupError(ConfigError):
    """A backup that cannot be restored: missing, unfinished or damaged."""


# ---- writing ----------------------------------------------------------------------------------


def table_file(table: str) -> str:
    return f"{table}{TABLE_SUFFIX}"


def write_table(path: Path, pages: Iterator[Page]) -> Generator[Page, None, dict[str, Any]]:
    """Pass `pages` on, each written to `path` before it is (shaping then changes the objects);
    returns the file's record once every page went through. A read that fails or is left
    early leaves no file."""
    objects = 0
    try:
        with gzip.open(path, "wb", compresslevel=COMPRESSION) as sink:
            for page in pages:
                sink.write(b"".join(orjson.dumps(obj) + b"\n" for obj in page))
                objects += len(page)
                yield page
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return {**file_record(path), "objects": objects}


def file_record(path: Path) -> dict[str, Any]:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_manifest(directory: Path, *, tables: Sequence[str], complete: bool,
                   t0: datetime | None, events_from: datetime | None,
                   export: Mapping[str, Any] | None,
                   files: Mapping[str, Mapping[str, Any]], denied: Mapping[str, AccessDenied],
                   definitions: Sequence[RawDefinitions], me: Mapping[str, Any],
                   privacy: Mapping[str, Any] | None = None) -> None:
    """The manifest, under a temporary name first: the directory is a finished backup from
    the moment it has one. `privacy`: the exclusions and hashing its table files were
    written with (`Privacy.marker`)."""
    body = {
        "format": FORMAT, "version": VERSION,
        "tables": sorted(tables), "complete": complete,
        "t0": t0.isoformat() if t0 else None,
        "events_from": events_from.isoformat() if events_from else None,
        "export": dict(export) if export else None,
        "files": {table: dict(record) for table, record in sorted(files.items())},
        "denied": {table: {"status": exc.status, "path": exc.path, "message": exc.api_message}
                   for table, exc in sorted(denied.items())},
        "custom_field_definitions": [{"by_object_type": dict(raw.by_object_type),
                                      "schemas": dict(raw.schemas)} for raw in definitions],
        "me": dict(me),
        "privacy": dict(privacy) if privacy else None,
    }
    body["checksum"] = _checksum(body)
    partial = directory / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, directory / MANIFEST)


def _checksum(body: Mapping[str, Any]) -> str:
    content = {key: value for key, value in body.items() if key != "checksum"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def listed_files(directory: Path) -> set[str]:
    """The files the directory's manifest names (none when it has no readable one)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        export = manifest.get("export") or {}
        return {record["file"] for record in manifest["files"].values()} | (
            {export["file"]} if export else set())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


# ---- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeptExport:
    """An export file a backup kept, and its T0."""

    path: Path
    export_id: str
    created_at: datetime
    exact: bool  # T0 is the export's own creation time (the Event Log's clock)


@dataclass(frozen=True)
class Backup:
    """A finished backup, checked file by file when opened; read without any request."""

    directory: Path
    manifest: Mapping[str, Any]

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> Backup:
        """The backup in `directory`, or a BackupError saying what is wrong with it."""
        path = Path(directory)
        if not path.is_dir():
            raise BackupError(f"{path} is not a backup: no such directory")
        manifest = _read_manifest(path)
        backup = cls(path, manifest)
        for record in backup._records():
            _check_file(path, record)
        return backup

    def _records(self) -> list[Mapping[str, Any]]:
        export = self.manifest.get("export")
        return [*self.manifest["files"].values(), *([export] if export else [])]

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables a restore loads (every table unless the backup was made of some)."""
        return tuple(self.manifest["tables"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    @property
    def t0(self) -> datetime | None:
        """Close's clock when the backup's list reads began (the live run's T0)."""
        t0 = self.manifest.get("t0")
        return datetime.fromisoformat(t0) if t0 else None

    @property
    def events_from(self) -> datetime | None:
        """Where the live run's list reads would re-scan from (its Event Log's newest event)."""
        found = self.manifest.get("events_from")
        return datetime.fromisoformat(found) if found else None

    @property
    def me(self) -> Mapping[str, Any]:
        return dict(self.manifest.get("me") or {})

    @property
    def export(self) -> KeptExport | None:
        return _kept_export(self.directory, self.manifest.get("export"))

    def pages(self, table: str) -> Iterator[Page]:
        """The table's objects as Close returned them; a table the key could not read fails
        as it did then (the resource skips it)."""
        if denied := self.manifest["denied"].get(table):
            raise AccessDenied(denied["status"], "GET", denied["path"],
                               f"{denied['message']} (when the backup was made)")
        record = self.manifest["files"].get(table)
        if record is None:
            raise BackupError(f"the backup in {self.directory} holds no {table}")
        with gzip.open(self.directory / record["file"], "rb") as source:
            page: Page = []
            for line in source:
                page.append(orjson.loads(line))
                if len(page) == PAGE:
                    yield page
                    page = []
            if page:
                yield page

    def definitions(self) -> Callable[[], RawDefinitions]:
        """The custom field definitions as the backup's run read them, in the same order (a
        field created mid-run made it read them twice)."""
        kept = [RawDefinitions(raw["by_object_type"], raw["schemas"])
                for raw in self.manifest["custom_field_definitions"]]
        if not kept:
            raise BackupError(f"the backup in {self.directory} holds no custom field "
                              "definitions")
        reads = iter(kept)

        def replay() -> RawDefinitions:
            return next(reads, kept[-1])

        return replay

    def read_context(self, max_skip: int) -> ReadContext:
        """Reads served by this backup; the client sends nothing (a request would be a bug)."""
        client = CloseClient("offline", DEFAULT_BASE_URL, max_attempts=1,
                             transport=_NoNetwork())
        return ReadContext(client=client, max_skip=max_skip, me=self.me, backup=self)


class _NoNetwork(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError(f"a restore reads only its backup, yet {request.method} "
                           f"{request.url.path} was asked of Close")


def _read_manifest(directory: Path) -> Mapping[str, Any]:
    path = directory / MANIFEST
    if not path.exists():
        if legacy := sorted(directory.glob("*.manifest.json")):
            export = legacy[0].name.removesuffix(".manifest.json") + ".json.gz"
            raise BackupError(f"{directory} holds an earlier close-dlt's backup of the export "
                              f"file only: load it with SOURCES__CLOSE__EXPORT_FILE="
                              f"{directory / export} and `close-sync run`")
        raise BackupError(f"{directory} holds no finished backup: {MANIFEST} is missing (a "
                          "backup that was killed or failed writes none)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"backup {directory} is damaged: {MANIFEST} is unreadable "
                          f"({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not the manifest of a close-dlt backup")
    if manifest.get("version") != VERSION:
        raise BackupError(f"backup {directory} has format version {manifest.get('version')!r}; "
                          f"this close-dlt reads version {VERSION}")
    if manifest.get("checksum") != _checksum(manifest):
        raise BackupError(f"backup {directory} is damaged: {MANIFEST} does not match its "
                          "checksum")
    return manifest


def _check_file(directory: Path, record: Mapping[str, Any]) -> None:
    name = str(record["file"])
    path = directory / name
    if Path(name).name != name or not path.is_file():
        raise BackupError(f"backup {directory} is damaged: {name} is missing")
    size = path.stat().st_size
    if size != record["bytes"]:
        raise BackupError(f"backup {directory} is damaged: {name} holds {size:,} bytes, "
                          f"{MANIFEST} says {record['bytes']:,}")
    if _sha256(path) != record["sha256"]:
        raise BackupError(f"backup {directory} is damaged: {name} does not match its sha256 "
                          f"in {MANIFEST}")


def _kept_export(directory: Path, record: Mapping[str, Any] | None) -> KeptExport | None:
    if not record:
        return None
    return KeptExport(directory / record["file"], str(record["export_id"]),
                      datetime.fromisoformat(record["created_at"]), bool(record["exact"]))


def export_of(path: Path) -> KeptExport | None:
    """What a backup says of the export file `path` (the `export_file` setting): the manifest
    of the backup it lies in, or the `<export id>.manifest.json` earlier versions kept beside
    it; None when neither names it."""
    try:
        manifest = json.loads((path.parent / MANIFEST).read_text(encoding="utf-8"))
        if (manifest.get("export") or {}).get("file") == path.name:
            return _kept_export(path.parent, manifest["export"])
    except (OSError, ValueError, AttributeError):
        pass
    beside = path.with_name(path.name.removesuffix(".json.gz") + ".manifest.json")
    if not beside.exists():
        return None
    kept = json.loads(beside.read_text(encoding="utf-8"))
    return KeptExport(path, str(kept["export_id"]), datetime.fromisoformat(kept["created_at"]),
                      bool(kept.get("exact", False)))


def backup_summary(directory: Path) -> str:
    """One line on what the backup in `directory` holds (its manifest, not checked again)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        what = "every table" if manifest["complete"] else (
            f"a partial backup of {', '.join(manifest['tables'])} only")
        t0 = datetime.fromisoformat(manifest["t0"]).astimezone(UTC) if manifest.get("t0") \
            else None
    except (OSError, ValueError, KeyError, TypeError):
        return f"no finished backup in {directory}"
    moment = f", Close as of {t0:%Y-%m-%d %H:%M:%S} UTC" if t0 else ""
    return f"the backup in {directory} ({what}{moment})"
