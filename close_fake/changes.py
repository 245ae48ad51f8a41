"""Object changes that emit the Event Log entries Close documents [003:8157-8492].

Tests change a running fake organisation between two syncs and expect the events a real
Close would log:

    from close_fake import changes as c, generate_org, org as o

    org = generate_org(seed=1, leads=5)
    lead = c.create(org, o.LEAD, {"name": "Acme", "contacts": [{"name": "Ann"}]})
    field_id = org.all(o.CUSTOM_FIELD_LEAD)[0]["id"]
    c.update(org, o.LEAD, lead["id"], {"name": "Acme Inc", f"custom.{field_id}": None})
    task = next(t for t in org.all(o.TASK) if t["_type"] == "lead")
    c.update(org, o.TASK, task["id"], {"is_complete": True})
    c.merge_leads(org, org.all(o.LEAD)[0]["id"], lead["id"])
    c.delete(org, o.LEAD, lead["id"])  # and its contacts, opportunities, tasks, activities

Every call is one request (`events.request`): its events share a request id, user, time
and `meta.request_method` / `request_path` (those of the equivalent API call). The rules
of the `FakeOrg` contract hold: stored objects are replaced, never edited, under
`org.lock`. Invalid input raises `ValueError`, unknown ids `KeyError`.

What each change emits (our reading of the list of events, README "Changes"):
- create: `<type>.created`; a contact also `lead.updated` (`contact_ids`); a lead with
  nested `contacts` (its data shows them) then `contact.created` for each; a new lead gets a
  `Created` activity, which has no events.
- update: `<type>.updated` with `changed_fields` / `previous_data` (no event when nothing
  but `date_updated`/`updated_by` changed); a lead's status change also creates (or, by the
  same user within the consolidation window, updates, or when reverted deletes) a
  LeadStatusChange activity, an opportunity's an OpportunityStatusChange; completing a
  `lead` task adds `task.lead.completed`, a TaskCompleted activity and `lead.updated`
  (un-completing deletes the activity) [003:8324-8335]; email/SMS `status: sent` adds
  `sent`, meeting statuses `scheduled`/`started`/`completed`/`canceled`; a contact moved to
  another lead updates both leads; an email changes its thread (`activity.email_thread
  .updated`).
- delete: `<type>.deleted`; a lead first deletes its activities, tasks, opportunities and
  contacts (each `deleted`; Created activities silently) [003:8177-8179]; a contact its
  sequence subscriptions [003:8491] and updates its lead; a thread its emails; the last
  email of a thread deletes the thread [003:8250-8252].
- merge_leads: children moved (`updated`, new `lead_id`), destination `updated`, source
  `deleted`, then `lead.merged` (data: the destination); all carry
  `meta.merge_source_lead_id` / `merge_destination_lead_id` [003:8180-8187].
- renames (`rename_user`, `rename_pipeline`, `rename_sequence`, `rename_email_template`,
  `rename_contact`; updates of a `name`): the renamed object's own events only (users and
  pipelines have none); copies of the name elsewhere follow silently (`_follow_labels`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from . import events as ev
from . import mutations as m
from . import org as o
from .common import LONG_ID, SHORT_ID, format_money, iso, iso_naive
from .org import FakeOrg

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
# Meeting statuses with their own action [003:8296-8305].
_MEETING_ACTIONS = {
    "upcoming": "scheduled",
    "in-progress": "started",
    "completed": "completed",
    "canceled": "canceled",
}
_CHILDREN = (o.ACTIVITY, o.TASK, o.OPPORTUNITY, o.CONTACT)  # a lead's, in deletion order


def _user_name(org: FakeOrg, user_id: str | None) -> str | None:
    return org.user_name(user_id)


def _fields_of(fields: Mapping[str, Any] | None, more: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(fields or {})
    out.update(more)
    return out


# -- create ---------------------------------------------------------------------------------------


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
            # As in the webhook sample, winning sets confidence 100 [003:63-112]; `date_won`
            # is set to the day of the change [003:3178] (UTC here); `date_lost` likewise.
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


def _lead_data(org: FakeOrg, obj: Mapping[str, Any]) -> dict[str, Any] | None:
    lead = org.get(o.LEAD, obj.get("lead_id") or "")
    return ev.data_of(org, o.LEAD, lead) if lead else None


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
    `date_updated`, silently [003:8174-8175]."""
    if not lead_id or not ev.log_of(org).touch_lead:
        return
    lead = org.get(o.LEAD, lead_id)
    if lead is not None:
        org.put(o.LEAD, _audited(org, o.LEAD, lead, rq))


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


