"""Custom values -> typed, human-named columns whose name and type never change.

Rules (docs/reading-close.md, "Custom fields"):

- A field's column is `custom_<normalized display name>` (`custom_field_columns = "id"`:
  `custom_<normalized field id>`), chosen the first time the field is seen and then frozen in
  the pipeline state: renaming the field in Close does not rename the column.
- A name already taken (two fields with the same normalized name, a built-in column such as
  `custom_activity_type_id`) or longer than 63 characters (PostgreSQL's limit) gets `_` and a
  short piece of the field id: deterministic, and the older field keeps the plain name.
- The column type follows the field type: number -> double, date -> date, datetime -> UTC
  timestamp, multi-value fields -> a JSON array, everything else -> text.
- A column never changes type. When a field's type or multiplicity changes so that it needs a
  different column type, its values continue in `<column>_<type>` (`_list`, `_number`, `_text`,
  `_date`, `_datetime`); the old column stays.
- A value that fits no column (a field no definition names, or a value of the wrong type while
  Close converts a field) is kept, keyed by field id, in the table's `custom_unmapped` JSON
  object. Nothing is dropped.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from close_source.read.custom_fields import (
    OBJECT_TYPE_OF_TABLE,
    FieldDefinition,
    RawDefinitions,
    definitions_by_table,
)
from close_source.records import Json
from close_source.settings import ColumnNaming
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

MAX_IDENTIFIER = 63  # PostgreSQL; BigQuery allows 300, DuckDB more
PREFIX = "custom_"
UNMAPPED = "custom_unmapped"
# Built-in columns that start with our prefix, and our own column.
RESERVED = frozenset({"custom_activity_type_id", UNMAPPED})
# Column types (arrow_tables' type names) and the suffix a field gets when it moves to one.
SUFFIX_OF_COLUMN_TYPE = {"text": "text", "double": "number", "date": "date",
                         "timestamp": "datetime", "json": "list"}
_COLUMN_TYPE_OF_FIELD_TYPE = {"number": "double", "date": "date", "datetime": "timestamp"}
MAX_EXACT_INTEGER = 2**53
_CUSTOM_KEY = "custom."


def column_type_of_field(definition: FieldDefinition) -> str:
    if definition.multi:
        return "json"
    return _COLUMN_TYPE_OF_FIELD_TYPE.get(definition.type, "text")


def normalized(text: str) -> str:
    """ASCII snake case that dlt's naming convention leaves as it is."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


def _id_code(field_id: str, length: int) -> str:
    tail = field_id.split("_", 1)[-1]
    return (re.sub(r"[^a-z0-9]", "", tail.lower()) or normalized(field_id))[:length]


def fit_column(base: str, field_id: str, taken: set[str]) -> str:
    """`base` if free and short enough, else `base` (cut) + `_` + a piece of the field id."""
    if len(base) <= MAX_IDENTIFIER and base not in taken:
        return base
    for length in (6, 8, 12, 16, 24, 48):
        code = _id_code(field_id, length)
        candidate = f"{_cut(base, MAX_IDENTIFIER - len(code) - 1)}_{code}"
        if candidate not in taken:
            return candidate
    counter = 2
    while f"{base[:MAX_IDENTIFIER - 6]}_{counter}" in taken:
        counter += 1
    return f"{base[:MAX_IDENTIFIER - 6]}_{counter}"


def _cut(base: str, limit: int) -> str:
    """At most `limit` characters, at a word boundary when one is near."""
    if len(base) <= limit:
        return base.rstrip("_")
    stem = base[:limit]
    if base[limit] != "_" and "_" in stem[-12:]:
        stem = stem[:stem.rfind("_")]
    return stem.rstrip("_")


# ---- values ---------------------------------------------------------------------------------

_MISFIT = object()


