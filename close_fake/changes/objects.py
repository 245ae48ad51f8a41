"""New objects and what the API derives: ids, defaults, audit fields, labels, checked refs.

`_new` completes a created object as the API would, `_derive` recomputes derived values
(labels, names, formatted money, task views) after a change, `_check_refs` refuses
references to objects that do not exist, `_audited` stamps `date_updated` / `updated_by`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .. import events as ev
from .. import mutations as m
from .. import org as o
from ..common import LONG_ID, SHORT_ID, format_money, iso, iso_naive
from ..org import FakeOrg

ADMIN = ev.ADMIN

# Id prefix and length of new objects, as the generator makes them.
ID_PREFIXES: dict[str, tuple[str, int]] = {
    o.LEAD: ("lead", LONG_ID),
    o.CONTACT: ("cont", LONG_ID),
    o.OPPORTUNITY: ("oppo", LONG_ID),
    o.ACTIVITY: ("acti", LONG_ID),
    o.LEAD_STATUS: ("stat", LONG_ID),
    o.OPPORTUNITY_STATUS: ("stat", LONG_ID),
    o.EMAIL_TEMPLATE: ("tmpl", LONG_ID),
    o.SMS_TEMPLATE: ("smstmpl", SHORT_ID),
    o.SEQUENCE: ("seq", SHORT_ID),
    o.SEQUENCE_SUBSCRIPTION: ("sub", SHORT_ID),
    o.SAVED_SEARCH: ("save", LONG_ID),
    o.PHONE_NUMBER: ("phon", LONG_ID),
    o.GROUP: ("group", SHORT_ID),
    o.PIPELINE: ("pipe", SHORT_ID),
    o.CUSTOM_ACTIVITY_TYPE: ("actitype", SHORT_ID),
}
# Collections whose stored dates are naive in the docs' samples.
_NAIVE_DATES = frozenset({o.PIPELINE, o.CUSTOM_ACTIVITY_TYPE, o.DIALER, o.WEBHOOK})
# Keys an update may not change, and keys of a lead the API assembles from other objects.
_FIXED = frozenset({"id", "organization_id", "date_created", "_type"})
_ASSEMBLED = frozenset({"contacts", "opportunities", "tasks", "contact_ids"})


def _user_name(org: FakeOrg, user_id: str | None) -> str | None:
    return org.user_name(user_id)


def _stored(org: FakeOrg, collection: str, object_id: str) -> dict[str, Any]:
    obj = org.get(collection, object_id)
    if obj is None:
        raise KeyError(f"Object {object_id} not found in {collection!r}.")
    return obj


def _object_request(org: FakeOrg, method: str, collection: str, obj: Mapping[str, Any],
                    user_id: str | None, api_key_id: str | None,
                    at: datetime | None) -> Any:
    """The Event Log request of a write to one object's own path."""
    return ev.request(org, method, ev.api_path(collection, obj, True), user_id=user_id,
                      api_key_id=api_key_id, at=at)