# -- update ---------------------------------------------------------------------------------------


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


def _data_by_id(org: FakeOrg, collection: str, object_id: str | None) -> dict[str, Any] | None:
    obj = org.get(collection, object_id) if object_id else None
    return ev.data_of(org, collection, obj) if obj is not None else None


def _thread_changed(org: FakeOrg, thread_id: str, before: dict[str, Any]) -> None:
    """An email of the thread changed: `activity.email_thread.updated` ("emails,
    n_emails, latest_normalized_subject, participants"), or `deleted` when it lost its last
    email [003:8242-8252]."""
    thread = org.get(o.ACTIVITY, thread_id)
    if thread is None:
        return
    if not org.children(o.ACTIVITY, "thread_id", thread_id):
        org.remove(o.ACTIVITY, thread_id)
        ev.deleted(org, o.ACTIVITY, before)
    else:
        ev.updated(org, o.ACTIVITY, thread, before)


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
    [003:8306-8323]."""
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
    updates the lead [003:8324-8335]."""
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


# Copies of a user's name, by the key holding the user's id [003:1209-1224, 3307-3330].
USER_NAME_COPIES: tuple[tuple[str, str], ...] = (
    ("user_id", "user_name"),
    ("created_by", "created_by_name"),
    ("updated_by", "updated_by_name"),
    ("assigned_to", "assigned_to_name"),
)
# Where the other copied names live: renamed collection -> (the name's key there, then
# (collection holding copies, key holding the renamed object's id, the copy's key, indexed)).
# `indexed`: the copies are found with `org.children` (an index kept anyway); otherwise by a
# scan, so rare renames do not make every write keep one more index up to date.
NAME_COPIES: dict[str, tuple[str, tuple[tuple[str, str, str, bool], ...]]] = {
    o.LEAD: ("display_name", (
        (o.OPPORTUNITY, "lead_id", "lead_name", True),
        (o.TASK, "lead_id", "lead_name", True),
    )),
    o.CONTACT: ("name", (
        (o.TASK, "contact_id", "contact_name", True),
        (o.OPPORTUNITY, "contact_id", "contact_name", False),
    )),
    o.LEAD_STATUS: ("label", ((o.LEAD, "status_id", "status_label", True),)),
    o.OPPORTUNITY_STATUS: ("label", ((o.OPPORTUNITY, "status_id", "status_label", True),)),
    o.PIPELINE: ("name", (
        (o.OPPORTUNITY, "pipeline_id", "pipeline_name", False),
        (o.OPPORTUNITY_STATUS, "pipeline_id", "pipeline_name", False),
    )),
    o.SEQUENCE: ("name", (
        (o.ACTIVITY, "sequence_id", "sequence_name", False),
        (o.SEQUENCE_SUBSCRIPTION, "sequence_id", "sequence_name", False),
    )),
    o.EMAIL_TEMPLATE: ("name", ((o.ACTIVITY, "template_id", "template_name", False),)),
}  # fmt: skip
# Collections that hold no copies of a user's name.
_NO_USER_NAMES = frozenset({o.USER, o.MEMBERSHIP, o.INACTIVE_MEMBERSHIP})


