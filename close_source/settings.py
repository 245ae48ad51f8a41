"""The source's settings: one frozen object, checked once, built from dlt's configuration."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

import dlt
import orjson
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException
from dlt.common.configuration.resolve import resolve_configuration
from dlt.common.schema.typing import TSchemaContractEntities, TSchemaEvolutionMode
from dlt.extract.pipe_iterator import PipeIterator

from close_source.catalog import BY_TABLE, CATALOG, HISTORY_TABLES, unknown_tables
from close_source.errors import ConfigError

FullLoad = Literal["export", "lists"]
# auto: incremental where each table's watermark allows it; full: a full load (soft-deleted
# rows kept); refresh: a full load from scratch (`--full-refresh`: the tables are dropped first)
SyncMode = Literal["auto", "full", "refresh"]
Deletes = Literal["hard", "soft"]
ColumnNaming = Literal["name", "id"]  # custom field columns named after the field's name or id
Pii = Literal["none", "hash"]  # hash: email addresses and phone numbers keyed-hashed (pii_key)

SECTION = ("sources", "close")  # the source's config section: `[sources.close]`, SOURCES__CLOSE__
MAX_SECONDS = 365 * 86400.0  # Python's timers overflow past ~9.2e9 s; a year is past any use


def _whole(minimum: int) -> Callable[[object], bool]:
    return lambda value: type(value) is int and value >= minimum


def _share(value: object) -> bool:
    return type(value) in (int, float) and 0 < value <= 1  # type: ignore[operator]


def _seconds(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and \
        0 < value <= MAX_SECONDS  # type: ignore[operator]


# What each numeric and boolean setting of the source accepts, checked and said. dlt coerces
# config.toml and environment values to the signature's types first; these catch the rest
# (a negative number, NaN) and values passed to `close_source()` directly, which dlt leaves as
# they are.
ACCEPTS: dict[str, tuple[Callable[[object], bool], str]] = {
    "max_skip": (_whole(1), "a whole number greater than 0"),
    "timeout": (_seconds, "a number of seconds greater than 0 (a year at most)"),
    "max_attempts": (_whole(1), "a whole number greater than 0"),
    "rate_limit_share": (_share, "a number greater than 0 and at most 1"),
    "export_timeout": (_seconds, "a number of seconds greater than 0 (a year at most)"),
    "export_poll_interval": (_seconds, "a number of seconds greater than 0 (a year at most)"),
    "window_memory_rows": (_whole(0), "a whole number of rows, 0 or more"),
    "export_fallback": (lambda value: type(value) is bool, "true or false"),
    "field_changes": (lambda value: type(value) is bool, "true or false"),
}
EXTRACT_WORKERS = (_whole(1), "a whole number of threads greater than 0")


def setting_name(field: str, section: Sequence[str] = SECTION) -> str:
    """As the user writes it: `[sources.close] timeout (SOURCES__CLOSE__TIMEOUT)`."""
    return f"[{'.'.join(section)}] {field} ({'__'.join((*section, field)).upper()})"


def refused(field: str, value: object, accepts: str, section: Sequence[str] = SECTION) -> str:
    """The one line for a value a setting does not take. Only for settings that hold no
    secret: the value is shown."""
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"{setting_name(field, section)} must be {accepts}, not {shown}"


def check_setting(name: str, value: object) -> None:
    """A ConfigError when setting `name` of ACCEPTS does not take `value`."""
    accepts, said = ACCEPTS[name]
    if not accepts(value):
        raise ConfigError(refused(name, value, said))


def accepted(hint: Any) -> str:
    """What a type hint accepts, in words, for settings not in ACCEPTS."""
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(str(value) for value in get_args(hint))
    return {int: "a whole number", float: "a number", bool: "true or false"}.get(
        hint, f"a value of type {getattr(hint, '__name__', hint)}")


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
    # the part of each endpoint group's rate limit the run uses; the rest is left to others
    rate_limit_share: float
    custom_field_columns: ColumnNaming
    sync_mode: SyncMode
    deletes: Deletes
    # events and object states of one Event Log window held in memory; beyond, a scratch file
    window_memory_rows: int
    # a backup directory to restore, offline: every table comes from it (no key, no request)
    restore_from: str | None = None
    # history: the `field_changes` table, and the tables that keep versions (`<table>_history`)
    field_changes: bool = True
    history: tuple[str, ...] = ()
    # `close-sync verify --heal`: tables whose rows differ from Close -> the ids to read again
    # by id, or None: the table is read in full (`run/plan.py`)
    heal: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    # dlt's schema contract for every table: one mode, or a mode per entity; None: dlt's default
    schema_contract: str | Mapping[str, str] | None = None
    # fields kept out of everything a run writes, per table (`read/privacy.py` applies them);
    # `pii = "hash"` hashes addresses and numbers with `pii_key`, which is not here either
    exclude_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pii: Pii = "none"

    @classmethod
    def checked(cls, tables: Sequence[str] | None, **values: object) -> Settings:
        """The settings, or a ConfigError naming the one that is wrong."""
        selected = tuple(tables or [entry.table for entry in CATALOG])
        if unknown := unknown_tables(selected):
            known = ", ".join(entry.table for entry in CATALOG)
            raise ConfigError(f"unknown resource(s): {', '.join(unknown)}; known: {known}")
        for name, kind in (("full_load", FullLoad), ("sync_mode", SyncMode),
                           ("deletes", Deletes), ("custom_field_columns", ColumnNaming),
                           ("pii", Pii)):
            if values[name] not in get_args(kind):
                raise ConfigError(refused(name, values[name], accepted(kind)))
        for name in ACCEPTS:
            check_setting(name, values[name])
        check_extract_workers()
        check_written_booleans()
        values["history"] = _history_tables(values.get("history"))
        values["heal"] = _healed_tables(values.get("heal"), selected)
        values["schema_contract"] = _schema_contract(values.get("schema_contract"))
        values["exclude_columns"] = _excluded_columns(values.get("exclude_columns"))
        settings = cls(tables=selected, **values)  # type: ignore[arg-type]
        if settings.backup_dir and settings.full_load != "export":
            raise ConfigError("a backup needs the export: full_load must be 'export'")
        if settings.restore_from and (settings.backup_dir or settings.export_file):
            raise ConfigError("a restore reads only its backup: backup_dir and export_file "
                              "cannot be set with restore_from")
        if settings.restore_from and settings.heal:
            raise ConfigError("a restore reads only its backup: heal (which reads Close) "
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


def _history_tables(value: object) -> tuple[str, ...]:
    """`history = ["leads", ...]`: tables the Event Log changes (their versions come from it)."""
    if value is None:
        return ()
    if not _names(value):
        raise ConfigError(refused("history", value, "a list of table names"))
    wrong = [name for name in value if name not in HISTORY_TABLES]
    if wrong:
        raise ConfigError(f"{setting_name('history')} names {', '.join(wrong)}: versions are kept "
                          f"only of tables the Event Log changes: {', '.join(HISTORY_TABLES)}")
    return tuple(dict.fromkeys(value))


def _healed_tables(value: object, selected: Sequence[str]
                   ) -> dict[str, tuple[str, ...] | None]:
    """`heal = {"leads": [ids], "users": None}`: tables of Close objects, among those the run
    syncs (a heal is a sync of them: it does not add tables to the run); no ids: nothing."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
            isinstance(name, str) and (ids is None or _names(ids)) for name, ids in value.items()):
        raise ConfigError(refused("heal", value, "a mapping of table names to lists of ids "
                                                 "or None"))
    if unknown := [name for name in value if name not in BY_TABLE]:
        known = ", ".join(entry.table for entry in CATALOG)
        raise ConfigError(f"{setting_name('heal')} names {', '.join(unknown)}: not a table of "
                          f"Close objects; known: {known}")
    if unselected := [name for name in value if name not in selected]:
        raise ConfigError(f"{setting_name('heal')} names {', '.join(unselected)}, not among "
                          f"the tables this run syncs ({', '.join(selected)})")
    return {name: None if ids is None else tuple(dict.fromkeys(ids))
            for name, ids in value.items() if ids is None or ids}


