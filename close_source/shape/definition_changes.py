"""Changes of custom field definitions: a run's `custom_fields` rows compared with those the
destination held before it (docs/reading-close.md, "Custom fields").

One row per field, object type and kind of change, several kinds at once giving one row
each: `added`, `renamed`, `retyped` (its type or `accepts_multiple_values`), `choices_changed`
(the list of a field that is a choices field before and after) and `deleted`. Each row names
the column that holds the field's values now and says what happened to it. A retype, a
deletion and choices removed (or renamed) change what a column holds (`alters_meaning`).

A row's key is the field, the kind of change and the version of the definition that shows it
(its `date_updated`; the deleted field's last one): the same change seen again, by a run
loaded twice or compared with older definitions, has the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from close_source.timestamps import to_utc

CHANGES = ("added", "renamed", "retyped", "choices_changed", "deleted")
TEXT_COLUMNS = ("object_type", "field_id", "change", "old_name", "new_name", "old_type",
                "new_type", "old_choices", "new_choices", "table_name", "column_name",
                "column_effect")


@dataclass(frozen=True)
class Seen:
    """A field of one object type as a `custom_fields` row shows it."""

    object_type: str
    field_id: str
    name: str
    type: str  # Close's, with `[]` when it takes several values
    choices: tuple[str, ...] | None
    table: str
    column: str
    deleted: bool
    version: str | None  # Close's `date_updated` of the definition


    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Seen:
        multiple = "[]" if row.get("accepts_multiple_values") else ""
        return cls(str(row["object_type"]), str(row["id"]), str(row.get("name") or ""),
                   f"{row.get('type') or 'text'}{multiple}", choices_of(row.get("choices")),
                   str(row.get("table_name") or ""), str(row.get("column_name") or ""),
                   bool(row.get("is_deleted")), _version(row.get("date_updated")))

    @property
    def has_choices(self) -> bool:
        return self.type.removesuffix("[]") == "choices"


def choices_of(value: Any) -> tuple[str, ...] | None:
    """A JSON column's choices, whichever way the destination returns them (DuckDB its text,
    PostgreSQL the list)."""
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return tuple(str(choice) for choice in value) if isinstance(value, list) else None


def _version(value: Any) -> str | None:
    moment = to_utc(value)
    return moment.isoformat() if moment is not None else None


def compared(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]], *,
             seen_at: datetime, no_version: str,
             unread: Collection[str] = ()) -> list[dict[str, Any]]:
    """The change rows from the `before` to the `after` rows of `custom_fields`. Object types
    in `unread` (definitions this key could not read this run) changed as far as anyone knows
    in nothing. `no_version` keys the changes of a definition without `date_updated`."""
    old = {(seen.object_type, seen.field_id): seen for seen in map(Seen.of, before)}
    new = {(seen.object_type, seen.field_id): seen for seen in map(Seen.of, after)}
    rows = []
    for key in sorted(old.keys() | new.keys()):
        if key[0] in unread:
            continue
        was, now = old.get(key), new.get(key)
        for change in _kinds(was, now):
            rows.append(_row(change, was, now, seen_at, no_version))
    return rows


def _kinds(was: Seen | None, now: Seen | None) -> list[str]:
    alive_before = was is not None and not was.deleted
    alive_now = now is not None and not now.deleted
    if alive_now and not alive_before:
        return ["added"]
    if alive_before and not alive_now:
        return ["deleted"]
    if was is None or now is None or not alive_now:
        return []
    kinds = [kind for kind, differs in (("renamed", was.name != now.name),
                                        ("retyped", was.type != now.type)) if differs]
    if was.has_choices and now.has_choices and was.choices != now.choices:
        kinds.append("choices_changed")
    return kinds


def _row(change: str, was: Seen | None, now: Seen | None, seen_at: datetime,
         no_version: str) -> dict[str, Any]:
    old = None if change == "added" else was
    new = None if change == "deleted" else now
    current = now or was
    shown = new or old
    assert current is not None and shown is not None
    key = "\x1f".join((current.object_type, current.field_id, change,
                       shown.version or no_version))
    return {
        "change_id": hashlib.blake2b(key.encode(), digest_size=12).hexdigest(),
        "seen_at": seen_at, "object_type": current.object_type, "field_id": current.field_id,
        "change": change,
        "old_name": old and old.name, "new_name": new and new.name,
        "old_type": old and old.type, "new_type": new and new.type,
        "old_choices": _json(old), "new_choices": _json(new),
        "table_name": current.table, "column_name": current.column,
        "column_effect": _effect(change, was, current),
    }


def _json(seen: Seen | None) -> str | None:
    if seen is None or seen.choices is None:
        return None
    return orjson.dumps(list(seen.choices)).decode()


def _effect(change: str, was: Seen | None, now: Seen) -> str:
    """What the field's column does now, in a few words."""
    column = now.column
    if change == "added":
        return f"column {column} is filled again" if was is not None and \
            was.column == column else f"new column {column}"
    if change == "renamed":
        return f"column {column} keeps its name"
    if change == "retyped":
        assert was is not None
        if was.column == column:
            return f"values stay in {column} (same column type)"
        return f"values now in {column}; {was.column} stays, no longer filled"
    if change == "choices_changed":
        assert was is not None
        if set(was.choices or ()) - set(now.choices or ()):
            return f"column {column} kept; its values are read again as Close has them now"
        return f"column {column} kept; no value changes"
    return f"column {column} stays, no longer filled"


def alters_meaning(row: Mapping[str, Any]) -> bool:
    """A change of what the field's column holds: a retype, a deletion, a choice removed or
    renamed (Close changes or drops the values that had it)."""
    removed, _ = _choice_changes(row)
    return row["change"] in ("retyped", "deleted") or \
        (row["change"] == "choices_changed" and bool(removed))


def _choice_changes(row: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    old = choices_of(row.get("old_choices")) or ()
    new = choices_of(row.get("new_choices")) or ()
    return [c for c in old if c not in new], [c for c in new if c not in old]


def describe(row: Mapping[str, Any]) -> str:
    """One line: the field, what happened to it, what its column does now."""
    change = row["change"]
    name = row["old_name"] if change in ("renamed", "deleted") else row["new_name"]
    if change == "renamed":
        what = f"renamed to {row['new_name']!r}"
    elif change == "retyped":
        what = f"retyped {row['old_type']} -> {row['new_type']}"
    elif change == "choices_changed":
        removed, added = _choice_changes(row)
        parts = [f"{label} {', '.join(map(repr, choices))}" for label, choices in
                 (("removed", removed), ("added", added)) if choices]
        what = f"choices changed ({'; '.join(parts) or 'reordered'})"
    else:
        what = change
    return (f"custom field {name!r} ({row['object_type']}) {what}; {row['table_name']}: "
            f"{row['column_effect']}")