def convert(column_type: str, value: Any) -> Any:
    """The value as its column stores it, or `_MISFIT`."""
    if column_type == "text":
        if isinstance(value, str):
            return value
        text = orjson.dumps(value, default=str).decode()
        return Json(text) if isinstance(value, list | dict) else text
    if column_type == "json":
        return Json(orjson.dumps(value if isinstance(value, list) else [value],
                                 default=str).decode())
    if column_type == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _MISFIT
        if isinstance(value, int):
            return float(value) if abs(value) <= MAX_EXACT_INTEGER else _MISFIT
        return value
    if column_type == "date":
        if isinstance(value, str) and len(value) == 10:
            try:
                return date.fromisoformat(value)
            except ValueError:
                return _MISFIT
        return _MISFIT
    if column_type == "timestamp":
        if isinstance(value, str | datetime):
            parsed = to_utc(value)
            return _MISFIT if parsed is None else parsed
        return _MISFIT
    raise ValueError(column_type)


# ---- the mapping ----------------------------------------------------------------------------


@dataclass
class FieldColumns:
    """One field's columns in one table: one per column column_type it has ever needed."""

    field_id: str
    name: str
    type: str
    column_type: str
    columns: dict[str, str] = field(default_factory=dict)  # column_type -> column, oldest first
    active: bool = True
    definition: FieldDefinition | None = None

    @property
    def column(self) -> str:
        return self.columns[self.column_type]

    choices: tuple[str, ...] = ()
    was_active: bool | None = None  # in the run that saved the state (None: first sight)
    converting: bool = False  # Close is converting its values to another type
    # when Close last changed the field's values without events (a retype, renamed choices,
    # a conversion): Event Log snapshots older than this hold values it no longer has
    values_changed_at: datetime | None = None

    def to_state(self) -> dict[str, Any]:
        kept = {"name": self.name, "type": self.type, "column_type": self.column_type,
                "columns": dict(self.columns), "choices": list(self.choices),
                "active": self.active, "converting": self.converting}
        if self.values_changed_at is not None:
            kept["values_changed_at"] = self.values_changed_at.isoformat()
        return kept

    @classmethod
    def from_state(cls, field_id: str, kept: Mapping[str, Any]) -> FieldColumns:
        return cls(field_id, str(kept.get("name", "")), str(kept.get("type", "")),
                   str(kept.get("column_type", kept.get("kind"))),  # "kind" before v3
                   dict(kept["columns"]), active=False,
                   choices=tuple(kept.get("choices") or ()),
                   was_active=bool(kept.get("active", True)),
                   converting=bool(kept.get("converting", False)),
                   values_changed_at=to_utc(kept.get("values_changed_at")))


