"""Where a run's objects come from: Close's API (kept in a backup as they are read, when one
is asked for), or a backup, read offline (a restore).

Either way the run then takes the same path: the same plan, read paths, shaping and load, so a
restored table equals the live full load the backup was made with, row for row. A restore
gets from the backup what a live run gets from Close when it begins (`GET /me/`, the `Date`
T0, the custom field definitions) and, through the read context, every whole table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from close_source.api.client import CloseClient
from close_source.errors import ConfigError
from close_source.read.backup import Backup
from close_source.read.context import ReadContext
from close_source.read.custom_fields import RawDefinitions, fetch_definitions
from close_source.run.backup import BackupRecorder
from close_source.run.incremental import close_now
from close_source.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    settings: Settings  # a restore's: the backup's tables, its export file
    read: ReadContext
    # Close's time when the run (or the backup's run) began: the later of its `Date` header
    # and its newest event (`run/incremental.close_now`)
    started_at: datetime
    definitions: Callable[[], RawDefinitions]
    backup: BackupRecorder | None = None  # a backup being written
    # where a full read's re-scan may start (`CloseTime.events_from`)
    events_from: datetime | None = None
    # a restore: the exclusions and hashing its backup's files were written with
    made_with: Mapping[str, Any] | None = None


def from_close(client: CloseClient, settings: Settings) -> Origin:
    """Close's API, after the `GET /me/` preflight (a bad key fails here, before any read)."""
    me = client.get("me/")
    clock = close_now(client, client.server_time, settings.tables)
    recorder = BackupRecorder(Path(settings.backup_dir), settings.tables) \
        if settings.backup_dir else None
    read = ReadContext(client=client, max_skip=settings.max_skip, me=me, recorder=recorder)
    definitions = partial(fetch_definitions, client, settings.max_skip)
    if recorder is None:
        return Origin(settings, read, clock.now, definitions, events_from=clock.events_from)
    recorder.began(me, clock.now, clock.events_from)
    if settings.exclude_columns or settings.pii != "none":
        log.warning("the backup keeps Close's export file as Close made it: exclude_columns and "
                    "pii apply to the backup's other files and to the tables, not to it (it "
                    "holds every field, in clear)")
    return Origin(settings, read, clock.now, recorder.definitions(definitions), recorder,
                  clock.events_from)


def from_backup(settings: Settings, named: Sequence[str] | None) -> Origin:
    """The backup in `settings.restore_from`, checked; no key, no request. Its tables, or
    those `named` (each must be in it)."""
    assert settings.restore_from is not None
    backup = Backup.open(settings.restore_from)
    if missing := [table for table in named or [] if table not in backup.tables]:
        raise ConfigError(f"the backup in {backup.directory} holds no {', '.join(missing)} "
                          f"(it holds {', '.join(backup.tables)})")
    tables = tuple(named or backup.tables)
    if not backup.complete:
        log.warning("the backup in %s holds only %s (it was made of some tables): the other "
                    "tables are not restored", backup.directory, ", ".join(backup.tables))
    export = backup.export
    settings = replace(settings, tables=tables, export_fallback=False,
                       full_load="export" if export else "lists",
                       export_file=str(export.path) if export else None)
    return Origin(settings, backup.read_context(settings.max_skip),
                  backup.t0 or datetime.now(UTC), backup.definitions(),
                  events_from=backup.events_from, made_with=backup.manifest.get("privacy"))
