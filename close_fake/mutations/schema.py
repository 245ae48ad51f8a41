"""What a custom field may be: kinds, types, where values live, and the checks of a definition.

Lookups (`field_collection`: which `custom_field.*` collection holds an id), the validation
of names, types, `accepts_multiple_values`, choices, descriptions and shared fields'
associations, and fresh deterministic `cf_` ids.
"""

from __future__ import annotations

import random
from typing import Any

from .. import org as o
from ..common import make_id
from ..org import FakeOrg

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
# The documented types (Close API: Custom Fields) plus `textarea` and `contact`, which live Close
# has and the connector must handle.
FIELD_TYPES: tuple[str, ...] = (
    "text", "textarea", "number", "date", "datetime", "choices", "user", "contact", "hidden",
)  # fmt: skip
# "Multiple values are currently only supported for the user and choices type"
# (Close API: Custom Fields); live Close allows them for contact fields too.
MULTI_TYPES = frozenset({"choices", "user", "contact"})
DESCRIPTION_MAX = 280  # Close API: Custom Fields


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


def _kind_of(collection: str) -> str:
    return next(k for k, c in FIELD_COLLECTIONS.items() if c == collection)


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
