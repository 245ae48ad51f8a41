"""Random changes of CRM objects: leads (and merges), contacts, opportunities, tasks,
activities and sequence subscriptions; each one kind of change (`Change`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .. import changes as c
from .. import org as o
from ..org import FakeOrg
from .picks import (
    _CITIES,
    _COMPANY,
    _PEOPLE,
    _SUFFIX,
    _TITLES,
    _WORDS,
    MIN_LEADS,
    Change,
    _activities,
    _fields_for,
    _lead,
    _pick,
    _sentence,
    _user,
    _value,
)

_NEW_ACTIVITY_TYPES = ("Note", "Call", "SMS", "Email", "CustomActivity")
# Keys a cloned activity does not take from its template.
_CLONE_SKIP = frozenset({
    "id", "lead_id", "contact_id", "user_id", "user_name", "organization_id", "created_by",
    "created_by_name", "updated_by", "updated_by_name", "date_created", "date_updated",
    "thread_id", "task_id", "opportunity_id",
})  # fmt: skip


# -- leads --------------------------------------------------------------------------------------


def _create_lead(org: FakeOrg, rng: random.Random) -> str | None:
    name = f"{rng.choice(_COMPANY)} {rng.choice(_SUFFIX)}"
    contacts = [
        {"name": rng.choice(_PEOPLE), "title": rng.choice(_TITLES)}
        for _ in range(rng.randint(0, 2))
    ]
    body: dict[str, Any] = {"name": name, "description": _sentence(rng), "contacts": contacts}
    statuses = org.all(o.LEAD_STATUS)
    if statuses:
        body["status_id"] = rng.choice(statuses)["id"]
    lead = c.create(org, o.LEAD, body, user_id=_user(org, rng))
    return f"lead {lead['id']} with {len(contacts)} contacts"


def _update_lead(org: FakeOrg, rng: random.Random) -> str | None:
    lead = _lead(org, rng)
    if lead is None:
        return None
    what = rng.choice(("name", "description", "url", "status_id", "addresses"))
    if what == "name":
        value: Any = f"{rng.choice(_COMPANY)} {rng.choice(_SUFFIX)} {rng.randint(1, 99)}"
    elif what == "description":
        value = _sentence(rng)
    elif what == "url":
        value = rng.choice((None, f"https://{rng.choice(_WORDS)}.example.com"))
    elif what == "status_id":
        value = rng.choice(org.all(o.LEAD_STATUS))["id"]
    else:
        addresses = list(lead.get("addresses") or [])
        if addresses and rng.random() < 0.5:
            addresses.pop(rng.randrange(len(addresses)))
        else:
            city, state, country = rng.choice(_CITIES)
            addresses.append({
                "label": rng.choice(("business", "mailing")), "address_1": "1 Main St",
                "address_2": "", "city": city, "state": state, "zipcode": "10001",
                "country": country,
            })  # fmt: skip
        value = addresses
    c.update(org, o.LEAD, lead["id"], {what: value}, user_id=_user(org, rng))
    return f"lead {lead['id']}: {what}"


def _delete_lead(org: FakeOrg, rng: random.Random) -> str | None:
    if org.count(o.LEAD) <= MIN_LEADS:
        return None
    lead = _lead(org, rng)
    assert lead is not None
    c.delete(org, o.LEAD, lead["id"], user_id=_user(org, rng))
    return f"lead {lead['id']}"


def _merge_leads(org: FakeOrg, rng: random.Random) -> str | None:
    if org.count(o.LEAD) <= MIN_LEADS:
        return None
    source, dest = rng.sample(org.ranked(o.LEAD), 2)
    c.merge_leads(org, source["id"], dest["id"], user_id=_user(org, rng))
    return f"lead {source['id']} into {dest['id']}"


# -- contacts, opportunities, tasks ---------------------------------------------------------------


def _create_contact(org: FakeOrg, rng: random.Random) -> str | None:
    lead = _lead(org, rng)
    if lead is None:
        return None
    name = rng.choice(_PEOPLE)
    local = (name.split(" ")[0].lower() or "info").encode("ascii", "ignore").decode() or "info"
    body = {
        "lead_id": lead["id"],
        "name": name,
        "title": rng.choice(_TITLES),
        "emails": [{"email": f"{local}@{rng.choice(_WORDS)}.example", "type": "office"}],
    }
    contact = c.create(org, o.CONTACT, body, user_id=_user(org, rng))
    return f"contact {contact['id']} on {lead['id']}"


def _update_contact(org: FakeOrg, rng: random.Random) -> str | None:
    contact = _pick(rng, org.ranked(o.CONTACT))
    if contact is None:
        return None
    what = rng.choice(("name", "title", "emails", "phones"))
    if what == "name":
        value: Any = rng.choice(_PEOPLE) + rng.choice(("", " Jr."))
    elif what == "title":
        value = rng.choice(_TITLES)
    elif what == "emails":
        email = f"x{rng.randint(1, 999)}@mail.example"
        value = [*contact.get("emails", []), {"email": email, "type": "home"}]
    else:
        number = f"+1415{rng.randint(2000000, 9999999)}"
        value = [{"phone": number, "phone_formatted": f"+1 415-{number[5:8]}-{number[8:]}",
                  "type": "mobile", "country": "US"}]  # fmt: skip
    c.update(org, o.CONTACT, contact["id"], {what: value}, user_id=_user(org, rng))
    return f"contact {contact['id']}: {what}"


def _delete_of(collection: str) -> Change:
    def run(org: FakeOrg, rng: random.Random) -> str | None:
        obj = _pick(rng, org.ranked(collection))
        if obj is None:
            return None
        c.delete(org, collection, obj["id"], user_id=_user(org, rng))
        return f"{collection} {obj['id']}"

    return run


def _create_opportunity(org: FakeOrg, rng: random.Random) -> str | None:
    lead = _lead(org, rng)
    statuses = org.all(o.OPPORTUNITY_STATUS)
    if lead is None or not statuses:
        return None
    body = {
        "lead_id": lead["id"],
        "status_id": rng.choice(statuses)["id"],
        "value": rng.choice((0, 5000, 125000, rng.randint(100, 900_000))),
        "value_period": rng.choice(("one_time", "monthly", "annual")),
        "note": _sentence(rng, 3),
        "user_id": _user(org, rng),
    }
    opp = c.create(org, o.OPPORTUNITY, body, user_id=_user(org, rng))
    return f"opportunity {opp['id']} on {lead['id']}"


def _update_opportunity(org: FakeOrg, rng: random.Random) -> str | None:
    opp = _pick(rng, org.ranked(o.OPPORTUNITY))
    if opp is None:
        return None
    what = rng.choice(("status_id", "value", "note", "confidence", "value_period"))
    values: dict[str, Any] = {
        "status_id": lambda: rng.choice(org.all(o.OPPORTUNITY_STATUS))["id"],
        "value": lambda: rng.randint(0, 2_000_000),
        "note": lambda: _sentence(rng, 4),
        "confidence": lambda: rng.choice((10, 25, 50, 75, 90)),
        "value_period": lambda: rng.choice(("one_time", "monthly", "annual")),
    }
    c.update(org, o.OPPORTUNITY, opp["id"], {what: values[what]()}, user_id=_user(org, rng))
    return f"opportunity {opp['id']}: {what}"


def _create_task(org: FakeOrg, rng: random.Random) -> str | None:
    lead = _lead(org, rng)
    if lead is None:
        return None
    day = f"2026-{rng.randint(9, 12):02d}-{rng.randint(1, 28):02d}"
    body = {
        "lead_id": lead["id"],
        "text": rng.choice(("Follow up", "Send proposal", "Call back")),
        "date": rng.choice((day, day + "T09:00:00+00:00")),
        "assigned_to": _user(org, rng),
    }
    task = c.create(org, o.TASK, body, user_id=_user(org, rng))
    return f"task {task['id']} on {lead['id']}"


def _is_lead_task(org: FakeOrg, task: dict[str, Any]) -> bool:
    return task["_type"] == "lead" and bool(task.get("lead_id"))


def _lead_tasks(org: FakeOrg) -> Sequence[dict[str, Any]]:
    return org.ranked(o.TASK, _is_lead_task)


def _update_task(org: FakeOrg, rng: random.Random) -> str | None:
    task = _pick(rng, _lead_tasks(org))
    if task is None:
        return None
    what = rng.choice(("text", "date", "assigned_to"))
    value: Any = {
        "text": lambda: (
            rng.choice(("Follow up", "Negotiate", "Check in")) + f" #{rng.randint(1, 9)}"
        ),
        "date": lambda: f"2026-{rng.randint(10, 12):02d}-{rng.randint(1, 28):02d}",
        "assigned_to": lambda: _user(org, rng),
    }[what]()
    c.update(org, o.TASK, task["id"], {what: value}, user_id=_user(org, rng))
    return f"task {task['id']}: {what}"


def _complete_task(org: FakeOrg, rng: random.Random) -> str | None:
    task = _pick(rng, _lead_tasks(org))
    if task is None:
        return None
    done = not task.get("is_complete")
    c.update(org, o.TASK, task["id"], is_complete=done, user_id=_user(org, rng))
    return f"task {task['id']}: {'completed' if done else 'reopened'}"


# -- activities ---------------------------------------------------------------------------------


def _create_activity(org: FakeOrg, rng: random.Random) -> str | None:
    lead = _lead(org, rng)
    if lead is None:
        return None
    type_ = rng.choice(_NEW_ACTIVITY_TYPES)
    body: dict[str, Any] = {"_type": type_, "lead_id": lead["id"]}
    if type_ == "Email":
        threads = [
            a
            for a in org.children(o.ACTIVITY, "lead_id", lead["id"])
            if a["_type"] == "EmailThread"
        ]
        if not threads:
            type_ = body["_type"] = "Note"
        else:
            body["thread_id"] = rng.choice(threads)["id"]
    template = _pick(rng, _activities(org, type_))
    if template is not None:
        body.update({
            k: val for k, val in template.items()
            if k not in _CLONE_SKIP and not k.startswith("custom.")
        })  # fmt: skip
    body["_type"] = type_
    contacts = org.children(o.CONTACT, "lead_id", lead["id"])
    body["contact_id"] = rng.choice(contacts)["id"] if contacts and rng.random() < 0.5 else None
    body["user_id"] = _user(org, rng)
    text = _sentence(rng, 6)
    if type_ in ("Note", "Call"):
        body["note"] = text
    elif type_ == "SMS":
        body["text"] = text
    elif type_ == "Email":
        body.update({"subject": "Re: " + rng.choice(_WORDS), "body_text": text, "status": "draft"})
    elif type_ == "CustomActivity":
        if not body.get("custom_activity_type_id"):
            return None
        for field in _fields_for(org, o.ACTIVITY, body):
            value = _value(org, rng, field, lead["id"])
            if value is not None and (field.get("required") or rng.random() < 0.6):
                body[f"custom.{field['id']}"] = value
    act = c.create(org, o.ACTIVITY, body, user_id=body["user_id"])
    return f"activity {act['id']} ({type_}) on {lead['id']}"


# Activity types `update_activity` edits, with the key it changes; those it may delete.
_EDITABLE = {"Note": "note", "Call": "note", "SMS": "text", "Email": "subject", "Meeting": "note"}
_DELETABLE = frozenset({"Note", "Call", "SMS", "Email", "Meeting", "CustomActivity",
                        "EmailThread"})  # fmt: skip


def _editable(org: FakeOrg, act: dict[str, Any]) -> bool:
    return act["_type"] in _EDITABLE


def _deletable(org: FakeOrg, act: dict[str, Any]) -> bool:
    return act["_type"] in _DELETABLE


def _update_activity(org: FakeOrg, rng: random.Random) -> str | None:
    act = _pick(rng, org.ranked(o.ACTIVITY, _editable))
    if act is None:
        return None
    key = _EDITABLE[act["_type"]]
    c.update(org, o.ACTIVITY, act["id"], {key: _sentence(rng, 4)}, user_id=_user(org, rng))
    return f"activity {act['id']} ({act['_type']}): {key}"


def _delete_activity(org: FakeOrg, rng: random.Random) -> str | None:
    act = _pick(rng, org.ranked(o.ACTIVITY, _deletable))
    if act is None:
        return None
    c.delete(org, o.ACTIVITY, act["id"], user_id=_user(org, rng))
    return f"activity {act['id']} ({act['_type']})"


# -- repeated updates, sequence subscriptions -----------------------------------------------------


def _repeat_update(org: FakeOrg, rng: random.Random) -> str | None:
    """The same user edits one lead twice in a row: one consolidated event."""
    lead = _lead(org, rng)
    if lead is None:
        return None
    user = _user(org, rng)
    for _ in range(2):
        c.update(org, o.LEAD, lead["id"], description=_sentence(rng), user_id=user)
    return f"lead {lead['id']}: description twice"


def _unsubscribed(org: FakeOrg, contact: dict[str, Any]) -> bool:
    """A contact with an email address and no sequence subscription."""
    return bool(contact.get("emails")) and not org.children(
        o.SEQUENCE_SUBSCRIPTION, "contact_id", contact["id"]
    )


def _subscribe(org: FakeOrg, rng: random.Random) -> str | None:
    """A contact with an email address, in no sequence yet, is subscribed to one."""
    sequences = org.all(o.SEQUENCE)
    contacts = org.ranked(o.CONTACT, _unsubscribed, watch=(o.SEQUENCE_SUBSCRIPTION, "contact_id"))
    if not sequences or not contacts:
        return None
    contact, sequence = rng.choice(contacts), rng.choice(sequences)
    sender = _pick(rng, org.ranked(o.SEQUENCE_SUBSCRIPTION))  # the sender fields of another
    body = {"sequence_id": sequence["id"], "contact_id": contact["id"],
            "contact_email": contact["emails"][0]["email"], "status": "active"}
    if sender is not None:
        body.update({k: sender[k] for k in ("sender_account_id", "sender_name", "sender_email")
                     if k in sender})
    sub = c.create(org, o.SEQUENCE_SUBSCRIPTION, body, user_id=_user(org, rng))
    return f"subscription {sub['id']}"


def _update_subscription(org: FakeOrg, rng: random.Random) -> str | None:
    sub = _pick(rng, org.ranked(o.SEQUENCE_SUBSCRIPTION))
    if sub is None:
        return None
    status = rng.choice([s for s in ("active", "paused", "finished") if s != sub.get("status")])
    c.update(org, o.SEQUENCE_SUBSCRIPTION, sub["id"], status=status, user_id=_user(org, rng))
    return f"subscription {sub['id']}: {status}"
