"""Changes of custom field definitions: add, rename, retype, delete, finish conversions, choices.

Values follow the definition (deleted with it, converted when it is retyped, renamed with a
choice) without touching the objects' `date_updated` and without events of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .. import events as ev
from .. import org as o
from ..org import FakeOrg
from .conversion import _convert_values
from .schema import (
    FIELD_COLLECTIONS,
    MULTI_TYPES,
    VALUE_COLLECTIONS,
    _associations,
    _check_choices,
    _check_description,
    _check_multi,
    _check_name,
    _check_type,
    _definition,
    _new_field_id,
)
from .stamps import _activity_type_data, _request, _stamp, _touch_activity_type, _touched


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
    """Create a definition shaped like the generated ones (`generate.custom_fields`), so a test
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
    """Delete a definition; its values "immediately disappear" from every object (Close API: Custom
    Fields). The objects' `date_updated` is not touched (see the package docstring). Returns the
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
    describe, flag `required` on activity fields). "Only valid values for the updated type will be
    returned" (Close API: Custom Fields): existing values are converted (`convert_value`) at once,
    or, with `converting=True`, left as they are while the definition shows `converting_to_type`
    until `finish_conversion`. Retyping to a type that takes one value turns
    `accepts_multiple_values` off unless `multi` says otherwise."""
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


def _list_or_none(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
