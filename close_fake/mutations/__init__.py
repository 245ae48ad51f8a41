"""Custom-field mutation hooks: change definitions and values of a running fake organisation.

Tests of the connector sync, change custom fields the way an admin would (add, rename,
retype, delete a field; rename a choice; set or clear one value), and sync again. The HTTP
routes `POST/PUT/DELETE /custom_field/{kind}/...` call these functions too.

Rules, all from the `FakeOrg` contract:
- Stored objects are never edited in place: a changed object is a new dict given to
  `org.put(...)` / `org.put_many(...)`. Export snapshots share the old objects, so an
  export created before a mutation does not see it.
- `org.lock` is held across every multi-object change, so a request never sees half of one.
- Changed definitions get a new `date_updated` (and `updated_by`). Values changed *because a
  definition changed* (delete, retype, choice rename) do not touch the objects' `date_updated`: the
  docs say definition changes "do not modify existing activities ... or trigger updated events"
  (Close API: Event Log, List of events), our reading for leads, contacts and opportunities too.
  `set_custom`, an edit of one object, does bump it.

Events (`close_fake.events`): each function runs as one request and logs what Close lists (Close
API: Event Log, List of events): `custom_fields.<kind>` created / updated / deleted (opportunity
and shared fields too, served only with `EventSettings(undocumented=True)`), `custom_activity_type`
updated when an activity field is added or deleted, and `set_custom` the object's `updated` event.
Values changed by a definition change emit nothing.

Invalid input raises `ValueError` (HTTP 400), unknown ids `KeyError` (HTTP 404).

Modules: `schema.py` (kinds, types, checks), `stamps.py` (requests and `date_updated`),
`definitions.py` (the definition changes), `values.py` (`set_custom`, where a field
applies), `conversion.py` (values of a retyped field). This package is the namespace
callers use: `from close_fake import mutations as m`.
"""

from .conversion import convert_value
from .definitions import (
    add_field,
    delete_field,
    finish_conversion,
    rename_choice,
    rename_field,
    update_field,
)
from .schema import (
    DESCRIPTION_MAX,
    FIELD_COLLECTIONS,
    FIELD_TYPES,
    MULTI_TYPES,
    SHARED_OBJECT_TYPES,
    VALUE_COLLECTIONS,
    field_collection,
)
from .values import check_applies, set_custom

__all__ = [
    "DESCRIPTION_MAX",
    "FIELD_COLLECTIONS",
    "FIELD_TYPES",
    "MULTI_TYPES",
    "SHARED_OBJECT_TYPES",
    "VALUE_COLLECTIONS",
    "add_field",
    "check_applies",
    "convert_value",
    "delete_field",
    "field_collection",
    "finish_conversion",
    "rename_choice",
    "rename_field",
    "set_custom",
    "update_field",
]