def _new(org: FakeOrg, collection: str, body: dict[str, Any], rq: ev.ChangeRequest) -> dict:
    """A complete new object from `body`."""
    prefix, length = ID_PREFIXES.get(collection, (collection[:4], SHORT_ID))
    if collection == o.TASK and body.get("_type", "lead") != "lead":
        prefix = "noti"
    if "id" in body:
        if org.get(collection, body["id"]) is not None:
            raise ValueError(f"{body['id']} already exists in {collection!r}.")
        object_id = body["id"]
    else:
        object_id = ev.new_id(org, prefix, length, collection)
    user = rq.user_id
    stamp = (iso_naive if collection in _NAIVE_DATES else iso)(rq.at)
    audit = {"created_by": user, "updated_by": user, "date_created": stamp, "date_updated": stamp}
    named = {**audit, "created_by_name": _user_name(org, user)}
    named["updated_by_name"] = named["created_by_name"]
    base: dict[str, Any] = {"id": object_id, "organization_id": org.organization_id}
    if collection == o.LEAD:
        new = {
            **base, "name": "", "display_name": None, "description": "", "url": None,
            "html_url": f"https://app.close.com/lead/{object_id}/", "status_id": None,
            "status_label": None, "addresses": [], **audit,
        }  # fmt: skip
        if not body.get("status_id"):
            statuses = org.all(o.LEAD_STATUS)
            if not statuses:
                raise ValueError("The organisation has no lead statuses.")
            body["status_id"] = statuses[0]["id"]
    elif collection == o.CONTACT:
        new = {
            **base, "lead_id": None, "name": "", "title": "", "display_name": None,
            "emails": [], "phones": [], "urls": [], **audit,
        }  # fmt: skip
    elif collection == o.OPPORTUNITY:
        new = {
            **base, "lead_id": None, "lead_name": None, "status_id": None, "status_label": None,
            "status_type": None, "pipeline_id": None, "pipeline_name": None, "value": 0,
            "value_period": "one_time", "value_formatted": None, "value_currency": "USD",
            "expected_value": 0, "annualized_value": 0, "annualized_expected_value": 0,
            "date_won": None, "date_lost": None, "confidence": 50, "note": "",
            "user_id": user, "user_name": None, "contact_id": None, **audit,
        }  # fmt: skip
        if ev.log_of(org).opportunity_contact_name:
            new = {**{k: val for k, val in new.items() if k not in audit}, "contact_name": None,
                   **audit}  # fmt: skip
        if not body.get("status_id"):
            active = [s for s in org.all(o.OPPORTUNITY_STATUS) if s["type"] == "active"]
            if not active:
                raise ValueError("The organisation has no active opportunity status.")
            body["status_id"] = active[0]["id"]
    elif collection == o.TASK:
        new = {
            **base, "_type": "lead", "view": "inbox", "assigned_to": user,
            "assigned_to_name": None, "contact_id": None, "contact_name": None,
            "date": rq.at.date().isoformat(), "is_complete": False, "lead_id": None,
            "lead_name": None, "object_id": None, "object_type": None, **named,
        }  # fmt: skip
        if body.get("_type", "lead") == "lead":
            new.update({"text": "", "is_dateless": False})
    elif collection == o.ACTIVITY:
        if body.get("_type") not in o.ACTIVITY_TYPES:
            raise ValueError(f"Activities need a `_type` of {', '.join(o.ACTIVITY_TYPES)}.")
        new = {
            **base, "_type": body["_type"], "lead_id": None, "contact_id": None,
            "user_id": user, "user_name": None, "users": [], **named,
        }  # fmt: skip
        if body["_type"] == "Note":
            new["note"] = ""
    else:
        new = {**base, **_like(org, collection, audit, named)}
    new.update(body)
    _check_refs(org, collection, new)
    return _derive(org, collection, new, None, rq)


def _like(
    org: FakeOrg, collection: str, audit: dict[str, Any], named: dict[str, Any]
) -> dict[str, Any]:
    """Audit keys for other collections: those the collection's objects already have."""
    sample = next(iter(org.collections[collection].values()), None)
    if sample is None:
        return {}
    out = {k: val for k, val in named.items() if k in sample}
    for key in ("created_by_id", "updated_by_id"):
        if key in sample:
            out[key] = audit["created_by"]
    if "organization_id" not in sample:
        out["organization_id"] = None
    return out


def _check_refs(
    org: FakeOrg, collection: str, obj: dict[str, Any], old: dict[str, Any] | None = None
) -> None:
    """References of a new object, or the changed ones of an update, must exist (an object
    may keep pointing at a contact deleted since, as Close's do)."""

    def new(key: str) -> bool:
        return old is None or obj.get(key) != old.get(key)

    lead_id = obj.get("lead_id")
    needs_lead = collection in (o.CONTACT, o.OPPORTUNITY, o.ACTIVITY) or (
        collection == o.TASK and obj.get("_type") == "lead"
    )
    if needs_lead and not lead_id:
        raise ValueError(f"A {collection} needs a `lead_id`.")
    children = (o.CONTACT, o.OPPORTUNITY, o.ACTIVITY, o.TASK)
    if lead_id and new("lead_id") and collection in children and not org.get(o.LEAD, lead_id):
        raise KeyError(f"Lead {lead_id} not found.")
    contact_id = obj.get("contact_id")
    missing_contact = contact_id and org.get(o.CONTACT, contact_id) is None
    if missing_contact and new("contact_id") and collection in children:
        raise KeyError(f"Contact {contact_id} not found.")
    thread_id = obj.get("thread_id")
    if collection == o.ACTIVITY and thread_id and new("thread_id"):
        thread = org.get(o.ACTIVITY, thread_id)
        if thread is None or thread["_type"] != "EmailThread":
            raise KeyError(f"Email thread {thread_id} not found.")
    for key, val in obj.items():
        if key.startswith("custom.") and collection in m.VALUE_COLLECTIONS and new(key):
            m.check_applies(org, key[len("custom.") :], collection, obj)
            if val is None or val == "" or val == []:
                raise ValueError(f"Clear {key} by leaving it out (or with update()).")


