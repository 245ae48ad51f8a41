"""Fields kept out (`exclude_columns`) and personal data hashed (`pii = "hash"`), applied to each
object as a read path hands it on (docs/configuration.md, "Personal data").

Before anything keeps an object: a backup's files, the Event Log window's scratch file, dlt's
extract files, the state. So every read path applies it where its objects come in: whole
tables (`lists.read_entry`, a backup's files too), the export's objects (`export.ExportRouter`),
and the Event Log window's events and object states (`window_store.WindowStore`). Later stages
never see the values; they only leave out what has no values left: a child table of an excluded
list, the column of an excluded custom field, its `field_changes` rows.

Custom fields are excluded by Close name or id: names are resolved with the definitions read
when the run begins, and again once should an object carry a field they do not know (created
while the run reads).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from close_source.catalog import BY_TABLE, child_table, route
from close_source.errors import ConfigError
from close_source.read.custom_fields import FieldDefinition, RawDefinitions, definitions_by_table
from close_source.read.pii_hash import Hasher
from close_source.settings import CUSTOM, Pii, setting_name

log = logging.getLogger(__name__)

CUSTOM_KEY = f"{CUSTOM}."
MIN_KEY_LENGTH = 16  # a shorter key is guessed faster than addresses are


@dataclass(frozen=True)
class _Rule:
    """One table's exclusions, as written."""

    fields: frozenset[str]  # top-level standard fields
    paths: tuple[tuple[str, ...], ...]  # nested ones: ("envelope", "cc")
    all_custom: bool
    custom: frozenset[str]  # custom fields by id or name

    @classmethod
    def of(cls, names: Iterable[str]) -> _Rule:
        names = list(names)
        custom = [name for name in names if name.startswith(CUSTOM_KEY)]
        standard = [name for name in names if name != CUSTOM and name not in custom]
        return cls(frozenset(name for name in standard if "." not in name),
                   tuple(tuple(name.split(".")) for name in standard if "." in name),
                   CUSTOM in names, frozenset(name[len(CUSTOM_KEY):] for name in custom))


@dataclass(frozen=True)
class _Known:
    """A table's custom fields as the definitions name them, and those excluded."""

    ids: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()  # ids and names of the excluded fields


