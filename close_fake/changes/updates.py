"""`update`: changed fields of one object, its `updated` event and the actions that follow.

Status changes make (or rewrite, or undo) status-change activities, completing a task makes
a TaskCompleted activity, email/SMS/meeting statuses have their own actions, copied names
follow (`labels.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .. import events as ev
from .. import org as o
from ..common import format_money
from ..org import FakeOrg
from .labels import _follow_labels
from .objects import (
    _ASSEMBLED,
    _FIXED,
    ADMIN,
    _audited,
    _check_refs,
    _derive,
    _new,
    _object_request,
    _stored,
)
from .touches import _child_touched, _data_by_id, _lead_data, _thread_changed, _touch_lead

# Meeting statuses with their own action (Close API: Event Log, List of events).
_MEETING_ACTIONS = {
    "upcoming": "scheduled",
    "in-progress": "started",
    "completed": "completed",
    "canceled": "canceled",
}


def _fields_of(fields: Mapping[str, Any] | None, more: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(fields or {})
    out.update(more)
    return out


def update(
    org: FakeOrg,
    collection: str,
    object_id: str,
    fields: Mapping[str, Any] | None = None,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
    **more: Any,
) -> dict[str, Any]:
    """Change fields of one object (`fields` and/or keywords; `custom.<id>` keys set a
    custom value, None / "" / [] clear it) and emit the events. Returns the stored
    object."""
    if collection.startswith("custom_field."):
        raise ValueError("Change custom fields with mutations.update_field().")
    changes = _fields_of(fields, more)
    bad = (_FIXED | (_ASSEMBLED if collection == o.LEAD else frozenset())) & set(changes)
    if bad:
        raise ValueError(f"Cannot change {', '.join(sorted(bad))}.")
    obj = _stored(org, collection, object_id)
    with _object_request(org, "PUT", collection, obj, user_id, api_key_id, at) as rq:
        obj = org.get(collection, object_id) or obj
        new = dict(obj)
        for key, val in changes.items():
            if key.startswith("custom.") and (val is None or val == "" or val == []):
                new.pop(key, None)
            else:
                new[key] = list(val) if isinstance(val, tuple) else val
        _check_refs(org, collection, new, obj)
        new = _derive(org, collection, new, obj, rq, frozenset(changes))
        if new == obj:
            return obj
        _save(org, collection, obj, new, rq)
        return org.get(collection, object_id) or new


def _save(
    org: FakeOrg,
    collection: str,
    old: dict[str, Any],
    new: dict[str, Any],
    rq: ev.ChangeRequest,
) -> None:
    """Store a changed object with its side effects and events."""
    new = _audited(org, collection, new, rq)
    before = ev.data_of(org, collection, old)
    moved = collection in (o.CONTACT, o.OPPORTUNITY, o.TASK, o.ACTIVITY) and (
        old.get("lead_id") != new.get("lead_id")
    )
    leads_before: dict[str, dict[str, Any]] = {}
    if collection == o.CONTACT and moved:
        for lead_id in (old.get("lead_id"), new.get("lead_id")):
            data = _lead_data(org, {"lead_id": lead_id})
            if data is not None:
                leads_before[lead_id] = data
    thread_id = (old.get("thread_id") or new.get("thread_id")) if collection == o.ACTIVITY else None
    thread_before = _data_by_id(org, o.ACTIVITY, thread_id)
    org.put(collection, new)
    _follow_labels(org, collection, old, new)
    ev.updated(org, collection, new, before)
    _actions(org, collection, old, new, rq)
    for lead_id, data in leads_before.items():
        _touch_lead(org, lead_id, data, rq)
    if collection in (o.OPPORTUNITY, o.TASK, o.ACTIVITY):
        _child_touched(org, new.get("lead_id"), rq)
    if thread_before is not None:
        _thread_changed(org, thread_id, thread_before)  # type: ignore[arg-type]


def _actions(
    org: FakeOrg, collection: str, old: dict[str, Any], new: dict[str, Any], rq: ev.ChangeRequest
) -> None:
    """The side effects and extra actions of an update."""
    if collection == o.LEAD and old.get("status_id") != new.get("status_id"):
        _status_change(org, "LeadStatusChange", new, old, rq)
    elif collection == o.OPPORTUNITY and old.get("status_id") != new.get("status_id"):
        _status_change(org, "OpportunityStatusChange", new, old, rq)
    elif collection == o.TASK and bool(old.get("is_complete")) != bool(new.get("is_complete")):
        _task_completion(org, new, rq)
    elif collection == o.ACTIVITY and old.get("status") != new.get("status"):
        status = new.get("status")
        if new["_type"] in ("Email", "SMS") and status == "sent":
            ev.action(org, o.ACTIVITY, new, "sent")
        elif new["_type"] == "Meeting" and status in _MEETING_ACTIONS:
            ev.action(org, o.ACTIVITY, new, _MEETING_ACTIONS[status])


def _status_change(
    org: FakeOrg, type_: str, obj: dict[str, Any], old: dict[str, Any], rq: ev.ChangeRequest
) -> None:
    """The status-change activity of a lead/opportunity status change. A change by the
    same user within the consolidation window rewrites the latest one's `new_status_*`
    (`updated`), or deletes it when it goes back to its `old_status_id` (`deleted`)
    (Close API: Event Log, List of events)."""
    lead_id = obj["id"] if type_ == "LeadStatusChange" else obj["lead_id"]
    window = ev.log_of(org).consolidation_window
    recent = None
    if window is not None:
        candidates = [
            a
            for a in org.children(o.ACTIVITY, "lead_id", lead_id)
            if a["_type"] == type_
            and a.get("user_id") == rq.user_id
            and (type_ == "LeadStatusChange" or a.get("opportunity_id") == obj["id"])
            and ev.now(org) - datetime.fromisoformat(a["date_created"]) <= window
        ]
        recent = max(candidates, key=lambda a: (a["date_created"], a["id"]), default=None)
    status_coll = o.LEAD_STATUS if type_ == "LeadStatusChange" else o.OPPORTUNITY_STATUS
    new_status = org.get(status_coll, obj["status_id"]) or {}
    fields = {"new_status_id": new_status.get("id"), "new_status_label": new_status.get("label")}
    if type_ == "OpportunityStatusChange":
        fields.update({
            "new_status_type": new_status.get("type"),
            "new_pipeline_id": new_status.get("pipeline_id"),
            "opportunity_date_won": obj.get("date_won"),
            "opportunity_value": obj.get("value"),
            "opportunity_value_formatted": format_money(obj["value"]) if obj.get("value") else None,
            "opportunity_value_currency": obj.get("value_currency"),
        })  # fmt: skip
    if recent is not None:
        if recent.get("old_status_id") == obj["status_id"]:
            before = ev.data_of(org, o.ACTIVITY, recent)
            org.remove(o.ACTIVITY, recent["id"])
            ev.deleted(org, o.ACTIVITY, before)
        else:
            before = ev.data_of(org, o.ACTIVITY, recent)
            changed = _audited(org, o.ACTIVITY, {**recent, **fields}, rq)
            org.put(o.ACTIVITY, changed)
            ev.updated(org, o.ACTIVITY, changed, before)
        return
    old_status = org.get(status_coll, old.get("status_id") or "") or {}
    act: dict[str, Any] = {
        "_type": type_, "lead_id": lead_id,
        "old_status_id": old_status.get("id"), "old_status_label": old_status.get("label"),
    }  # fmt: skip
    if type_ == "OpportunityStatusChange":
        act.update({
            "opportunity_id": obj["id"], "old_status_type": old_status.get("type"),
            "old_pipeline_id": old_status.get("pipeline_id"),
        })  # fmt: skip
    act.update(fields)
    new = _new(org, o.ACTIVITY, act, rq)
    org.put(o.ACTIVITY, new)
    ev.created(org, o.ACTIVITY, new)


def _task_completion(org: FakeOrg, task: dict[str, Any], rq: ev.ChangeRequest) -> None:
    """Completing: `completed` on the task; for `lead` tasks a TaskCompleted activity and
    `lead.updated`. Un-completing a `lead` task deletes its TaskCompleted activity and
    updates the lead (Close API: Event Log, List of events)."""
    done = bool(task.get("is_complete"))
    if done:
        ev.action(org, o.TASK, task, "completed")
    if task["_type"] != "lead" or not task.get("lead_id"):
        return
    lead_before = _lead_data(org, task)
    if done:
        act = _new(
            org,
            o.ACTIVITY,
            {"_type": "TaskCompleted", "lead_id": task["lead_id"], "task_id": task["id"],
             "task_text": task.get("text", "")},
            rq,
        )  # fmt: skip
        org.put(o.ACTIVITY, act)
        ev.created(org, o.ACTIVITY, act)
    else:
        acts = [
            a
            for a in org.children(o.ACTIVITY, "lead_id", task["lead_id"])
            if a["_type"] == "TaskCompleted" and a.get("task_id") == task["id"]
        ]
        for act in acts:
            before = ev.data_of(org, o.ACTIVITY, act)
            org.remove(o.ACTIVITY, act["id"])
            ev.deleted(org, o.ACTIVITY, before)
    if lead_before is not None:
        _touch_lead(org, task["lead_id"], lead_before, rq, force=True)
