"""Random changes of custom values and fields: set, clear, add, rename, delete, retype, choices.

Deletes and retypes keep custom values in play (never the last field of a kind); `_column`
is the kind of column a field's values need, so a retype always changes it.
"""

from __future__ import annotations

import random
from typing import Any

from .. import changes as c
from .. import mutations as m
from .. import org as o
from ..org import FakeOrg
from .picks import _WORDS, _activities, _fields_for, _pick, _renamed, _user, _value

_FIELD_TYPES = ("text", "number", "date", "datetime", "choices", "user", "textarea")


# Field kinds that hold values (`delete_field`, `retype_field`) and the collection of each.
_VALUE_KINDS: dict[str, str] = {
    "lead": o.LEAD, "contact": o.CONTACT, "opportunity": o.OPPORTUNITY, "activity": o.ACTIVITY,
}  # fmt: skip


def _custom_target(org: FakeOrg, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    collection = rng.choice((o.LEAD, o.LEAD, o.CONTACT, o.OPPORTUNITY, o.ACTIVITY))
    if collection == o.ACTIVITY:
        obj = _pick(rng, _activities(org, "CustomActivity"))
    else:
        obj = _pick(rng, org.ranked(collection))
    return (collection, obj) if obj is not None else None


def _set_custom(org: FakeOrg, rng: random.Random) -> str | None:
    target = _custom_target(org, rng)
    if target is None:
        return None
    collection, obj = target
    field = _pick(rng, _fields_for(org, collection, obj))
    if field is None:
        return None
    value = _value(org, rng, field, obj["id"] if collection == o.LEAD else obj.get("lead_id"))
    if value is None:
        return None
    key = f"custom.{field['id']}"
    c.update(org, collection, obj["id"], {key: value}, user_id=_user(org, rng))
    return f"{collection} {obj['id']}: set {key}"


def _clear_custom(org: FakeOrg, rng: random.Random) -> str | None:
    target = _custom_target(org, rng)
    if target is None:
        return None
    collection, obj = target
    keys = sorted(k for k in obj if k.startswith("custom."))
    if collection == o.ACTIVITY:
        required = {f["id"] for f in _fields_for(org, o.ACTIVITY, obj) if f.get("required")}
        keys = [k for k in keys if k[len("custom.") :] not in required]
    if not keys:
        return None
    key = rng.choice(keys)
    c.update(org, collection, obj["id"], {key: None}, user_id=_user(org, rng))
    return f"{collection} {obj['id']}: cleared {key}"


def _add_field(org: FakeOrg, rng: random.Random) -> str | None:
    kind = rng.choice(("lead", "lead", "contact", "opportunity"))
    type_ = rng.choice(_FIELD_TYPES)
    n = sum(org.count(coll) for coll in m.FIELD_COLLECTIONS.values())
    options: dict[str, Any] = {}
    if type_ == "choices":
        options["choices"] = rng.sample(_WORDS, 3)
        options["multi"] = rng.random() < 0.3
    field = m.add_field(org, kind, f"Churn {type_} {n}", type_, user_id=_user(org, rng), **options)
    return f"{kind} field {field['id']} ({type_})"


def _rename_field(org: FakeOrg, rng: random.Random) -> str | None:
    fields = [f for coll in m.FIELD_COLLECTIONS.values() for f in org.all(coll)]
    field = _pick(rng, fields)
    if field is None:
        return None
    base = field["name"].split(" ~")[0]
    m.rename_field(org, field["id"], f"{base} ~{rng.randint(1, 9999)}", user_id=_user(org, rng))
    return f"field {field['id']}"


def _deletable_fields(org: FakeOrg, kind: str) -> list[dict[str, Any]]:
    """Fields of a kind whose deletion leaves at least one field of that kind (for activity
    fields: of that custom activity type), so custom values stay in play."""
    fields = org.all(m.FIELD_COLLECTIONS[kind])
    if kind != "activity":
        return fields if len(fields) > 1 else []
    per_type: dict[Any, int] = {}
    for f in fields:
        per_type[f["custom_activity_type_id"]] = per_type.get(f["custom_activity_type_id"], 0) + 1
    return [f for f in fields if per_type[f["custom_activity_type_id"]] > 1]


def _delete_field(org: FakeOrg, rng: random.Random) -> str | None:
    kind = rng.choice(tuple(_VALUE_KINDS))
    field = _pick(rng, _deletable_fields(org, kind))
    if field is None:
        return None
    m.delete_field(org, field["id"])
    return f"{kind} field {field['id']} ({field['type']})"


def _column(type_: str, multi: bool) -> str:
    """The kind of column a field's values need: a list, a number, a date, a datetime or
    text (text, textarea, choices, user, contact, hidden)."""
    if multi:
        return "list"
    return type_ if type_ in ("number", "date", "datetime") else "text"


def _texts(org: FakeOrg, kind: str, field_id: str) -> list[str]:
    """The text forms of a field's current values, sorted (choices that keep some)."""
    key, found = f"custom.{field_id}", set()
    for obj in org.collections[_VALUE_KINDS[kind]].values():
        if key in obj:
            values = obj[key] if isinstance(obj[key], list) else [obj[key]]
            found.update(str(v) for v in values if isinstance(v, str | int) and str(v))
    return sorted(found)


def _retype_field(org: FakeOrg, rng: random.Random) -> str | None:
    """A new type or `accepts_multiple_values` whose column differs; values are converted
    as `mutations.update_field` does (invalid ones go). Required activity fields and running
    conversions are left alone."""
    kind = rng.choice(tuple(_VALUE_KINDS))
    fields = [
        f for f in org.all(m.FIELD_COLLECTIONS[kind])
        if not f.get("required") and "converting_to_type" not in f
    ]  # fmt: skip
    field = _pick(rng, fields)
    if field is None:
        return None
    now = _column(field["type"], bool(field["accepts_multiple_values"]))
    targets = [
        (t, multi) for t in m.FIELD_TYPES for multi in (False, True)
        if (not multi or t in m.MULTI_TYPES) and _column(t, multi) != now
    ]  # fmt: skip
    type_, multi = rng.choice(targets)
    options: dict[str, Any] = {"type_": type_, "multi": multi}
    if type_ == "choices" and field["type"] != "choices":
        texts = _texts(org, kind, field["id"])
        kept = rng.sample(texts, min(2, len(texts)))
        options["choices"] = kept + [w for w in rng.sample(_WORDS, 3) if w not in kept]
    m.update_field(org, field["id"], user_id=_user(org, rng), **options)
    was = f"{field['type']}{'[]' if field['accepts_multiple_values'] else ''}"
    return f"{kind} field {field['id']}: {was} -> {type_}{'[]' if multi else ''}"


def _rename_choice(org: FakeOrg, rng: random.Random) -> str | None:
    fields = [
        f for coll in m.FIELD_COLLECTIONS.values() for f in org.all(coll)
        if f["type"] == "choices" and f.get("choices")
    ]  # fmt: skip
    field = _pick(rng, fields)
    if field is None:
        return None
    old = rng.choice(field["choices"])
    new = _renamed(rng, old)
    while new in field["choices"]:
        new = _renamed(rng, new)
    m.rename_choice(org, field["id"], old, new, user_id=_user(org, rng))
    return f"field {field['id']}: {old!r} -> {new!r}"
