"""What a change of one object does to related ones: its lead touched, its email thread updated.

A lead changes through its children (`contact_ids`, a completed task: `lead.updated`; with
`touch_lead`, any child moves its `date_updated` silently); an email's change updates its thread,
or deletes it with its last email (Close API: Event Log, List of events).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import events as ev
from .. import org as o
from ..org import FakeOrg
from .objects import _audited


def _lead_data(org: FakeOrg, obj: Mapping[str, Any]) -> dict[str, Any] | None:
    lead = org.get(o.LEAD, obj.get("lead_id") or "")
    return ev.data_of(org, o.LEAD, lead) if lead else None


def _touch_lead(
    org: FakeOrg, lead_id: str, before: dict[str, Any], rq: ev.ChangeRequest, force: bool = False
) -> None:
    """The lead changed through a child (`contact_ids`, a completed task): new
    `date_updated`, and `lead.updated` when its data changed (or `force`)."""
    lead = org.get(o.LEAD, lead_id)
    if lead is None:
        return
    new = _audited(org, o.LEAD, lead, rq)
    org.put(o.LEAD, new)
    ev.updated(org, o.LEAD, new, before, force=force)


def _child_touched(org: FakeOrg, lead_id: str | None, rq: ev.ChangeRequest) -> None:
    """With `touch_lead`, a change of an opportunity, task or activity moves the lead's
    `date_updated`, silently (Close API: Event Log, List of events)."""
    if not lead_id or not ev.log_of(org).touch_lead:
        return
    lead = org.get(o.LEAD, lead_id)
    if lead is not None:
        org.put(o.LEAD, _audited(org, o.LEAD, lead, rq))


def _data_by_id(org: FakeOrg, collection: str, object_id: str | None) -> dict[str, Any] | None:
    obj = org.get(collection, object_id) if object_id else None
    return ev.data_of(org, collection, obj) if obj is not None else None


def _thread_changed(org: FakeOrg, thread_id: str, before: dict[str, Any]) -> None:
    """An email of the thread changed: `activity.email_thread.updated` ("emails,
    n_emails, latest_normalized_subject, participants"), or `deleted` when it lost its last
    email (Close API: Event Log, List of events)."""
    thread = org.get(o.ACTIVITY, thread_id)
    if thread is None:
        return
    if not org.children(o.ACTIVITY, "thread_id", thread_id):
        org.remove(o.ACTIVITY, thread_id)
        ev.deleted(org, o.ACTIVITY, before)
    else:
        ev.updated(org, o.ACTIVITY, thread, before)