def _derive(
    org: FakeOrg,
    collection: str,
    new: dict[str, Any],
    old: dict[str, Any] | None,
    rq: ev.ChangeRequest,
    explicit: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Recompute what the API derives (labels, names, formatted values) after a change;
    keys the caller set explicitly (`explicit`) are kept."""

    def changed(*keys: str) -> bool:
        return old is None or any(new.get(k) != old.get(k) for k in keys)

    def free(key: str) -> bool:
        return key not in explicit

    if collection == o.LEAD:
        if free("display_name") and (
            (old is None and not new.get("display_name"))
            or (old is not None and changed("name") and old["display_name"] == old["name"])
        ):
            new["display_name"] = new.get("name")
        if changed("status_id"):
            status = org.get(o.LEAD_STATUS, new.get("status_id") or "")
            if status is None:
                raise ValueError(f"Unknown lead status {new.get('status_id')!r}.")
            new["status_label"] = status["label"]
    elif collection == o.CONTACT:
        if free("display_name") and changed("name", "emails"):
            emails = new.get("emails") or []
            new["display_name"] = new.get("name") or (emails[0]["email"] if emails else "")
    elif collection == o.OPPORTUNITY:
        _derive_opportunity(org, new, old, rq, explicit)
    elif collection == o.TASK:
        if changed("assigned_to"):
            new["assigned_to_name"] = _user_name(org, new.get("assigned_to"))
        if changed("lead_id"):
            lead = org.get(o.LEAD, new.get("lead_id") or "")
            new["lead_name"] = lead["display_name"] if lead else None
        if changed("contact_id"):
            contact = org.get(o.CONTACT, new.get("contact_id") or "")
            new["contact_name"] = contact["name"] if contact else None
        if free("view") and changed("is_complete", "date"):
            day = str(new.get("date") or "")[:10]
            future = bool(day) and day > rq.at.date().isoformat()
            new["view"] = "archive" if new.get("is_complete") else "future" if future else "inbox"
    elif collection == o.ACTIVITY:
        if "user_id" in new and changed("user_id"):
            new["user_name"] = _user_name(org, new.get("user_id"))
    elif (
        collection == o.OPPORTUNITY_STATUS
        and changed("pipeline_id")
        and org.get(o.PIPELINE, new.get("pipeline_id") or "") is None
    ):
        raise ValueError(f"Unknown pipeline {new.get('pipeline_id')!r}.")
    return new


def _derive_opportunity(
    org: FakeOrg,
    new: dict[str, Any],
    old: dict[str, Any] | None,
    rq: ev.ChangeRequest,
    explicit: frozenset[str],
) -> None:
    def changed(*keys: str) -> bool:
        return old is None or any(new.get(k) != old.get(k) for k in keys)

    if changed("status_id"):
        status = org.get(o.OPPORTUNITY_STATUS, new.get("status_id") or "")
        if status is None:
            raise ValueError(f"Unknown opportunity status {new.get('status_id')!r}.")
        pipe = org.get(o.PIPELINE, status["pipeline_id"]) or {}
        new.update({
            "status_label": status["label"], "status_type": status["type"],
            "pipeline_id": status["pipeline_id"], "pipeline_name": pipe.get("name"),
        })  # fmt: skip
        was = old.get("status_type") if old else None
        if status["type"] != was:
            # As in the webhook sample, winning sets confidence 100 (Close API: Webhooks);
            # `date_won` is set to the day of the change (Close API: Opportunities, Update an
            # opportunity; UTC here); `date_lost` likewise.
            if "confidence" not in explicit and status["type"] in ("won", "lost"):
                new["confidence"] = 100 if status["type"] == "won" else 0
            today = rq.at.astimezone(UTC).date().isoformat()
            for kind in ("won", "lost"):
                key = f"date_{kind}"
                if key not in explicit:
                    new[key] = today if status["type"] == kind else None
    if changed("value", "value_period", "confidence"):
        value = new.get("value") or 0
        period = new.get("value_period") or "one_time"
        confidence = new.get("confidence") or 0
        annualized = value * 12 if period == "monthly" else value
        new.update({
            "value_formatted": format_money(value, period),
            "expected_value": value * confidence // 100,
            "annualized_value": annualized,
            "annualized_expected_value": annualized * confidence // 100,
        })  # fmt: skip
    if changed("user_id"):
        new["user_name"] = _user_name(org, new.get("user_id"))
    if changed("lead_id"):
        lead = org.get(o.LEAD, new.get("lead_id") or "")
        new["lead_name"] = lead["display_name"] if lead else None
    if "contact_name" in new and "contact_name" not in explicit and changed("contact_id"):
        contact = org.get(o.CONTACT, new.get("contact_id") or "")
        new["contact_name"] = contact["name"] if contact else None


def _audited(
    org: FakeOrg, collection: str, obj: dict[str, Any], rq: ev.ChangeRequest
) -> dict[str, Any]:
    """A copy with a new `date_updated` and the request's user as `updated_by`."""
    out = dict(obj)
    if "date_updated" in out or collection in (o.LEAD, o.CONTACT, o.OPPORTUNITY):
        out["date_updated"] = ev.stamp(org, obj.get("date_updated"))
    if "updated_by" in out:
        out["updated_by"] = rq.user_id
        if "updated_by_name" in out:
            out["updated_by_name"] = _user_name(org, rq.user_id)
    if "updated_by_id" in out:
        out["updated_by_id"] = rq.user_id
    return out