@dataclass
class TableColumns:
    """The custom columns of one table (leads, contacts, opportunities, custom_activities)."""

    table: str
    fields: dict[str, FieldColumns] = field(default_factory=dict)
    _by_name: dict[tuple[str | None, str], str] = field(default_factory=dict)

    def apply(self, definitions: list[FieldDefinition], mode: ColumnNaming) -> bool:
        """Current definitions: new fields and new column_types get columns, older ones are kept.

        True when a change alters values already stored without touching the objects (a field
        deleted, moved to another column type, its choices changed, a conversion of its values
        begun or ended): the table needs a re-read.
        """
        taken = set(RESERVED) | {c for f in self.fields.values() for c in f.columns.values()}
        current = {definition.id for definition in definitions}
        stale = any(kept.was_active and kept.field_id not in current
                    for kept in self.fields.values())
        for kept in self.fields.values():
            kept.active = kept.field_id in current
        by_name: dict[tuple[str | None, str], str] = {}
        for definition in definitions:  # oldest first: the older field keeps the plain name
            column_type = column_type_of_field(definition)
            entry = self.fields.get(definition.id)
            if entry is None:
                entry = self.fields[definition.id] = FieldColumns(
                    definition.id, definition.name, definition.type, column_type)
            choices = tuple(str(c) for c in definition.raw.get("choices") or ())
            converting = bool(definition.raw.get("converting_to_type"))
            if entry.was_active and (entry.column_type != column_type or entry.choices != choices
                                     or entry.converting != converting):
                stale = True  # a conversion that ends changes the values, without events
                entry.values_changed_at = (to_utc(definition.raw.get("date_updated"))
                                           or datetime.now(UTC))
            entry.converting = converting
            entry.name, entry.type = definition.name, definition.type
            entry.column_type = column_type
            entry.active, entry.definition, entry.choices = True, definition, choices
            entry.was_active = True
            if column_type not in entry.columns:
                if entry.columns:
                    first = next(iter(entry.columns.values()))
                    base = f"{first}_{SUFFIX_OF_COLUMN_TYPE[column_type]}"
                else:
                    label = normalized(definition.name if mode == "name" else definition.id)
                    base = PREFIX + (label or normalized(definition.id))
                entry.columns[column_type] = column = fit_column(base, definition.id, taken)
                taken.add(column)
            activity_type = definition.raw.get("custom_activity_type_id")
            by_name.setdefault((None, definition.name), definition.id)
            if activity_type:
                by_name.setdefault((str(activity_type), definition.name), definition.id)
        self._by_name = by_name
        return stale

    def resolve(self, ref: str, activity_type: str | None) -> FieldColumns | None:
        """A field by id, else by display name (the deprecated `custom` dict and key styles)."""
        found = self.fields.get(ref)
        if found is not None:
            return found
        field_id = (activity_type and self._by_name.get((activity_type, ref))) or \
            self._by_name.get((None, ref))
        return self.fields.get(field_id) if field_id else None

    def column_types(self) -> dict[str, str]:
        """Every column this table has ever had for custom values, with its type."""
        types = {column: column_type for entry in self.fields.values()
                 for column_type, column in entry.columns.items()}
        types[UNMAPPED] = "json"
        return types