def _follow_labels(org: FakeOrg, collection: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """With `labels="follow"`, every current copy of a renamed object's name follows,
    silently (no events, no `date_updated`), as an API computing them would show: a lead's
    `display_name` -> `lead_name` (opportunities, tasks); a contact's `name` ->
    `contact_name` (tasks, opportunities that carry it); a status `label` -> `status_label`
    (leads, opportunities); a pipeline's `name` -> `pipeline_name` (opportunities, statuses
    that carry it); a sequence's `name` -> `sequence_name` (emails, subscriptions that carry
    it); an email template's `name` -> `template_name` (emails); a user's name
    (`org.user_name`) -> `user_name`, `created_by_name`, `updated_by_name`,
    `assigned_to_name` on every object naming that user.

    Not copies, so they stay: status-change activities' `old_status_label` /
    `new_status_label` (history: the labels at the time of the change, as the Event Log's
    old `data` keeps them), email envelopes' and meeting attendees' `name`s (the message and
    calendar data), connected accounts' identities and subscriptions' `sender_name` (the
    sending identity, edited on its own)."""
    if ev.log_of(org).labels != "follow":
        return
    if collection == o.USER:
        before, after = _full_name(old), _full_name(new)
        if before != after:
            _follow_user_name(org, new["id"], after)
        return
    source = NAME_COPIES.get(collection)
    if source is None:
        return
    name_key, copies = source
    label = new.get(name_key)
    if old.get(name_key) == label:
        return
    for coll, key, label_key, indexed in copies:
        objs = (
            org.children(coll, key, new["id"])
            if indexed
            else [x for x in org.collections[coll].values() if x.get(key) == new["id"]]
        )
        changed = [
            {**x, label_key: label} for x in objs if label_key in x and x[label_key] != label
        ]
        if changed:
            org.put_many(coll, changed)


def _full_name(user: Mapping[str, Any]) -> str:
    """A user's name as `org.user_name` builds it."""
    return f"{user.get('first_name') or ''} {user.get('last_name') or ''}".strip()


def _follow_user_name(org: FakeOrg, user_id: str, name: str) -> None:
    """Every `*_name` copy naming the user, in every collection (one scan each)."""
    for coll in o.COLLECTIONS:
        if coll in _NO_USER_NAMES:
            continue
        changed = []
        for obj in org.collections[coll].values():
            keys = [
                name_key
                for id_key, name_key in USER_NAME_COPIES
                if obj.get(id_key) == user_id and name_key in obj and obj[name_key] != name
            ]
            if keys:
                changed.append({**obj, **dict.fromkeys(keys, name)})
        if changed:
            org.put_many(coll, changed)


# -- renames ---------------------------------------------------------------------------------------


def rename_user(
    org: FakeOrg,
    target_id: str,
    first_name: str | None = None,
    last_name: str | None = None,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A user's `first_name` / `last_name` change (None: kept). Users have no Event Log
    events (only memberships are `activated` / `deactivated` [003:8438-8441]): nothing is
    logged; the user's `date_updated` moves; with `labels="follow"` every `user_name`,
    `created_by_name`, `updated_by_name` and `assigned_to_name` naming the user follows,
    silently. Returns the user."""
    changes = {
        k: val for k, val in (("first_name", first_name), ("last_name", last_name))
        if val is not None
    }  # fmt: skip
    if not changes:
        raise ValueError("Give a first_name and/or a last_name.")
    if not all(isinstance(val, str) for val in changes.values()):
        raise ValueError("Names must be strings.")
    return update(org, o.USER, target_id, changes, user_id=user_id, api_key_id=api_key_id, at=at)


def _rename(
    org: FakeOrg,
    collection: str,
    object_id: str,
    name: str,
    user_id: str | None,
    api_key_id: str | None,
    at: datetime | None,
) -> dict[str, Any]:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("A name must be a non-empty string.")
    return update(org, collection, object_id, {"name": name}, user_id=user_id,
                  api_key_id=api_key_id, at=at)  # fmt: skip


def rename_pipeline(
    org: FakeOrg,
    pipeline_id: str,
    name: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """`PUT /pipeline/{id}/` with a new `name` [003:4964]. Pipelines have no Event Log
    events [003:8157-8492]: nothing is logged; with `labels="follow"` the opportunities'
    `pipeline_name` follows, silently. Returns the pipeline."""
    return _rename(org, o.PIPELINE, pipeline_id, name, user_id, api_key_id, at)


def rename_sequence(
    org: FakeOrg,
    sequence_id: str,
    name: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A sequence's new `name`: `sequence.updated` [003:8478-8484]; with `labels="follow"`
    the emails' `sequence_name` follows, silently. Returns the sequence."""
    return _rename(org, o.SEQUENCE, sequence_id, name, user_id, api_key_id, at)


def rename_email_template(
    org: FakeOrg,
    template_id: str,
    name: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """An email template's new `name`: `email_template.updated` [003:8467-8477]; with
    `labels="follow"` the emails' `template_name` follows, silently. Returns the template."""
    return _rename(org, o.EMAIL_TEMPLATE, template_id, name, user_id, api_key_id, at)


def rename_contact(
    org: FakeOrg,
    contact_id: str,
    name: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A contact's new `name` (`update` with `name`): `contact.updated` (its
    `display_name` follows when it showed the name); with `labels="follow"` the tasks' and
    opportunities' `contact_name` follows, silently. Returns the contact."""
    return _rename(org, o.CONTACT, contact_id, name, user_id, api_key_id, at)


# -- delete ---------------------------------------------------------------------------------------


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
            # Deleting a thread deletes its emails [003:2864-2866].
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


# -- merge ----------------------------------------------------------------------------------------


def merge_leads(
    org: FakeOrg,
    source_id: str,
    destination_id: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """`POST /lead/merge/` [003:643-655]: the source's contacts, opportunities, tasks and
    activities move to the destination (each `updated`: `lead_id`, `lead_name`), custom
    values the destination lacks and addresses it does not have are copied from the
    source, the source is deleted. Returns the destination."""
    if source_id == destination_id:
        raise ValueError("A lead cannot be merged into itself.")
    source, dest = org.get(o.LEAD, source_id), org.get(o.LEAD, destination_id)
    if source is None or dest is None:
        raise KeyError(f"Lead {source_id if source is None else destination_id} not found.")
    meta = {"merge_source_lead_id": source_id, "merge_destination_lead_id": destination_id}
    with ev.request(
        org, "POST", "/api/v1/lead/merge/", user_id=user_id, api_key_id=api_key_id, at=at,
        meta=meta,
    ) as rq:  # fmt: skip
        source, dest = org.get(o.LEAD, source_id) or source, org.get(o.LEAD, destination_id) or dest
        dest_before = ev.data_of(org, o.LEAD, dest)
        for coll in _CHILDREN:
            children = list(org.children(coll, "lead_id", source_id))
            befores = [ev.data_of(org, coll, x) for x in children]
            moved = []
            for child in children:
                new = {**child, "lead_id": destination_id}
                if "lead_name" in new:
                    new["lead_name"] = dest.get("display_name")
                moved.append(_audited(org, coll, new, rq))
            if moved:
                org.put_many(coll, moved)
            for new, before in zip(moved, befores, strict=True):
                ev.updated(org, coll, new, before)
        merged = dict(dest)
        for key, val in source.items():
            if key.startswith("custom.") and key not in merged:
                merged[key] = val
        addresses = list(dest.get("addresses") or [])
        addresses += [a for a in source.get("addresses") or [] if a not in addresses]
        merged["addresses"] = addresses
        merged = _audited(org, o.LEAD, merged, rq)
        org.put(o.LEAD, merged)
        ev.updated(org, o.LEAD, merged, dest_before, force=True)
        _remove_all(org, [(o.LEAD, source)])
        ev.action(org, o.LEAD, merged, "merged")
        return merged
