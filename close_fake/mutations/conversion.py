"""What stored values become when their field changes type, multiplicity or choices.

`convert_value` turns one value into what the changed definition accepts (or `_DROP`: the
key goes); `_convert_values` applies it to every object holding the field.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

from .. import org as o
from ..org import FakeOrg
from .schema import VALUE_COLLECTIONS

_DROP = object()  # a value that is not valid for the new type: the key is removed


def _convert_values(org: FakeOrg, field_id: str, field: dict[str, Any], *, retyped: bool) -> None:
    """Convert every stored value of a field to its (new) definition; invalid ones go."""
    key = f"custom.{field_id}"
    for values in VALUE_COLLECTIONS:
        changed = []
        for obj in org.collections[values].values():
            if key not in obj:
                continue
            value = convert_value(org, obj[key], field, retyped=retyped)
            if value is _DROP:
                changed.append({k: v for k, v in obj.items() if k != key})
            elif value != obj[key] or type(value) is not type(obj[key]):
                changed.append({**obj, key: value})
        if changed:
            org.put_many(values, changed)


def convert_value(org: FakeOrg, value: Any, field: dict[str, Any], *, retyped: bool = True) -> Any:
    """One stored value as the (changed) definition `field` accepts it, or `_DROP`.

    Multi -> single keeps the first element, single -> multi wraps; each element is then
    converted to the type (only when `retyped`: an unchanged type keeps its values, except
    that `choices` are always checked against the list). Multi values drop invalid elements
    and repeats; an empty result drops the value. `hidden` accepts any value as it is."""
    type_, multi = field["type"], bool(field["accepts_multiple_values"])
    if type_ == "hidden":
        return value
    items = list(value) if isinstance(value, list) else [value]
    if not multi:
        items = items[:1]
    out: list[Any] = []
    for item in items:
        if retyped or type_ == "choices":
            item = _convert_one(org, item, type_, field.get("choices") or [])
        if item is not _DROP and item not in out:
            out.append(item)
    if not out:
        return _DROP
    return out if multi else out[0]


def _convert_one(org: FakeOrg, value: Any, type_: str, choices: list[str]) -> Any:
    if type_ in ("text", "textarea"):
        return _as_text(value)
    if type_ == "number":
        return _as_number(value)
    if type_ == "date":
        parsed = _as_moment(value)
        return _DROP if parsed is None else parsed.date().isoformat()
    if type_ == "datetime":
        parsed = _as_moment(value)
        return _DROP if parsed is None else parsed.isoformat()
    if type_ == "choices":
        text = _as_text(value)
        return text if text in choices else _DROP
    if type_ == "user":
        return _as_user(org, value)
    if type_ == "contact":
        text = _as_text(value)
        return text if text is not _DROP and org.get(o.CONTACT, text) is not None else _DROP
    return value


def _as_text(value: Any) -> Any:
    """Strings stay; numbers become text, integral ones without `.0`; anything else goes."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _DROP
    if isinstance(value, float):
        if not math.isfinite(value):
            return _DROP
        if value.is_integer():
            return str(int(value))
    return str(value)


def _as_number(value: Any) -> Any:
    """Numbers stay; text that parses becomes an int when integral, else a float."""
    if isinstance(value, bool):
        return _DROP
    if isinstance(value, int | float):
        return value if math.isfinite(value) else _DROP
    if not isinstance(value, str):
        return _DROP
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return _DROP
    if not math.isfinite(number):
        return _DROP
    return int(number) if number.is_integer() else number


def _as_moment(value: Any) -> datetime | None:
    """An ISO date or datetime string as an aware datetime: a date means midnight UTC, a
    naive datetime UTC; an offset is kept (so a datetime's date is its local date)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _as_user(org: FakeOrg, value: Any) -> Any:
    """A user field "accepts IDs ... and names (exact match only) of users who are active or
    former members ... and always returns IDs" (Close API: Custom Fields); anything else goes."""
    if not isinstance(value, str):
        return _DROP
    if org.get(o.USER, value) is not None:
        return value
    for user in org.all(o.USER):
        if org.user_name(user["id"]) == value:
            return user["id"]
    return _DROP