def _schema_contract(value: object) -> str | dict[str, str] | None:
    """`schema_contract = "freeze"` or `{columns = "freeze"}`: dlt's modes and entities (config
    hands a mapping over as JSON text)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        with suppress(orjson.JSONDecodeError):  # else refused below, as written
            value = orjson.loads(value)
    modes, entities = get_args(TSchemaEvolutionMode), get_args(TSchemaContractEntities)
    if value is None or (isinstance(value, str) and value in modes):
        return value
    if isinstance(value, Mapping) and value and all(
            entity in entities and mode in modes for entity, mode in value.items()):
        return dict(value)
    raise ConfigError(refused("schema_contract", value, f"one of {', '.join(modes)}, or a "
                              f"mapping of {', '.join(entities)} to one"))


# What a run needs of every object it keeps: its key, the lead it belongs to, the times its
# watermark and versions come from, the type a custom activity's fields belong to.
NEEDED_FIELDS = ("id", "lead_id", "date_created", "date_updated", "custom_activity_type_id")
CUSTOM = "custom"  # every custom field of a table; `custom.<name or id>`: one of them


def _excluded_columns(value: object) -> dict[str, tuple[str, ...]]:
    """`exclude_columns = {contacts = ["emails"], leads = ["custom.Personal notes"]}`: standard
    fields by name (`envelope.cc`: nested), custom fields by Close name or id (config hands a
    mapping over as JSON text). Whether a custom name exists is not known here: a field may be
    created later (`read/privacy.py` warns)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        with suppress(orjson.JSONDecodeError):  # else refused below, as written
            value = orjson.loads(value)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
            isinstance(table, str) and _names(fields) for table, fields in value.items()):
        raise ConfigError(refused("exclude_columns", value,
                                  "a mapping of table names to lists of fields"))
    if unknown := [table for table in value if table not in BY_TABLE]:
        known = ", ".join(entry.table for entry in CATALOG)
        raise ConfigError(f"{setting_name('exclude_columns')} names {', '.join(unknown)}: not a "
                          f"table of Close objects; known: {known}")
    for table, fields in value.items():
        for name in fields:
            if problem := _not_excludable(table, name):
                raise ConfigError(f"{setting_name('exclude_columns')}: {table} {name!r} {problem}")
    return {table: tuple(dict.fromkeys(fields)) for table, fields in value.items() if fields}