class CustomColumns:
    """The run's custom-column mapping: frozen names from state, current definitions.

    Shared by every resource of a run (they run in threads); a reload of the definitions,
    asked for by a value no definition knows, happens at most once per run.
    """

    def __init__(self, mode: ColumnNaming, kept: Mapping[str, Any] | None,
                 load_definitions: Callable[[], RawDefinitions],
                 keeps: Callable[[FieldDefinition], bool] = lambda _: True) -> None:
        """`keeps`: whether a field gets a column (an excluded one gets none)."""
        self.mode, self._load, self._keeps = mode, load_definitions, keeps
        self._lock, self._reloaded = threading.Lock(), False
        self._warned: set[tuple[str, str]] = set()
        self.tables = {table: TableColumns(table) for table in OBJECT_TYPE_OF_TABLE}
        # tables whose stored custom values went stale since the last run (see apply)
        self.stale_tables: set[str] = set()
        self.unread: set[str] = set()  # object types whose definitions this key may not read
        for table, fields in (kept or {}).items():
            if table in self.tables:
                self.tables[table].fields = {
                    field_id: FieldColumns.from_state(field_id, value)
                    for field_id, value in fields.items()}
        self._apply(load_definitions())

    def _apply(self, raw: RawDefinitions) -> None:
        for table, definitions in definitions_by_table(raw).items():
            if OBJECT_TYPE_OF_TABLE[table] not in raw.by_object_type:
                # this key may not read them: the fields keep the state the last run saw
                self.unread.add(OBJECT_TYPE_OF_TABLE[table])
                for kept in self.tables[table].fields.values():
                    kept.active = bool(kept.was_active)
                continue
            self.unread.discard(OBJECT_TYPE_OF_TABLE[table])
            if self.tables[table].apply([d for d in definitions if self._keeps(d)], self.mode):
                self.stale_tables.add(table)

    def changed_after(self, table: str, moment: datetime) -> bool:
        """Whether Close changed values of the table's custom fields, without events, later
        than `moment` (a snapshot from then is stale). A rename or a new field changes no
        value; a deleted field's values are dropped from every snapshot."""
        columns = self.tables.get(table)
        return columns is not None and any(
            entry.values_changed_at is not None and entry.values_changed_at > moment
            for entry in columns.fields.values())

    def reload_once(self) -> bool:
        """Reload the definitions (a field created mid-run); False if already done."""
        with self._lock:
            if self._reloaded:
                return False
            self._reloaded = True
            log.info("custom fields: a value names an unknown field; reloading definitions")
            self._apply(self._load())
            return True

    def split(self, table: str, obj: MutableMapping[str, Any]) -> dict[str, Any]:
        """Take the custom values out of `obj`: {column: typed value}, absent ones omitted."""
        columns = self.tables[table]
        activity_type = obj.get("custom_activity_type_id")
        out: dict[str, Any] = {}
        unmapped: dict[str, Any] = {}
        for key in [key for key in obj if key.startswith(_CUSTOM_KEY)]:
            self._put(columns, key[len(_CUSTOM_KEY):], obj.pop(key), activity_type, out,
                      unmapped)
        by_name = obj.pop("custom", None)
        if isinstance(by_name, Mapping):
            for name, value in by_name.items():
                self._put(columns, str(name), value, activity_type, out, unmapped)
        elif by_name is not None:
            unmapped["custom"] = by_name
        if unmapped:
            out[UNMAPPED] = Json(orjson.dumps(unmapped, default=str).decode())
        return out

    def column_of(self, table: str, ref: str, activity_type: str | None = None) -> str | None:
        """The column a custom field's values go to now (`custom.<ref>` keys), if known."""
        found = self.tables[table].resolve(ref, activity_type) if table in self.tables else None
        return found.column if found is not None else None

    def _put(self, columns: TableColumns, ref: str, value: Any, activity_type: str | None,
             out: dict[str, Any], unmapped: dict[str, Any]) -> None:
        if value is None:
            return
        found = columns.resolve(ref, activity_type)
        if found is None and self.reload_once():
            found = columns.resolve(ref, activity_type)
        if found is None:
            self._warn_once(columns.table, ref, "names no custom field Close knows")
            unmapped.setdefault(ref, value)
            return
        if not found.active:
            # deleted in Close: only an older copy of the object (an Event Log snapshot)
            # still carries the value, and Close no longer has it
            if (columns.table, found.field_id) not in self._warned:
                self._warned.add((columns.table, found.field_id))
                log.info("%s: custom field %s was deleted in Close; values from older copies "
                         "of objects are not written", columns.table, found.field_id)
            return
        column = found.column
        if column in out:
            return  # `custom.<id>` keys come first and win over the name-keyed dict
        converted = convert(found.column_type, value)
        if converted is _MISFIT:
            self._warn_once(columns.table, found.field_id,
                            f"has a value that is not a {found.type}")
            unmapped.setdefault(found.field_id, value)
        else:
            out[column] = converted

    def _warn_once(self, table: str, ref: str, problem: str) -> None:
        if (table, ref) not in self._warned:
            self._warned.add((table, ref))
            log.warning("%s: custom field %r %s; the value is kept in %s", table, ref, problem,
                        UNMAPPED)

    def column_types(self, table: str) -> dict[str, str]:
        with self._lock:
            return self.tables[table].column_types()

    def frozen(self, tables: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The columns of `tables` (all when None), as the state keeps them (`state.py`)."""
        with self._lock:
            return {table: {field_id: entry.to_state()
                            for field_id, entry in columns.fields.items()}
                    for table, columns in self.tables.items()
                    if tables is None or table in tables}

    def definition_rows(self) -> Iterator[dict[str, Any]]:
        """The `custom_fields` table: every field per object type, with its column."""
        with self._lock:
            for table, columns in self.tables.items():
                for entry in columns.fields.values():
                    definition = entry.definition if entry.active else None
                    row = dict(definition.raw) if definition else {}
                    row.pop("is_shared", None)
                    row.update(
                        object_type=OBJECT_TYPE_OF_TABLE[table], id=entry.field_id, name=entry.name,
                        type=entry.type, table_name=table, column_name=entry.column,
                        column_type=entry.column_type,
                        previous_columns=[c for k, c in entry.columns.items()
                                          if k != entry.column_type],
                        is_shared=bool(definition and definition.shared),
                        is_deleted=not entry.active,
                    )
                    yield row
