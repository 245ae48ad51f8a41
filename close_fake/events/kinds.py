"""What the Event Log calls things: object types per collection, spellings, API paths, `data`.

The vocabulary shared by writing (`record.py`) and reading (`reader.py`): which stored
objects have events and under which `object_type`, the docs' other spellings, the API path
a change goes to (`meta.request_path`), and an object's `data` "as if you fetched it via
API".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import org as o
from .. import views as v
from ..org import FakeOrg

# `object_type` per activity `_type`, as the list of events spells them (Close API: Event
# Log, List of events). Created activities have no documented events.
ACTIVITY_OBJECT_TYPES: dict[str, str] = {
    "Note": "activity.note",
    "Email": "activity.email",
    "EmailThread": "activity.email_thread",
    "Call": "activity.call",
    "SMS": "activity.sms",
    "Meeting": "activity.meeting",
    "LeadStatusChange": "activity.lead_status_change",
    "OpportunityStatusChange": "activity.opportunity_status_change",
    "TaskCompleted": "activity.task_completed",
    "CustomActivity": "activity.custom_activity",
}
# `object_type` per collection (tasks: `task.<_type>`, activities: above). Collections not
# listed (users, roles, pipelines, templates for SMS, connected accounts, ...) have no
# documented events (Close API: Event Log, List of events).
COLLECTION_OBJECT_TYPES: dict[str, str] = {
    o.LEAD: "lead",
    o.CONTACT: "contact",
    o.OPPORTUNITY: "opportunity",
    o.LEAD_STATUS: "status.lead",
    o.OPPORTUNITY_STATUS: "status.opportunity",
    o.CUSTOM_FIELD_LEAD: "custom_fields.lead",
    o.CUSTOM_FIELD_CONTACT: "custom_fields.contact",
    o.CUSTOM_FIELD_ACTIVITY: "custom_fields.activity",
    o.CUSTOM_FIELD_OPPORTUNITY: "custom_fields.opportunity",
    o.CUSTOM_FIELD_SHARED: "custom_fields.shared",
    o.CUSTOM_ACTIVITY_TYPE: "custom_activity_type",
    o.EMAIL_TEMPLATE: "email_template",
    o.SEQUENCE: "sequence",
    o.SEQUENCE_SUBSCRIPTION: "sequence_subscription",
    o.SAVED_SEARCH: "saved_search",
    o.PHONE_NUMBER: "phone_number",
    o.GROUP: "group",
}
# Not in the documented list: served only with `EventSettings(undocumented=True)`.
UNDOCUMENTED_OBJECT_TYPES = frozenset({"custom_fields.opportunity", "custom_fields.shared"})
# Object types whose deletion the docs list no event for (Close API: Event Log, List of events).
NO_DELETE_EVENT = frozenset({"saved_search"})

# Other spellings the docs use: the single-event sample's `"object_type": "note"` (Retrieve a
# single event by ID), Event format's `status_change.opportunity`, and `lead.task` in the
# task-completed text of the List of events (Close API: Event Log).
# `EventSettings(object_types=SAMPLE_SPELLINGS)` serves them.
SAMPLE_SPELLINGS: dict[str, str] = {
    **{t: t.removeprefix("activity.") for t in ACTIVITY_OBJECT_TYPES.values()},
    "activity.lead_status_change": "status_change.lead",
    "activity.opportunity_status_change": "status_change.opportunity",
    **{f"task.{t}": f"{t}.task" for t in o.TASK_TYPES},
}

# Keys of a lead's data that do not make a `lead.updated` (changes of existing contacts,
# opportunities and tasks do not trigger it: Close API: Event Log, List of events); `contact_ids`
# does.
_LEAD_NESTED = frozenset({"contacts", "opportunities", "tasks"})
# Bookkeeping keys: a change of these alone is no event (unless forced).
AUDIT_KEYS = frozenset({"date_updated", "updated_by", "updated_by_name", "updated_by_id"})


# API path segment of each activity `_type`, and of collections not named like their path
# (`meta.request_path` of changes).
ACTIVITY_SEGMENTS: dict[str, str] = {
    "Note": "note", "Email": "email", "EmailThread": "emailthread", "Call": "call",
    "SMS": "sms", "Meeting": "meeting", "LeadStatusChange": "status_change/lead",
    "OpportunityStatusChange": "status_change/opportunity", "TaskCompleted": "task_completed",
    "Created": "created", "CustomActivity": "custom",
}  # fmt: skip
_SEGMENTS: dict[str, str] = {
    o.LEAD_STATUS: "status/lead",
    o.OPPORTUNITY_STATUS: "status/opportunity",
    o.CUSTOM_ACTIVITY_TYPE: "custom_activity",
}


def api_path(collection: str, obj: Mapping[str, Any], with_id: bool) -> str:
    """The API path a change of the object goes to, e.g. `/api/v1/activity/note/acti_…/`."""
    if collection == o.ACTIVITY:
        segment = "activity/" + ACTIVITY_SEGMENTS.get(obj.get("_type", ""), "")
    elif collection.startswith("custom_field."):
        segment = collection.replace(".", "/")
    else:
        segment = _SEGMENTS.get(collection, collection)
    path = f"/api/v1/{segment}/"
    return f"{path}{obj['id']}/" if with_id else path


def object_type(collection: str, obj: Mapping[str, Any]) -> str | None:
    """The event `object_type` of a stored object, or None if it has no events."""
    if collection == o.ACTIVITY:
        return ACTIVITY_OBJECT_TYPES.get(obj.get("_type", ""))
    if collection == o.TASK:
        return f"task.{obj.get('_type', 'lead')}"
    return COLLECTION_OBJECT_TYPES.get(collection)


def data_of(org: FakeOrg, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object "as if you fetched it via API" (Close API: Event Log, Event format): the
    single-object endpoint's shape (a lead with nested contacts/opportunities/tasks, a contact with
    `lead_id`, a thread with its emails, a custom activity type with `fields`...)."""
    if collection == o.LEAD:
        return v.render_lead(org, obj)
    if collection == o.CONTACT:
        return v.render_contact(org, obj)
    if collection == o.ACTIVITY:
        return v.render_activity(org, obj)
    if collection == o.CUSTOM_ACTIVITY_TYPE:
        return v.render_custom_activity_type(org, obj)
    if collection == o.EMAIL_TEMPLATE:
        return v.render_email_template(org, obj, single=True)
    if collection == o.SEQUENCE:
        return v.render_sequence(org, obj, single=True)
    if collection == o.GROUP:
        return v.render_group(obj, frozenset({"name", "organization_id", "members"}), single=True)
    return obj