def _not_excludable(table: str, name: str) -> str | None:
    entry = BY_TABLE[table]
    if name == CUSTOM or name.startswith(f"{CUSTOM}."):
        if not entry.custom_field_type:
            return f"is a custom field: {table} has none"
        if name != CUSTOM and not name[len(CUSTOM) + 1:].strip():
            return "names no custom field"
        return None
    if not all(part.strip() for part in name.split(".")):
        return "is not a field name (`emails`, `envelope.cc`, `custom.<name or id>`)"
    if name.split(".")[0] in (*entry.primary_key, *NEEDED_FIELDS):
        return "is needed to sync the table: it cannot be excluded"
    return None


def _names(value: object) -> bool:
    """A list of texts (not one text: a string is a sequence too)."""
    return isinstance(value, Sequence) and not isinstance(value, str) and \
        all(isinstance(name, str) for name in value)


def check_extract_workers() -> None:
    """`[extract] workers` as dlt's extract step will read it (its own spec, so the same
    lookups and coercion), before anything is read from Close: dlt reads it only when the
    extraction starts, and a bad value ended the run there, in a traceback."""
    section = ("extract",)
    try:
        workers = resolve_configuration(PipeIterator.PipeIteratorConfiguration(),
                                        explicit_value={}).workers
    except ConfigValueCannotBeCoercedException as exc:
        field, value = exc.field_name, exc.field_value
        said = EXTRACT_WORKERS[1] if field == "workers" else accepted(exc.hint)
        raise ConfigError(refused(field, value, said, section)) from None
    if not EXTRACT_WORKERS[0](workers):
        raise ConfigError(refused("workers", workers, EXTRACT_WORKERS[1], section))


def check_written_booleans() -> None:
    """A boolean written as a number in config.toml (`export_fallback = 2`): dlt reads any
    number as a boolean (`bool(2)`), so only the value as written can tell it was not one."""
    for name, (_, said) in ACCEPTS.items():
        if said != "true or false":
            continue
        written = dlt.config.get(".".join((*SECTION, name)))
        if written is not None and not isinstance(written, bool | str):
            raise ConfigError(refused(name, written, said))
