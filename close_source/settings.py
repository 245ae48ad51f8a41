"""The source's settings: one frozen object, checked once, built from dlt's configuration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from close_source.catalog import CATALOG, unknown_tables
from close_source.errors import ConfigError

FullLoad = Literal["export", "lists"]
# auto: incremental where each table's watermark allows it; full: a full load (soft-deleted
# rows kept); refresh: a full load from scratch (`--full-refresh`: the tables are dropped first)
SyncMode = Literal["auto", "full", "refresh"]
Deletes = Literal["hard", "soft"]
ColumnNaming = Literal["name", "id"]  # custom field columns named after the field's name or id


@dataclass(frozen=True)
class Settings:
    """What a run was asked to do. The API key is not here: only the client holds it. The
    defaults are the source's (`close_source()`'s signature, which dlt's config fills)."""

    tables: tuple[str, ...]
    base_url: str
    full_load: FullLoad
    export_fallback: bool
    export_timeout: float
    export_poll_interval: float
    backup_dir: str | None
    export_file: str | None
    max_skip: int
    timeout: float
    max_attempts: int
    custom_field_columns: ColumnNaming
    sync_mode: SyncMode
    deletes: Deletes
    # events and object states of one Event Log window held in memory; beyond, a scratch file
    window_memory_rows: int
    # a backup directory to restore, offline: every table comes from it (no key, no request)
    restore_from: str | None = None

    @classmethod
    def checked(cls, tables: Sequence[str] | None, **values: object) -> Settings:
        """The settings, or a ConfigError naming the one that is wrong."""
        selected = tuple(tables or [entry.table for entry in CATALOG])
        if unknown := unknown_tables(selected):
            known = ", ".join(entry.table for entry in CATALOG)
            raise ConfigError(f"unknown resource(s): {', '.join(unknown)}; known: {known}")
        for name, kind in (("full_load", FullLoad), ("sync_mode", SyncMode),
                           ("deletes", Deletes), ("custom_field_columns", ColumnNaming)):
            if values[name] not in get_args(kind):
                raise ConfigError(f"{name} must be one of {get_args(kind)}, "
                                  f"not {values[name]!r}")
        if not isinstance(values["window_memory_rows"], int) or values["window_memory_rows"] < 0:
            raise ConfigError(f"window_memory_rows must be a whole number of rows (0 or more), "
                              f"not {values['window_memory_rows']!r}")
        settings = cls(tables=selected, **values)  # type: ignore[arg-type]
        if settings.backup_dir and settings.full_load != "export":
            raise ConfigError("a backup needs the export: full_load must be 'export'")
        if settings.restore_from and (settings.backup_dir or settings.export_file):
            raise ConfigError("a restore reads only its backup: backup_dir and export_file "
                              "cannot be set with restore_from")
        return settings

    @property
    def soft_deletes(self) -> bool:
        return self.deletes == "soft"

    @property
    def keep_deleted(self) -> bool:
        """A full load carries soft-deleted rows over, unless the tables start from scratch."""
        return self.soft_deletes and self.sync_mode != "refresh"

    @property
    def full_read(self) -> bool:
        """Every selected table is read in full, whatever its watermark."""
        return self.sync_mode != "auto" or bool(self.export_file or self.backup_dir
                                                or self.restore_from)
