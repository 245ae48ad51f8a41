"""`delete`: an object with what depends on it, each with its `deleted` event.

A lead takes its activities, tasks, opportunities and contacts (with their subscriptions)
along; a contact its subscriptions; a thread its emails (Close API: Event Log, List of events).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .. import events as ev
from .. import org as o
from ..org import FakeOrg
from .objects import ADMIN, _object_request, _stored
from .touches import _child_touched, _data_by_id, _lead_data, _thread_changed, _touch_lead

_CHILDREN = (o.ACTIVITY, o.TASK, o.OPPORTUNITY, o.CONTACT)  # a lead's, in deletion order


def delete(
    org: FakeOrg,
    collection: str,
    object_id: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Delete one object with its dependants and emit the events. Returns the removed
    object."""
    if collection.startswith("custom_field."):
        raise ValueError("Delete custom fields with mutations.delete_field().")
    obj = _stored(org, collection, object_id)
    if collection in (o.LEAD_STATUS, o.OPPORTUNITY_STATUS):
        users = o.LEAD if collection == o.LEAD_STATUS else o.OPPORTUNITY
        if org.children(users, "status_id", object_id):
            raise ValueError(f"Status {object_id} is in use.")
    with _object_request(org, "DELETE", collection, obj, user_id, api_key_id, at) as rq:
        obj = org.get(collection, object_id) or obj
        if collection == o.LEAD:
            _delete_lead(org, obj)
            return obj
        lead_before = _lead_data(org, obj) if collection == o.CONTACT else None
        thread_id = obj.get("thread_id") if collection == o.ACTIVITY else None
        thread_before = _data_by_id(org, o.ACTIVITY, thread_id)
        doomed: list[tuple[str, dict[str, Any]]] = []
        if collection == o.ACTIVITY and obj["_type"] == "EmailThread":
            # Deleting a thread deletes its emails (Close API: Activities, Email Threads).
            doomed += [(o.ACTIVITY, e) for e in org.children(o.ACTIVITY, "thread_id", object_id)]
        if collection == o.CONTACT:
            subs = org.children(o.SEQUENCE_SUBSCRIPTION, "contact_id", object_id)
            doomed += [(o.SEQUENCE_SUBSCRIPTION, s) for s in subs]
        doomed.append((collection, obj))
        _remove_all(org, doomed)
        if lead_before is not None:
            _touch_lead(org, obj["lead_id"], lead_before, rq)
        if collection in (o.OPPORTUNITY, o.TASK, o.ACTIVITY):
            _child_touched(org, obj.get("lead_id"), rq)
        if thread_before is not None and thread_id is not None:
            _thread_changed(org, thread_id, thread_before)
        return obj


def _remove_all(org: FakeOrg, doomed: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Remove objects, each with a `deleted` event; their data is taken before any goes."""
    doomed = list(doomed)
    befores = [(coll, ev.data_of(org, coll, obj)) for coll, obj in doomed]
    for (coll, obj), (_, before) in zip(doomed, befores, strict=True):
        org.remove(coll, obj["id"])
        ev.deleted(org, coll, before)


def _delete_lead(org: FakeOrg, lead: dict[str, Any]) -> None:
    """A lead and everything under it: activities (threads after their emails), tasks,
    opportunities, contacts with their subscriptions, then the lead."""
    lead_id = lead["id"]
    doomed: list[tuple[str, dict[str, Any]]] = []
    for coll in _CHILDREN:
        children = list(org.children(coll, "lead_id", lead_id))
        if coll == o.ACTIVITY:
            children.sort(key=lambda a: a["_type"] == "EmailThread")
        if coll == o.CONTACT:
            for contact in children:
                subs = org.children(o.SEQUENCE_SUBSCRIPTION, "contact_id", contact["id"])
                doomed += [(o.SEQUENCE_SUBSCRIPTION, s) for s in subs]
        doomed += [(coll, x) for x in children]
    doomed.append((o.LEAD, lead))
    _remove_all(org, doomed)