class Privacy:
    """What a run keeps out and hashes; shared by its threads. `NO_PRIVACY` does nothing."""

    def __init__(self, exclusions: Mapping[str, Iterable[str]] | None = None,
                 hasher: Hasher | None = None,
                 definitions: Callable[[], RawDefinitions] | None = None) -> None:
        self._rules = {table: _Rule.of(names) for table, names in (exclusions or {}).items()}
        self.hasher = hasher
        self._load = definitions
        self._lock = threading.Lock()
        self._reloaded = False
        self._known: dict[str, _Known] = {}
        self.dropped_tables = frozenset(
            child_table(BY_TABLE[table], name) for table, rule in self._rules.items()
            for name in BY_TABLE[table].child_lists if name in rule.fields)
        if definitions is not None and any(rule.custom for rule in self._rules.values()):
            self._resolve(definitions(), warn=True)

    @property
    def active(self) -> bool:
        return bool(self._rules) or self.hasher is not None

    def marker(self) -> dict[str, Any]:
        """What the tables were written with, for the state (a change is noticed): the
        exclusions as written, and which key hashed (its fingerprint, never the key)."""
        return {"exclude_columns": {table: sorted({*rule.fields, *map(".".join, rule.paths),
                                                   *([CUSTOM] if rule.all_custom else []),
                                                   *(CUSTOM_KEY + ref for ref in rule.custom)})
                                    for table, rule in sorted(self._rules.items())},
                "pii": "hash" if self.hasher else "none",
                "pii_key": self.hasher.fingerprint() if self.hasher else None}

    # ---- objects -----------------------------------------------------------------------------

    def object(self, table: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The object without its excluded fields and with its addresses and numbers hashed,
        changed in place. Objects of other tables nested in it (a lead's contacts, the
        organisation's memberships), which shaping drops, go now: they are kept, and kept
        out, as their own table's."""
        if not self.active:
            return obj
        entry = BY_TABLE.get(table)
        for key in entry.drop if entry is not None else ():
            obj.pop(key, None)
        rule = self._rules.get(table)
        if rule is not None:
            self._exclude(table, rule, obj)
        if self.hasher is not None:
            self.hasher.walk_object(obj)
        return obj

    def page(self, table: str, page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for obj in page:
            self.object(table, obj)
        return page

    def pages(self, table: str, pages: Iterator[list[dict[str, Any]]]
              ) -> Iterator[list[dict[str, Any]]]:
        return pages if not self.active else (self.page(table, page) for page in pages)

    def event(self, object_type: str, raw: dict[str, Any]) -> dict[str, Any]:
        """An Event Log entry: the object's `data` and `previous_data` as its table's objects,
        and every address and number of the entry hashed, in place."""
        if not self.active:
            return raw
        entry = route(object_type)
        rule = self._rules.get(entry.table) if entry is not None else None
        for part in ("data", "previous_data"):
            if entry is not None and isinstance(raw.get(part), dict):
                for key in entry.drop:  # a lead's contacts ...: see `object`
                    raw[part].pop(key, None)
                if rule is not None:
                    self._exclude(entry.table, rule, raw[part])
        if self.hasher is not None:
            self.hasher.walk_object(raw)
        return raw

    def keeps(self, definition: FieldDefinition) -> bool:
        """Whether a custom field gets a column (an excluded one has none)."""
        rule = self._rules.get(definition.table)
        return rule is None or not (rule.all_custom or definition.id in rule.custom
                                    or definition.name in rule.custom)

    def keeps_change(self, table: str, field: str) -> bool:
        """Whether `field_changes` records a change of the field (`custom.<id>` or a name)."""
        rule = self._rules.get(table)
        if rule is None:
            return True
        if field.startswith(CUSTOM_KEY):
            return not (rule.all_custom or self._excluded_custom(table, rule,
                                                                 field[len(CUSTOM_KEY):]))
        return field not in rule.fields and field != CUSTOM

    # ---- exclusions --------------------------------------------------------------------------

    def _exclude(self, table: str, rule: _Rule, obj: dict[str, Any]) -> None:
        for name in rule.fields & obj.keys():
            del obj[name]
        for path in rule.paths:
            _drop_path(obj, path)
        if rule.all_custom:
            for key in [key for key in obj if key == CUSTOM or key.startswith(CUSTOM_KEY)]:
                del obj[key]
        elif rule.custom:
            for key in [key for key in obj if key.startswith(CUSTOM_KEY)]:
                if self._excluded_custom(table, rule, key[len(CUSTOM_KEY):]):
                    del obj[key]
            by_name = obj.get(CUSTOM)
            if isinstance(by_name, dict):
                for name in [name for name in by_name
                             if self._excluded_custom(table, rule, str(name))]:
                    del by_name[name]

    def _excluded_custom(self, table: str, rule: _Rule, ref: str) -> bool:
        """Whether `custom.<ref>` (an id, or a name in some key styles) is an excluded field;
        a field the definitions do not know makes them be read again, once."""
        if ref in rule.custom:
            return True
        known = self._known.get(table, _Known())
        if ref in known.excluded or ref in known.ids or ref in known.names:
            return ref in known.excluded
        self._reload()  # another thread's reload is waited for
        return ref in self._known.get(table, _Known()).excluded

    def _reload(self) -> None:
        with self._lock:
            if self._reloaded or self._load is None:
                return
            self._reloaded = True
            self._resolve(self._load(), warn=False)

    def _resolve(self, raw: RawDefinitions, warn: bool) -> None:
        for table, definitions in definitions_by_table(raw).items():
            rule = self._rules.get(table)
            if rule is None or not rule.custom:
                continue
            excluded = [d for d in definitions if d.id in rule.custom or d.name in rule.custom]
            self._known[table] = _Known(frozenset(d.id for d in definitions),
                                        frozenset(d.name for d in definitions),
                                        frozenset({*(d.id for d in excluded),
                                                   *(d.name for d in excluded)}))
            unknown = sorted(ref for ref in rule.custom if ref not in self._known[table].excluded)
            if warn and unknown:
                log.warning("%s: %s %s no custom field Close has now: kept out once one by that "
                            "name or id exists", setting_name("exclude_columns"),
                            ", ".join(f"{table} {CUSTOM_KEY}{ref}" for ref in unknown),
                            "names" if len(unknown) == 1 else "name")


def pii_hasher(pii: Pii, pii_key: str | None) -> Hasher | None:
    """The run's hasher (`pii = "hash"`); a missing or short `pii_key` is a ConfigError that
    does not show it. Checked before anything is read."""
    if pii != "hash":
        return None
    key = (pii_key or "").strip()
    if not key:
        raise ConfigError(f"{setting_name('pii')} is \"hash\" but no key is set: put pii_key "
                          f"under [sources.close] in .dlt/secrets.toml or set "
                          f"SOURCES__CLOSE__PII_KEY")
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"{setting_name('pii_key')} must be at least {MIN_KEY_LENGTH} "
                          f"characters long (a random one: hashes made with a guessable key "
                          f"can be reversed)")
    return Hasher(key)


def _drop_path(value: Any, path: tuple[str, ...]) -> None:
    """`envelope.cc`: the key at the end of the path, through objects and lists of them."""
    if isinstance(value, list):
        for item in value:
            _drop_path(item, path)
    elif isinstance(value, dict):
        if len(path) == 1:
            value.pop(path[0], None)
        elif path[0] in value:
            _drop_path(value[path[0]], path[1:])


NO_PRIVACY = Privacy()
