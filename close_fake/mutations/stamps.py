"""How a custom field mutation is logged and stamped: its request, `date_updated`, touched types.

Each mutation runs as one Event Log request on its `/custom_field/{kind}/...` path; changed
objects get a new `date_updated` (and `updated_by`); adding or deleting an activity field
also updates its custom activity type (Close API: Event Log, List of events).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import events as ev
from .. import org as o
from ..org import FakeOrg
from .schema import _kind_of


def _stamp(org: FakeOrg, previous: str | None, at: datetime | None) -> str:
    """A new `date_updated` in the previous value's format (aware `+00:00` or naive).

    Without `at`: the request's time (the organisation's clock), or 1 ms after the previous
    value if that is not earlier, so repeated mutations of one object always move its
    `date_updated` forward."""
    return ev.stamp(org, previous, at)


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
    """Adding or deleting an activity field updates its custom activity type (Close API: Event Log,
    List of events; `before`: the type's data before the field changed)."""
    type_ = org.get(o.CUSTOM_ACTIVITY_TYPE, type_id)
    if type_ is not None:
        new = _touched(org, type_, at, None)
        org.put(o.CUSTOM_ACTIVITY_TYPE, new)
        if before is not None:
            ev.updated(org, o.CUSTOM_ACTIVITY_TYPE, new, before, force=True)
