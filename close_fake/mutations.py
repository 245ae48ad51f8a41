"""Custom-field mutation hooks: change definitions and values of a running fake organisation.

Tests of the connector sync, change custom fields the way an admin would (add, rename,
retype, delete a field; rename a choice; set or clear one value), and sync again. The HTTP
routes `POST/PUT/DELETE /custom_field/{kind}/...` call these functions too.

Rules, all from the `FakeOrg` contract:
- Stored objects are never edited in place: a changed object is a new dict given to
  `org.put(...)` / `org.put_many(...)`. Export snapshots share the old objects, so an
  export created before a mutation does not see it.
- `org.lock` is held across every multi-object change, so a request never sees half of one.
- Changed definitions get a new `date_updated` (and `updated_by`). Values changed *because
  a definition changed* (delete, retype, choice rename) do not touch the objects'
  `date_updated`: the docs say definition changes "do not modify existing activities ... or
  trigger updated events" [003:8426], our reading for leads, contacts and opportunities too.
  `set_custom`, an edit of one object, does bump it.

Events (`events.py`): each function runs as one request and logs what Close lists
[003:8380-8421]: `custom_fields.<kind>` created / updated / deleted (opportunity and shared
fields too, served only with `EventSettings(undocumented=True)`), `custom_activity_type`
updated when an activity field is added or deleted, and `set_custom` the object's
`updated` event. Values changed by a definition change emit nothing.

Invalid input raises `ValueError` (HTTP 400), unknown ids `KeyError` (HTTP 404).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from . import events as ev
from . import org as o
from .common import make_id
from .org import FakeOrg

# Definition collection of each kind (the `/custom_field/{kind}/` endpoints).
FIELD_COLLECTIONS: dict[str, str] = {
    "lead": o.CUSTOM_FIELD_LEAD,
    "contact": o.CUSTOM_FIELD_CONTACT,
    "opportunity": o.CUSTOM_FIELD_OPPORTUNITY,
    "activity": o.CUSTOM_FIELD_ACTIVITY,
    "shared": o.CUSTOM_FIELD_SHARED,
}
# Collections whose objects carry `custom.<id>` values.
VALUE_COLLECTIONS: tuple[str, ...] = (o.LEAD, o.CONTACT, o.OPPORTUNITY, o.ACTIVITY)
# Object types a shared field can be associated with, and the collection of each.
SHARED_OBJECT_TYPES: dict[str, str] = {
    "lead": o.LEAD,
    "contact": o.CONTACT,
    "opportunity": o.OPPORTUNITY,
}
# The documented types [003:4270-4286] plus `textarea` and `contact`, which live Close has
# and the connector must handle.
FIELD_TYPES: tuple[str, ...] = (
    "text", "textarea", "number", "date", "datetime", "choices", "user", "contact", "hidden",
)  # fmt: skip
# "Multiple values are currently only supported for the user and choices type"
# [003:4290]; live Close allows them for contact fields too.
MULTI_TYPES = frozenset({"choices", "user", "contact"})
DESCRIPTION_MAX = 280  # [003:4269]

_DROP = object()  # a value that is not valid for the new type: the key is removed


# -- lookups -------------------------------------------------------------------------------------


def field_collection(org: FakeOrg, field_id: str) -> str:
    """The `custom_field.*` collection holding a definition (ids are unique across kinds,
    so callers need not know the kind). KeyError for unknown ids."""
    for collection in FIELD_COLLECTIONS.values():
        if field_id in org.collections[collection]:
            return collection
    raise KeyError(f"Custom field {field_id} not found.")


def _definition(org: FakeOrg, field_id: str) -> tuple[str, dict[str, Any]]:
    collection = field_collection(org, field_id)
    return collection, org.collections[collection][field_id]


# -- timestamps ----------------------------------------------------------------------------------


def _stamp(org: FakeOrg, previous: str | None, at: datetime | None) -> str:
    """A new `date_updated` in the previous value's format (aware `+00:00` or naive).

    Without `at`: the request's time (the organisation's clock), or 1 ms after the previous
    value if that is not earlier, so repeated mutations of one object always move its
    `date_updated` forward."""
    return ev.stamp(org, previous, at)


def _kind_of(collection: str) -> str:
    return next(k for k, c in FIELD_COLLECTIONS.items() if c == collection)


def _request(
    org: FakeOrg, method: str, collection: str, field_id: str | None, user_id: Any, at: Any
) -> Any:
    """The request a definition change runs in (`events.request`)."""
    path = f"/api/v1/custom_field/{_kind_of(collection)}/" + (f"{field_id}/" if field_id else "")
    return ev.request(org, method, path, user_id=user_id, at=at)


def _touched(
    org: FakeOrg, obj: dict[str, Any], at: datetime | None, user_id: str | None
) -> dict[str, Any]:
    """`obj` with a new `date_updated` (and `updated_by` when a user is given)."""
    out = dict(obj)
    out["date_updated"] = _stamp(org, obj.get("date_updated"), at)
    if user_id is not None and "updated_by" in out:
        out["updated_by"] = user_id
        if "updated_by_name" in out:
            out["updated_by_name"] = org.user_name(user_id)
    return out


def _activity_type_data(org: FakeOrg, type_id: str | None) -> dict[str, Any] | None:
    type_ = org.get(o.CUSTOM_ACTIVITY_TYPE, type_id) if type_id else None
    return ev.data_of(org, o.CUSTOM_ACTIVITY_TYPE, type_) if type_ is not None else None


def _touch_activity_type(
    org: FakeOrg, type_id: str, at: datetime | None, before: dict[str, Any] | None
) -> None:
    """Adding or deleting an activity field updates its custom activity type [003:8408-8418]
    (`before`: the type's data before the field changed)."""
    type_ = org.get(o.CUSTOM_ACTIVITY_TYPE, type_id)
    if type_ is not None:
        new = _touched(org, type_, at, None)
        org.put(o.CUSTOM_ACTIVITY_TYPE, new)
        if before is not None:
            ev.updated(org, o.CUSTOM_ACTIVITY_TYPE, new, before, force=True)


# -- validation ----------------------------------------------------------------------------------


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("`name` must be a non-empty string.")
    return name


def _check_type(type_: Any) -> str:
    if type_ not in FIELD_TYPES:
        raise ValueError(f"Invalid custom field type {type_!r}; valid: {', '.join(FIELD_TYPES)}.")
    return type_


def _check_multi(type_: str, multi: Any) -> bool:
    if not isinstance(multi, bool):
        raise ValueError("`accepts_multiple_values` must be a boolean.")
    if multi and type_ not in MULTI_TYPES:
        raise ValueError(
            f"Fields of type {type_!r} cannot accept multiple values "
            f"(only {', '.join(sorted(MULTI_TYPES))})."
        )
    return multi


def _check_choices(type_: str, choices: Any) -> list[str] | None:
    if type_ != "choices":
        if choices is not None:
            raise ValueError("`choices` only apply to fields of type 'choices'.")
        return None
    if not isinstance(choices, list | tuple) or not all(isinstance(c, str) for c in choices):
        raise ValueError("Fields of type 'choices' need `choices`, a list of strings.")
    if len(set(choices)) != len(choices):
        raise ValueError("`choices` must not repeat a value.")
    return list(choices)


def _check_description(description: Any) -> str | None:
    if description is None:
        return None
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
        raise ValueError(f"`description` must be a string of at most {DESCRIPTION_MAX} characters.")
    return description


def _associations(associations: Any) -> list[dict[str, Any]]:
    """`["lead", "contact"]` or `[{"object_type": "lead", ...}]` -> the stored shape
    (the generator's: object_type, custom_activity_type_id, editable_with_roles, required)."""
    if not isinstance(associations, list | tuple) or not associations:
        raise ValueError("Shared fields need `associations`: a non-empty list of object types.")
    out: list[dict[str, Any]] = []
    for item in associations:
        spec = {"object_type": item} if isinstance(item, str) else item
        if not isinstance(spec, dict) or spec.get("object_type") not in SHARED_OBJECT_TYPES:
            raise ValueError(
                f"Invalid association {item!r}; object types: {', '.join(SHARED_OBJECT_TYPES)}."
            )
        if any(a["object_type"] == spec["object_type"] for a in out):
            raise ValueError(f"Object type {spec['object_type']!r} is associated twice.")
        out.append({
            "object_type": spec["object_type"],
            "custom_activity_type_id": None,
            "editable_with_roles": list(spec.get("editable_with_roles") or []),
            "required": bool(spec.get("required", False)),
        })  # fmt: skip
    return out


def _new_field_id(org: FakeOrg) -> str:
    """A fresh `cf_` id, deterministic for the organisation and its number of fields."""
    n = sum(org.count(c) for c in FIELD_COLLECTIONS.values())
    while True:
        field_id = make_id(random.Random(f"{org.organization_id}/cf/{n}"), "cf")
        if not any(field_id in org.collections[c] for c in FIELD_COLLECTIONS.values()):
            return field_id
        n += 1


# -- definitions ---------------------------------------------------------------------------------


def add_field(
    org: FakeOrg,
    kind: str,
    name: str,
    type_: str,
    *,
    choices: Sequence[str] | None = None,
    multi: bool = False,
    description: str | None = None,
    associations: Iterable[str | dict[str, Any]] | None = None,
    custom_activity_type_id: str | None = None,
    required: bool = False,
    field_id: str | None = None,
    editable_with_roles: Sequence[str] | None = None,
    user_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Create a definition shaped like the generated ones (`gen_config._field`), so a test
    can make a field appear between two syncs. `kind`: lead, contact, opportunity, activity
    (needs `custom_activity_type_id`) or shared (needs `associations`). Returns it."""
    if kind not in FIELD_COLLECTIONS:
        raise ValueError(f"Invalid kind {kind!r}; valid: {', '.join(FIELD_COLLECTIONS)}.")
    _check_name(name)
    _check_type(type_)
    _check_multi(type_, multi)
    checked_choices = _check_choices(type_, None if choices is None else list(choices))
    _check_description(description)
    if not isinstance(required, bool):
        raise ValueError("`required` must be a boolean.")
    collection = FIELD_COLLECTIONS[kind]
    with _request(org, "POST", collection, None, user_id or ev.ADMIN, at):
        extra: dict[str, Any] = {}
        if kind == "activity":
            if not custom_activity_type_id:
                raise ValueError("Activity custom fields need `custom_activity_type_id`.")
            if org.get(o.CUSTOM_ACTIVITY_TYPE, custom_activity_type_id) is None:
                raise ValueError(f"Unknown custom activity type {custom_activity_type_id!r}.")
            extra = {"custom_activity_type_id": custom_activity_type_id, "required": required}
        elif custom_activity_type_id is not None:
            raise ValueError("`custom_activity_type_id` only applies to activity fields.")
        if kind == "shared":
            if associations is not None and not isinstance(associations, str | dict):
                associations = list(associations)
            extra = {"associations": _associations(associations)}
        elif associations is not None:
            raise ValueError("`associations` only apply to shared fields.")
        if field_id is None:
            field_id = _new_field_id(org)
        elif any(field_id in org.collections[c] for c in FIELD_COLLECTIONS.values()):
            raise ValueError(f"Custom field {field_id} already exists.")
        user = user_id or org.admin_user_id
        stamp = _stamp(org, None, at)
        field: dict[str, Any] = {
            "id": field_id,
            "name": name,
            "description": description,
            "type": type_,
            "accepts_multiple_values": multi,
        }
        if checked_choices is not None:
            field["choices"] = checked_choices
        if kind != "lead":
            field["editable_with_roles"] = list(editable_with_roles or [])
        field.update({
            "date_created": stamp,
            "date_updated": stamp,
            "created_by": user,
            "updated_by": user,
            "organization_id": org.organization_id,
        })  # fmt: skip
        field.update(extra)
        type_before = _activity_type_data(org, custom_activity_type_id)
        org.put(collection, field)
        ev.created(org, collection, field)
        if kind == "activity":
            _touch_activity_type(org, custom_activity_type_id, at, type_before)  # type: ignore[arg-type]
        return field


def rename_field(
    org: FakeOrg,
    field_id: str,
    name: str,
    *,
    user_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Rename a definition. Values are keyed by id, so no object changes; a connector that
    keys columns by name must notice through the definition alone."""
    return update_field(org, field_id, name=name, user_id=user_id, at=at)


def delete_field(org: FakeOrg, field_id: str, *, at: datetime | None = None) -> dict[str, Any]:
    """Delete a definition; its values "immediately disappear" from every object [003:4455].
    The objects' `date_updated` is not touched (see the module docstring). Returns the
    removed definition."""
    with org.lock:
        collection, field = _definition(org, field_id)
        with _request(org, "DELETE", collection, field_id, ev.ADMIN, at):
            _delete_field(org, collection, field, at)
        return field


def _delete_field(
    org: FakeOrg, collection: str, field: dict[str, Any], at: datetime | None
) -> None:
    field_id = field["id"]
    type_before = _activity_type_data(org, field.get("custom_activity_type_id"))
    before = ev.data_of(org, collection, field)
    org.remove(collection, field_id)
    ev.deleted(org, collection, before)
    key = f"custom.{field_id}"
    for values in VALUE_COLLECTIONS:
        changed = [
            {k: v for k, v in obj.items() if k != key}
            for obj in org.collections[values].values()
            if key in obj
        ]
        if changed:
            org.put_many(values, changed)
    if field.get("custom_activity_type_id"):
        _touch_activity_type(org, field["custom_activity_type_id"], at, type_before)


_KEEP: Any = object()  # "leave as it is" for update_field's nullable arguments


def update_field(
    org: FakeOrg,
    field_id: str,
    *,
    type_: str | None = None,
    multi: bool | None = None,
    choices: Sequence[str] | None = None,
    converting: bool = False,
    name: str | None = None,
    description: str | None = _KEEP,
    required: bool | None = None,
    user_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Retype a field, switch `accepts_multiple_values`, replace `choices` (and/or rename,
    describe, flag `required` on activity fields). "Only valid values for the updated type
    will be returned" [003:4426]: existing values are converted (`convert_value`) at once,
    or, with `converting=True`, left as they are while the definition shows
    `converting_to_type` [003:4428-4430] until `finish_conversion`. Retyping to a type that
    takes one value turns `accepts_multiple_values` off unless `multi` says otherwise."""
    with org.lock:
        collection, old = _definition(org, field_id)
        with _request(org, "PUT", collection, field_id, user_id or ev.ADMIN, at):
            return _update_field(
                org, collection, old, type_, multi, choices, converting, name, description,
                required, user_id, at,
            )  # fmt: skip


def _update_field(
    org: FakeOrg,
    collection: str,
    old: dict[str, Any],
    type_: str | None,
    multi: bool | None,
    choices: Sequence[str] | None,
    converting: bool,
    name: str | None,
    description: Any,
    required: bool | None,
    user_id: str | None,
    at: datetime | None,
) -> dict[str, Any]:
    field_id = old["id"]
    new = dict(old)
    if name is not None:
        new["name"] = _check_name(name)
    if description is not _KEEP:
        new["description"] = _check_description(description)
    if required is not None:
        if "custom_activity_type_id" not in old:
            raise ValueError("`required` only applies to activity fields.")
        if not isinstance(required, bool):
            raise ValueError("`required` must be a boolean.")
        new["required"] = required
    new_type = _check_type(type_) if type_ is not None else old["type"]
    retyped = new_type != old["type"]
    if multi is None:
        multi = bool(old["accepts_multiple_values"]) and new_type in MULTI_TYPES
    new["accepts_multiple_values"] = _check_multi(new_type, multi)
    if new_type == "choices":
        new_choices = choices if choices is not None else old.get("choices")
        new["choices"] = _check_choices("choices", _list_or_none(new_choices))
    else:
        _check_choices(new_type, _list_or_none(choices))
        new.pop("choices", None)
    new["type"] = new_type
    values_change = (
        retyped
        or new["accepts_multiple_values"] != old["accepts_multiple_values"]
        or new.get("choices") != old.get("choices")
    )
    if converting:
        new.pop("converting_to_type", None)
        new["converting_to_type"] = new_type
    elif values_change:
        # Also overtakes a running conversion: convert to what the definition says now.
        # (A rename or a new description leaves a running conversion running.)
        new.pop("converting_to_type", None)
        _convert_values(org, field_id, new, retyped=retyped or "converting_to_type" in old)
    if new != old:
        before = ev.data_of(org, collection, old)
        new = _touched(org, new, at, user_id or org.admin_user_id)
        org.put(collection, new)
        ev.updated(org, collection, new, before)
    return new


def finish_conversion(org: FakeOrg, field_id: str, *, at: datetime | None = None) -> dict:
    """End a conversion started with `update_field(..., converting=True)`: convert every
    value to the definition and drop `converting_to_type`. ValueError if none is running."""
    with org.lock:
        collection, old = _definition(org, field_id)
        if "converting_to_type" not in old:
            raise ValueError(f"Custom field {field_id} is not converting.")
        # The conversion ends in the background: an event no user made directly.
        with _request(org, "PUT", collection, field_id, None, at):
            new = {k: v for k, v in old.items() if k != "converting_to_type"}
            _convert_values(org, field_id, new, retyped=True)
            before = ev.data_of(org, collection, old)
            new = _touched(org, new, at, None)
            org.put(collection, new)
            ev.updated(org, collection, new, before)
            return new


def rename_choice(
    org: FakeOrg,
    field_id: str,
    old: str,
    new: str,
    *,
    user_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Rename one choice of a `choices` field, in the definition and in every value (scalar
    or inside lists), as editing a choice in Close's UI does. Returns the definition."""
    with org.lock:
        collection, field = _definition(org, field_id)
        if field["type"] != "choices":
            raise ValueError(f"Custom field {field_id} is not a 'choices' field.")
        choices = list(field.get("choices") or [])
        if old not in choices:
            raise ValueError(f"{old!r} is not a choice of {field_id}.")
        if not isinstance(new, str) or not new:
            raise ValueError("A choice must be a non-empty string.")
        if new != old and new in choices:
            raise ValueError(f"{new!r} is already a choice of {field_id}.")
        key = f"custom.{field_id}"

        def renamed(value: Any) -> Any:
            if isinstance(value, list):
                return [new if v == old else v for v in value]
            return new if value == old else value

        with _request(org, "PUT", collection, field_id, user_id or ev.ADMIN, at):
            for values in VALUE_COLLECTIONS:
                changed = [
                    {**obj, key: renamed(obj[key])}
                    for obj in org.collections[values].values()
                    if key in obj and renamed(obj[key]) != obj[key]
                ]
                if changed:
                    org.put_many(values, changed)
            before = ev.data_of(org, collection, field)
            out = _touched(
                org,
                {**field, "choices": [new if c == old else c for c in choices]},
                at,
                user_id or org.admin_user_id,
            )
            org.put(collection, out)
            ev.updated(org, collection, out, before)
            return out


# -- values --------------------------------------------------------------------------------------


def set_custom(
    org: FakeOrg,
    collection: str,
    object_id: str,
    field_id: str,
    value: Any,
    *,
    user_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Set one custom value on one object, as an edit through the API would: the object's
    `date_updated` moves (and `updated_by` with `user_id`). `None`, `""` and `[]` clear the
    value: the key is removed, since Close omits empty fields [003:204]. Values are stored
    as given (no type check), so tests can plant odd ones. Returns the new object."""
    with org.lock:
        field_coll, field = _definition(org, field_id)
        obj = org.get(collection, object_id) if collection in VALUE_COLLECTIONS else None
        if obj is None:
            raise KeyError(f"Object {object_id} not found in {collection!r}.")
        _check_applies(field_coll, field, collection, obj)
        key = f"custom.{field_id}"
        path = ev.api_path(collection, obj, True)
        with ev.request(org, "PUT", path, user_id=user_id or ev.ADMIN, at=at):
            before = ev.data_of(org, collection, obj)
            out = {k: v for k, v in obj.items() if k != key}
            if value is not None and value != "" and value != []:
                out[key] = list(value) if isinstance(value, list | tuple) else value
            out = _touched(org, out, at, user_id)
            org.put(collection, out)
            ev.updated(org, collection, out, before)
            return out


def check_applies(org: FakeOrg, field_id: str, collection: str, obj: dict[str, Any]) -> None:
    """ValueError unless the field exists and takes values on `obj` of `collection`."""
    try:
        field_coll, field = _definition(org, field_id)
    except KeyError:
        raise ValueError(f"Unknown custom field {field_id}.") from None
    _check_applies(field_coll, field, collection, obj)


_OWN_VALUES = {
    o.CUSTOM_FIELD_LEAD: o.LEAD,
    o.CUSTOM_FIELD_CONTACT: o.CONTACT,
    o.CUSTOM_FIELD_OPPORTUNITY: o.OPPORTUNITY,
}


def _check_applies(
    field_coll: str, field: dict[str, Any], collection: str, obj: dict[str, Any]
) -> None:
    """A field only takes values on the objects it belongs to."""
    if field_coll == o.CUSTOM_FIELD_SHARED:
        ok = collection in {SHARED_OBJECT_TYPES[a["object_type"]] for a in field["associations"]}
    elif field_coll == o.CUSTOM_FIELD_ACTIVITY:
        ok = collection == o.ACTIVITY and (
            obj.get("custom_activity_type_id") == field["custom_activity_type_id"]
        )
    else:
        ok = _OWN_VALUES[field_coll] == collection
    if not ok:
        raise ValueError(f"Custom field {field['id']} does not apply to {obj['id']}.")


def _list_or_none(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


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
    former members ... and always returns IDs" [003:4283-4285]; anything else goes."""
    if not isinstance(value, str):
        return _DROP
    if org.get(o.USER, value) is not None:
        return value
    for user in org.all(o.USER):
        if org.user_name(user["id"]) == value:
            return user["id"]
    return _DROP
