"""`create`: a new object completed as the API would, with its `created` events.

A lead may carry `contacts` (created with it) and gets a `Created` activity (no events); a
contact updates its lead, an email its thread, an upcoming meeting is `scheduled`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .. import events as ev
from .. import org as o
from ..common import LONG_ID
from ..org import FakeOrg
from .objects import _ASSEMBLED, ADMIN, _new, _user_name
from .touches import _child_touched, _data_by_id, _lead_data, _thread_changed, _touch_lead


def create(
    org: FakeOrg,
    collection: str,
    obj: Mapping[str, Any],
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Create an object (missing fields filled in as the API would: id, dates, audit
    fields, labels, formatted values) and emit its events. A lead may carry `contacts`
    (created with it). Returns the stored object."""
    if collection.startswith("custom_field."):
        raise ValueError("Create custom fields with mutations.add_field().")
    if collection not in o.COLLECTIONS:
        raise ValueError(f"Unknown collection {collection!r}.")
    body = dict(obj)
    nested = body.pop("contacts", None) if collection == o.LEAD else None
    if collection == o.LEAD and _ASSEMBLED & set(body):
        raise ValueError("A new lead takes `contacts`; create its other children on their own.")
    with ev.request(
        org,
        "POST",
        ev.api_path(collection, body, False),
        user_id=user_id,
        api_key_id=api_key_id,
        at=at,
    ) as rq:
        new = _new(org, collection, body, rq)
        lead_before = _lead_data(org, new) if collection == o.CONTACT else None
        thread_id = new.get("thread_id") if collection == o.ACTIVITY else None
        thread_before = _data_by_id(org, o.ACTIVITY, thread_id)
        org.put(collection, new)
        # A lead's nested contacts are created with it: its `created` data shows them.
        contacts = [_new(org, o.CONTACT, {**x, "lead_id": new["id"]}, rq) for x in nested or []]
        if contacts:
            org.put_many(o.CONTACT, contacts)
        ev.created(org, collection, new)
        for contact in contacts:
            ev.created(org, o.CONTACT, contact)
        _after_create(org, collection, new, rq, lead_before)
        if thread_id is not None and thread_before is not None:
            _thread_changed(org, thread_id, thread_before)
        return org.get(collection, new["id"]) or new


def _after_create(
    org: FakeOrg,
    collection: str,
    new: dict[str, Any],
    rq: ev.ChangeRequest,
    lead_before: dict[str, Any] | None,
) -> None:
    log = ev.log_of(org)
    if collection == o.LEAD and log.created_activity:
        act = {
            "id": ev.new_id(org, "acti", LONG_ID, o.ACTIVITY), "_type": "Created",
            "organization_id": org.organization_id, "lead_id": new["id"], "contact_id": None,
            "user_id": rq.user_id, "user_name": _user_name(org, rq.user_id), "users": [],
            "created_by": rq.user_id, "created_by_name": _user_name(org, rq.user_id),
            "updated_by": rq.user_id, "updated_by_name": _user_name(org, rq.user_id),
            "date_created": new["date_created"], "date_updated": new["date_created"],
            "source": "api" if rq.api_key_id else "ui", "import_id": None,
        }  # fmt: skip
        org.put(o.ACTIVITY, act)  # no documented event type
    if collection == o.CONTACT and lead_before is not None:
        _touch_lead(org, new["lead_id"], lead_before, rq)
    elif collection in (o.OPPORTUNITY, o.TASK, o.ACTIVITY):
        _child_touched(org, new.get("lead_id"), rq)
    if collection == o.ACTIVITY and new["_type"] == "Meeting" and new.get("status") == "upcoming":
        ev.action(org, o.ACTIVITY, new, "scheduled")
