"""A backup being written (`close-sync backup`): what a live full load reads from Close, kept
as Close returned it, so a restore can rebuild every table offline (`read/backup.py` has the
format).

The backup is written into a staging directory inside the output directory and moved in
place once every selected table has been read: the previous backup there stays complete and
restorable until the new one is, and a backup that is killed or fails leaves no manifest, so
it never looks finished. The backup does not wait for the load into the destination: what
Close returned is complete when the reads are.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from close_source.catalog import BY_TABLE, CATALOG
from close_source.errors import AccessDenied, ConfigError
from close_source.read import backup as files
from close_source.read.custom_fields import RawDefinitions
from close_source.read.privacy import NO_PRIVACY, Privacy
from close_source.records import Page
from close_source.stages import note

log = logging.getLogger(__name__)

STAGING = ".backup-in-progress"


class BackupRecorder:
    """Keeps every whole table a run reads, the definitions, `/me/` and the T0s; writes the
    manifest when every table in `tables` was read. Shared by the run's resource threads."""

    def __init__(self, directory: Path, tables: Sequence[str]) -> None:
        if unsupported := [table for table in tables if table not in BY_TABLE]:
            raise ConfigError(f"a backup holds what Close's objects are now; "
                              f"{', '.join(unsupported)} is read from the Event Log only")
        self.directory = directory
        self.staging = directory / STAGING
        shutil.rmtree(self.staging, ignore_errors=True)  # what a killed backup left
        self.staging.mkdir(parents=True)
        self.tables = tuple(tables)
        self._waiting = set(tables)
        self._lock = threading.Lock()
        self._files: dict[str, dict[str, Any]] = {}
        self._denied: dict[str, AccessDenied] = {}
        self._definitions: list[RawDefinitions] = []
        self._export: dict[str, Any] | None = None
        self._me: Mapping[str, Any] = {}
        self._t0: datetime | None = None
        self._events_from: datetime | None = None
        # the run's exclusions and hashing: its table files hold objects as they left them,
        # and so does the manifest's `GET /me/` (a user); the source sets it once it is known
        self.privacy: Privacy = NO_PRIVACY

    def began(self, me: Mapping[str, Any], t0: datetime | None,
              events_from: datetime | None = None) -> None:
        """The preflight's answer, and Close's time then: the list reads' T0, and where their
        re-scan may start (the Event Log's newest event then)."""
        self._me, self._t0, self._events_from = me, t0, events_from

    def definitions(self, load: Callable[[], RawDefinitions]) -> Callable[[], RawDefinitions]:
        """`load`, keeping each answer (a restore gives them back in the same order)."""

        def kept() -> RawDefinitions:
            raw = load()
            with self._lock:
                self._definitions.append(raw)
            return raw

        return kept

    def record(self, table: str, pages: Iterator[Page]) -> Iterator[Page]:
        """The table's pages, passed on and written to its file; a table the key may not read
        is recorded as such (a restore skips it with the same warning)."""
        try:
            record = yield from files.write_table(self.staging / files.table_file(table), pages)
        except AccessDenied as exc:
            with self._lock:
                self._denied[table] = exc
            raise
        with self._lock:
            self._files[table] = record

    def keep_export(self, path: Path, export_id: str, created_at: datetime, exact: bool,
                    counts: Mapping[str, int]) -> None:
        """The export file exactly as downloaded (a hard link when the file system allows:
        the run deletes its own copy once loaded)."""
        target = self.staging / path.name
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        record = {**files.file_record(target), "export_id": export_id,
                  "created_at": created_at.isoformat(), "exact": exact,
                  "objects": dict(sorted(counts.items()))}
        with self._lock:
            self._export = record

    def completed(self, tables: Iterable[str]) -> None:
        """The tables' reads are done; the last one makes the backup."""
        with self._lock:
            if not self._waiting:
                return
            self._waiting.difference_update(tables)
            if not self._waiting:
                self._finish()

    def _finish(self) -> None:
        replaced = files.listed_files(self.directory)
        (self.directory / files.MANIFEST).unlink(missing_ok=True)
        written = [record["file"] for record in self._files.values()]
        written += [self._export["file"]] if self._export else []
        for name in written:
            os.replace(self.staging / name, self.directory / name)
        complete = {entry.table for entry in CATALOG} <= set(self.tables)
        files.write_manifest(self.directory, tables=self.tables, complete=complete,
                             t0=self._t0, events_from=self._events_from,
                             export=self._export, files=self._files,
                             denied=self._denied, definitions=self._definitions,
                             me=self.privacy.object("users", copy.deepcopy(dict(self._me))),
                             privacy=self.privacy.marker())
        for name in replaced - set(written):
            (self.directory / name).unlink(missing_ok=True)
        shutil.rmtree(self.staging, ignore_errors=True)
        kept = len(self._files) + (1 if self._export else 0)
        note(log, "backup written to %s: %d files, %s", self.directory, kept,
             "every table" if complete else f"only {', '.join(sorted(self.tables))}")
