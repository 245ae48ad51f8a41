"""Custom values on objects: `set_custom` (an edit of one object) and where a field applies.

A value is stored as given (tests plant odd ones); `None`, `""` and `[]` clear it. A field
takes values only on the objects it belongs to (`check_applies`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import events as ev
from .. import org as o
from ..org import FakeOrg
from .schema import SHARED_OBJECT_TYPES, VALUE_COLLECTIONS, _definition
from .stamps import _touched


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
    value: the key is removed, since Close omits empty fields (Close API: Leads). Values are stored
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
