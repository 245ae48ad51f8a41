"""What each table must hold, read straight from the fake organisation's store.

This is the tests' independent oracle: it maps warehouse tables to the fake's collections
without going through the catalog or the connector.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from close_fake import FakeOrg
from close_fake import org as o
from close_source.timestamps import to_utc

COLLECTION_OF: dict[str, str] = {
    "leads": o.LEAD, "contacts": o.CONTACT, "opportunities": o.OPPORTUNITY, "tasks": o.TASK,
    "users": o.USER, "roles": o.ROLE, "groups": o.GROUP, "lead_statuses": o.LEAD_STATUS,
    "opportunity_statuses": o.OPPORTUNITY_STATUS, "pipelines": o.PIPELINE,
    "custom_activity_types": o.CUSTOM_ACTIVITY_TYPE, "email_templates": o.EMAIL_TEMPLATE,
    "sms_templates": o.SMS_TEMPLATE, "sequences": o.SEQUENCE,
    "sequence_subscriptions": o.SEQUENCE_SUBSCRIPTION, "smart_views": o.SAVED_SEARCH,
    "connected_accounts": o.CONNECTED_ACCOUNT, "phone_numbers": o.PHONE_NUMBER,
    "integration_links": o.INTEGRATION_LINK, "dialer_sessions": o.DIALER,
    "webhook_subscriptions": o.WEBHOOK,
}
ACTIVITY_TYPE_OF: dict[str, str] = {
    "calls": "Call", "emails": "Email", "email_threads": "EmailThread", "notes": "Note",
    "meetings": "Meeting", "sms": "SMS", "lead_status_changes": "LeadStatusChange",
    "opportunity_status_changes": "OpportunityStatusChange", "task_completions": "TaskCompleted",
    "created_activities": "Created", "custom_activities": "CustomActivity",
}
# Stored fields the list views do not show, by the docs: `last_used_timezone` only on /me/
# (Close API: Users); the organisation's memberships carry no organization_id
# (Close API: Organizations).
NOT_LISTED: dict[str, set[str]] = {
    "users": {"last_used_timezone"},
    "memberships": {"organization_id"},
}
CUSTOM_FIELD_OBJECT_TYPES = ("lead", "contact", "opportunity", "activity")
TABLE_OF_OBJECT_TYPE = {"lead": "leads", "contact": "contacts", "opportunity": "opportunities",
                 "activity": "custom_activities"}


def custom_definitions(org: FakeOrg) -> dict[tuple[str, str], dict[str, Any]]:
    """(object kind, field id) -> definition; shared fields under each associated kind."""
    found = {(kind, obj["id"]): obj for kind in CUSTOM_FIELD_OBJECT_TYPES
             for obj in org.all(f"custom_field.{kind}")}
    for obj in org.all(o.CUSTOM_FIELD_SHARED):
        for association in obj.get("associations") or []:
            found[(association["object_type"], obj["id"])] = obj
    return found


def decoded(definition: dict[str, Any], db_value: Any) -> Any:
    """A custom column's value as the database returns it, JSON arrays decoded."""
    if definition.get("accepts_multiple_values") and isinstance(db_value, str):
        return json.loads(db_value)
    return db_value


def plain_column(name: str) -> str:
    """The column of a field whose name collides with nothing and is short: the README rule."""
    return "custom_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def typed(definition: dict[str, Any], value: Any) -> Any:
    """A custom value as its column must hold it (README "Custom fields"); multi-value
    fields as the list their JSON column decodes to."""
    if definition.get("accepts_multiple_values"):
        return value if isinstance(value, list) else [value]
    kind = definition["type"]
    if kind == "number":
        return float(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "datetime":
        return to_utc(value)
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                           ensure_ascii=False)


def expected_objects(org: FakeOrg, table: str) -> dict[Any, dict[str, Any]]:
    """Primary key -> stored object, for every object the table must contain."""
    if table in COLLECTION_OF:
        return {obj["id"]: obj for obj in org.all(COLLECTION_OF[table])}
    if table in ACTIVITY_TYPE_OF:
        return {obj["id"]: obj for obj in org.activities(ACTIVITY_TYPE_OF[table])}
    if table == "memberships":
        return {obj["id"]: obj for name in (o.MEMBERSHIP, o.INACTIVE_MEMBERSHIP)
                for obj in org.all(name)}
    if table == "custom_fields":
        return custom_definitions(org)
    if table == "organization":
        return {org.organization_id: {"id": org.organization_id, "name": org.name}}
    raise KeyError(table)
