"""Random rounds of changes for randomized tests and benchmarks (`random_changes`).

Each change goes through `changes.py` / `mutations.py`, so it emits the events Close
would log. Deterministic: the same organisation (same history) and the same
`random.Random` state give the same changes, ids and, with a frozen clock, timestamps.

    import random
    from close_fake import generate_org, random_changes

    org = generate_org(seed=7, leads=20)
    done = random_changes(org, random.Random(7), 50)  # ["update_lead lead lead_…: name", ...]
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from . import changes as c
from . import mutations as m
from . import org as o
from .org import FakeOrg

# Relative weights of the kinds of change. Off by default (weight 0, so the default random
# sequences stay as they were): `rename_status` (a lead status's label), `rename_user`,
# `rename_pipeline`, `rename_sequence`, `rename_template` (an email template),
# `rename_contact`, whose names are copied onto other objects and follow silently (see
# `EventLog.labels`); `delete_field`, `retype_field` (a change of type or of
# `accepts_multiple_values` that changes the field's column type, values converted by
# `mutations.update_field`) and `rename_choice`, which change custom values without events.
DEFAULT_WEIGHTS: dict[str, float] = {
    "create_lead": 3,
    "update_lead": 6,
    "delete_lead": 1,
    "merge_leads": 1,
    "create_contact": 3,
    "update_contact": 4,
    "delete_contact": 1,
    "create_opportunity": 2,
    "update_opportunity": 4,
    "delete_opportunity": 1,
    "create_task": 2,
    "update_task": 2,
    "complete_task": 2,
    "delete_task": 1,
    "create_activity": 4,
    "update_activity": 4,
    "delete_activity": 1,
    "set_custom": 4,
    "clear_custom": 2,
    "add_field": 1,
    "rename_field": 1,
    "repeat_update": 2,
    "rename_status": 0,
    "subscribe": 1,
    "update_subscription": 1,
    "rename_user": 0,
    "rename_pipeline": 0,
    "rename_sequence": 0,
    "rename_template": 0,
    "rename_contact": 0,
    "delete_field": 0,
    "retype_field": 0,
    "rename_choice": 0,
}
MIN_LEADS = 3  # deletes and merges keep at least this many leads
# One kind of change: applies itself and describes it, or None when it does not apply.
Change = Callable[[FakeOrg, random.Random], str | None]

_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "north", "south", "prime", "nova", "apex")
_COMPANY = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Wonka", "Stark", "Tyrell")
_SUFFIX = ("Inc", "GmbH", "Labs", "Partners", "& Co", "S.A.")
_PEOPLE = ("Ann Lee", "Bo Chen", "Chloé Roux", "Dario Rossi", "Eve Adams", "Jürgen Weiß", "")
_TITLES = ("CEO", "CTO", "VP Sales", "Buyer", "", None)
_CITIES = (("Gotham", "NJ", "US"), ("Berlin", "BE", "DE"), ("Osaka", "27", "JP"))
_FIELD_TYPES = ("text", "number", "date", "datetime", "choices", "user", "textarea")
_FIRST_NAMES = ("Ada", "Bruno", "Carla", "Dmitri", "Elif", "Femi", "Greta", "Hiro", "Inès")
_LAST_NAMES = ("Ng", "Okoro", "Petrov", "Quinn", "Rossi", "Sato", "Tan", "Ueda", "Varga")
# Field kinds that hold values (`delete_field`, `retype_field`) and the collection of each.
_VALUE_KINDS: dict[str, str] = {
    "lead": o.LEAD, "contact": o.CONTACT, "opportunity": o.OPPORTUNITY, "activity": o.ACTIVITY,
}  # fmt: skip
_NEW_ACTIVITY_TYPES = ("Note", "Call", "SMS", "Email", "CustomActivity")
# Keys a cloned activity does not take from its template.
_CLONE_SKIP = frozenset({
    "id", "lead_id", "contact_id", "user_id", "user_name", "organization_id", "created_by",
    "created_by_name", "updated_by", "updated_by_name", "date_created", "date_updated",
    "thread_id", "task_id", "opportunity_id",
})  # fmt: skip


def random_changes(
    org: FakeOrg,
    rng: random.Random,
    n: int,
    *,
    weights: Mapping[str, float] | None = None,
    step: timedelta | None = None,
) -> list[str]:
    """Apply `n` random changes (a mix of creates, updates incl. cleared custom values and
    edited activities, deletes, merges, custom field additions and renames; `weights`
    overrides `DEFAULT_WEIGHTS` per kind) and return one description per change.
    `step`: advance the organisation's clock by that much before each change."""
    table = dict(DEFAULT_WEIGHTS)
    if weights:
        unknown = set(weights) - set(table)
        if unknown:
            raise ValueError(f"Unknown kinds of change: {sorted(unknown)}.")
        table.update(weights)
    kinds = [k for k, w in table.items() if w > 0]
    if not kinds:
        raise ValueError("No kind of change has a positive weight.")
    shares = [table[k] for k in kinds]
    out: list[str] = []
    while len(out) < n:
        if step is not None:
            org.advance(step)
        for _ in range(20):  # a kind may not apply (nothing to delete ...): pick again
            kind = rng.choices(kinds, shares)[0]
            done = _KINDS[kind](org, rng)
            if done is not None:
                out.append(f"{kind} {done}")
                break
        else:
            raise RuntimeError("No applicable change found in 20 tries.")
    return out


# -- helpers -----------------------------------------------------------------------------------


def _users(org: FakeOrg) -> list[str]:
    return [mb["user_id"] for mb in org.all(o.MEMBERSHIP)]


def _user(org: FakeOrg, rng: random.Random) -> str:
    users = _users(org)
    return rng.choice(users) if users else org.admin_user_id


def _pick(rng: random.Random, items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return rng.choice(items) if items else None


def _lead(org: FakeOrg, rng: random.Random) -> dict[str, Any] | None:
    return _pick(rng, org.all(o.LEAD))


def _sentence(rng: random.Random, k: int = 5) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(k)).capitalize() + "."


def _fields_for(org: FakeOrg, collection: str, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The custom field definitions that take values on `obj`."""
    if collection == o.ACTIVITY:
        type_id = obj.get("custom_activity_type_id")
        if obj.get("_type") != "CustomActivity" or not type_id:
            return []
        return list(org.children(o.CUSTOM_FIELD_ACTIVITY, "custom_activity_type_id", type_id))
    own = {o.LEAD: o.CUSTOM_FIELD_LEAD, o.CONTACT: o.CUSTOM_FIELD_CONTACT}
    own[o.OPPORTUNITY] = o.CUSTOM_FIELD_OPPORTUNITY
    shared = [
        f
        for f in org.all(o.CUSTOM_FIELD_SHARED)
        if any(m.SHARED_OBJECT_TYPES.get(a["object_type"]) == collection for a in f["associations"])
    ]
    return org.all(own[collection]) + shared


def _value(org: FakeOrg, rng: random.Random, field: dict[str, Any], lead_id: str | None) -> Any:
    """A random valid value of a custom field (None when there is none, e.g. no contacts)."""
    t, multi = field["type"], bool(field.get("accepts_multiple_values"))
    if t in ("text", "textarea"):
        return _sentence(rng, 3 if t == "text" else 9)
    if t == "number":
        return rng.choice((rng.randint(0, 10_000), round(rng.uniform(0, 1000), 2)))
    if t == "date":
        return f"202{rng.randint(4, 7)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if t == "datetime":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:30:00+02:00"
    if t == "choices":
        choices = field.get("choices") or []
        if not choices:
            return None
        if multi:
            return rng.sample(choices, rng.randint(1, min(2, len(choices))))
        return rng.choice(choices)
    if t == "user":
        users = _users(org)
        return rng.sample(users, min(2, len(users))) if multi else rng.choice(users)
    if t == "contact":
        contacts = [x["id"] for x in org.children(o.CONTACT, "lead_id", lead_id)] if lead_id else []
        if not contacts:
            return None
        return [rng.choice(contacts)] if multi else rng.choice(contacts)
    return f"hidden-{rng.getrandbits(24):06x}"


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
    source, dest = rng.sample(org.all(o.LEAD), 2)
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
    contact = _pick(rng, org.all(o.CONTACT))
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
        obj = _pick(rng, org.all(collection))
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
    opp = _pick(rng, org.all(o.OPPORTUNITY))
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


def _lead_tasks(org: FakeOrg) -> list[dict[str, Any]]:
    return [t for t in org.all(o.TASK) if t["_type"] == "lead" and t.get("lead_id")]


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
    template = _pick(rng, org.activities(type_))
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


def _update_activity(org: FakeOrg, rng: random.Random) -> str | None:
    editable = {
        "Note": "note",
        "Call": "note",
        "SMS": "text",
        "Email": "subject",
        "Meeting": "note",
    }
    acts = [a for a in org.all(o.ACTIVITY) if a["_type"] in editable]
    act = _pick(rng, acts)
    if act is None:
        return None
    key = editable[act["_type"]]
    c.update(org, o.ACTIVITY, act["id"], {key: _sentence(rng, 4)}, user_id=_user(org, rng))
    return f"activity {act['id']} ({act['_type']}): {key}"


def _delete_activity(org: FakeOrg, rng: random.Random) -> str | None:
    deletable = ("Note", "Call", "SMS", "Email", "Meeting", "CustomActivity", "EmailThread")
    act = _pick(rng, [a for a in org.all(o.ACTIVITY) if a["_type"] in deletable])
    if act is None:
        return None
    c.delete(org, o.ACTIVITY, act["id"], user_id=_user(org, rng))
    return f"activity {act['id']} ({act['_type']})"


# -- custom values and fields -------------------------------------------------------------------


def _custom_target(org: FakeOrg, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    collection = rng.choice((o.LEAD, o.LEAD, o.CONTACT, o.OPPORTUNITY, o.ACTIVITY))
    if collection == o.ACTIVITY:
        obj = _pick(rng, org.activities("CustomActivity"))
    else:
        obj = _pick(rng, org.all(collection))
    return (collection, obj) if obj is not None else None


def _set_custom(org: FakeOrg, rng: random.Random) -> str | None:
    target = _custom_target(org, rng)
    if target is None:
        return None
    collection, obj = target
    field = _pick(rng, _fields_for(org, collection, obj))
    if field is None:
        return None
    value = _value(org, rng, field, obj["id"] if collection == o.LEAD else obj.get("lead_id"))
    if value is None:
        return None
    key = f"custom.{field['id']}"
    c.update(org, collection, obj["id"], {key: value}, user_id=_user(org, rng))
    return f"{collection} {obj['id']}: set {key}"


def _clear_custom(org: FakeOrg, rng: random.Random) -> str | None:
    target = _custom_target(org, rng)
    if target is None:
        return None
    collection, obj = target
    keys = sorted(k for k in obj if k.startswith("custom."))
    if collection == o.ACTIVITY:
        required = {f["id"] for f in _fields_for(org, o.ACTIVITY, obj) if f.get("required")}
        keys = [k for k in keys if k[len("custom.") :] not in required]
    if not keys:
        return None
    key = rng.choice(keys)
    c.update(org, collection, obj["id"], {key: None}, user_id=_user(org, rng))
    return f"{collection} {obj['id']}: cleared {key}"


def _add_field(org: FakeOrg, rng: random.Random) -> str | None:
    kind = rng.choice(("lead", "lead", "contact", "opportunity"))
    type_ = rng.choice(_FIELD_TYPES)
    n = sum(org.count(coll) for coll in m.FIELD_COLLECTIONS.values())
    options: dict[str, Any] = {}
    if type_ == "choices":
        options["choices"] = rng.sample(_WORDS, 3)
        options["multi"] = rng.random() < 0.3
    field = m.add_field(org, kind, f"Churn {type_} {n}", type_, user_id=_user(org, rng), **options)
    return f"{kind} field {field['id']} ({type_})"


def _rename_field(org: FakeOrg, rng: random.Random) -> str | None:
    fields = [f for coll in m.FIELD_COLLECTIONS.values() for f in org.all(coll)]
    field = _pick(rng, fields)
    if field is None:
        return None
    base = field["name"].split(" ~")[0]
    m.rename_field(org, field["id"], f"{base} ~{rng.randint(1, 9999)}", user_id=_user(org, rng))
    return f"field {field['id']}"


def _repeat_update(org: FakeOrg, rng: random.Random) -> str | None:
    """The same user edits one lead twice in a row: one consolidated event."""
    lead = _lead(org, rng)
    if lead is None:
        return None
    user = _user(org, rng)
    for _ in range(2):
        c.update(org, o.LEAD, lead["id"], description=_sentence(rng), user_id=user)
    return f"lead {lead['id']}: description twice"


def _subscribe(org: FakeOrg, rng: random.Random) -> str | None:
    """A contact with an email address, in no sequence yet, is subscribed to one."""
    sequences = org.all(o.SEQUENCE)
    contacts = [x for x in org.all(o.CONTACT) if x.get("emails")
                and not org.children(o.SEQUENCE_SUBSCRIPTION, "contact_id", x["id"])]
    if not sequences or not contacts:
        return None
    contact, sequence = rng.choice(contacts), rng.choice(sequences)
    sender = _pick(rng, org.all(o.SEQUENCE_SUBSCRIPTION))  # the sender fields of another one
    body = {"sequence_id": sequence["id"], "contact_id": contact["id"],
            "contact_email": contact["emails"][0]["email"], "status": "active"}
    if sender is not None:
        body.update({k: sender[k] for k in ("sender_account_id", "sender_name", "sender_email")
                     if k in sender})
    sub = c.create(org, o.SEQUENCE_SUBSCRIPTION, body, user_id=_user(org, rng))
    return f"subscription {sub['id']}"


def _update_subscription(org: FakeOrg, rng: random.Random) -> str | None:
    sub = _pick(rng, org.all(o.SEQUENCE_SUBSCRIPTION))
    if sub is None:
        return None
    status = rng.choice([s for s in ("active", "paused", "finished") if s != sub.get("status")])
    c.update(org, o.SEQUENCE_SUBSCRIPTION, sub["id"], status=status, user_id=_user(org, rng))
    return f"subscription {sub['id']}: {status}"


def _rename_status(org: FakeOrg, rng: random.Random) -> str | None:
    status = _pick(rng, org.all(o.LEAD_STATUS))
    if status is None:
        return None
    label = status["label"].split(" ~")[0] + f" ~{rng.randint(1, 999)}"
    c.update(org, o.LEAD_STATUS, status["id"], label=label, user_id=_user(org, rng))
    return f"lead status {status['id']}"


def _renamed(rng: random.Random, old: str) -> str:
    """`old` with a new ` ~N` suffix (never the same text)."""
    base = old.split(" ~")[0]
    while True:
        name = f"{base} ~{rng.randint(1, 999)}"
        if name != old:
            return name


def _rename_user(org: FakeOrg, rng: random.Random) -> str | None:
    """A user (active or former member) gets a new full name, unique in the organisation
    (user custom fields map exact names to users [003:4283-4285])."""
    user = _pick(rng, org.all(o.USER))
    if user is None:
        return None
    taken = {org.user_name(u["id"]) for u in org.all(o.USER)}
    for _ in range(50):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        if f"{first} {last}" not in taken:
            break
    else:
        last = _renamed(rng, last)
    c.rename_user(org, user["id"], first, last, user_id=_user(org, rng))
    return f"user {user['id']}"


def _rename_named(collection: str, rename: Callable[..., dict[str, Any]], what: str) -> Change:
    """A pipeline, sequence or email template gets a new `name` (` ~N` suffix)."""

    def run(org: FakeOrg, rng: random.Random) -> str | None:
        obj = _pick(rng, org.all(collection))
        if obj is None:
            return None
        rename(org, obj["id"], _renamed(rng, obj.get("name") or what), user_id=_user(org, rng))
        return f"{what} {obj['id']}"

    return run


def _rename_contact(org: FakeOrg, rng: random.Random) -> str | None:
    contact = _pick(rng, org.all(o.CONTACT))
    if contact is None:
        return None
    people = [p for p in _PEOPLE if p and p != contact.get("name")]
    name = rng.choice(people) + rng.choice(("", " Jr.", " Sr."))
    if name == contact.get("name"):
        name = _renamed(rng, name)
    c.rename_contact(org, contact["id"], name, user_id=_user(org, rng))
    return f"contact {contact['id']}"


def _deletable_fields(org: FakeOrg, kind: str) -> list[dict[str, Any]]:
    """Fields of a kind whose deletion leaves at least one field of that kind (for activity
    fields: of that custom activity type), so custom values stay in play."""
    fields = org.all(m.FIELD_COLLECTIONS[kind])
    if kind != "activity":
        return fields if len(fields) > 1 else []
    per_type: dict[Any, int] = {}
    for f in fields:
        per_type[f["custom_activity_type_id"]] = per_type.get(f["custom_activity_type_id"], 0) + 1
    return [f for f in fields if per_type[f["custom_activity_type_id"]] > 1]


def _delete_field(org: FakeOrg, rng: random.Random) -> str | None:
    kind = rng.choice(tuple(_VALUE_KINDS))
    field = _pick(rng, _deletable_fields(org, kind))
    if field is None:
        return None
    m.delete_field(org, field["id"])
    return f"{kind} field {field['id']} ({field['type']})"


def _column(type_: str, multi: bool) -> str:
    """The kind of column a field's values need: a list, a number, a date, a datetime or
    text (text, textarea, choices, user, contact, hidden)."""
    if multi:
        return "list"
    return type_ if type_ in ("number", "date", "datetime") else "text"


def _texts(org: FakeOrg, kind: str, field_id: str) -> list[str]:
    """The text forms of a field's current values, sorted (choices that keep some)."""
    key, found = f"custom.{field_id}", set()
    for obj in org.collections[_VALUE_KINDS[kind]].values():
        if key in obj:
            values = obj[key] if isinstance(obj[key], list) else [obj[key]]
            found.update(str(v) for v in values if isinstance(v, str | int) and str(v))
    return sorted(found)


def _retype_field(org: FakeOrg, rng: random.Random) -> str | None:
    """A new type or `accepts_multiple_values` whose column differs; values are converted
    as `mutations.update_field` does (invalid ones go). Required activity fields and running
    conversions are left alone."""
    kind = rng.choice(tuple(_VALUE_KINDS))
    fields = [
        f for f in org.all(m.FIELD_COLLECTIONS[kind])
        if not f.get("required") and "converting_to_type" not in f
    ]  # fmt: skip
    field = _pick(rng, fields)
    if field is None:
        return None
    now = _column(field["type"], bool(field["accepts_multiple_values"]))
    targets = [
        (t, multi) for t in m.FIELD_TYPES for multi in (False, True)
        if (not multi or t in m.MULTI_TYPES) and _column(t, multi) != now
    ]  # fmt: skip
    type_, multi = rng.choice(targets)
    options: dict[str, Any] = {"type_": type_, "multi": multi}
    if type_ == "choices" and field["type"] != "choices":
        texts = _texts(org, kind, field["id"])
        kept = rng.sample(texts, min(2, len(texts)))
        options["choices"] = kept + [w for w in rng.sample(_WORDS, 3) if w not in kept]
    m.update_field(org, field["id"], user_id=_user(org, rng), **options)
    was = f"{field['type']}{'[]' if field['accepts_multiple_values'] else ''}"
    return f"{kind} field {field['id']}: {was} -> {type_}{'[]' if multi else ''}"


def _rename_choice(org: FakeOrg, rng: random.Random) -> str | None:
    fields = [
        f for coll in m.FIELD_COLLECTIONS.values() for f in org.all(coll)
        if f["type"] == "choices" and f.get("choices")
    ]  # fmt: skip
    field = _pick(rng, fields)
    if field is None:
        return None
    old = rng.choice(field["choices"])
    new = _renamed(rng, old)
    while new in field["choices"]:
        new = _renamed(rng, new)
    m.rename_choice(org, field["id"], old, new, user_id=_user(org, rng))
    return f"field {field['id']}: {old!r} -> {new!r}"


_KINDS: dict[str, Change] = {
    "create_lead": _create_lead,
    "update_lead": _update_lead,
    "delete_lead": _delete_lead,
    "merge_leads": _merge_leads,
    "create_contact": _create_contact,
    "update_contact": _update_contact,
    "delete_contact": _delete_of(o.CONTACT),
    "create_opportunity": _create_opportunity,
    "update_opportunity": _update_opportunity,
    "delete_opportunity": _delete_of(o.OPPORTUNITY),
    "create_task": _create_task,
    "update_task": _update_task,
    "complete_task": _complete_task,
    "delete_task": _delete_of(o.TASK),
    "create_activity": _create_activity,
    "update_activity": _update_activity,
    "delete_activity": _delete_activity,
    "set_custom": _set_custom,
    "clear_custom": _clear_custom,
    "add_field": _add_field,
    "rename_field": _rename_field,
    "repeat_update": _repeat_update,
    "rename_status": _rename_status,
    "subscribe": _subscribe,
    "update_subscription": _update_subscription,
    "rename_user": _rename_user,
    "rename_pipeline": _rename_named(o.PIPELINE, c.rename_pipeline, "pipeline"),
    "rename_sequence": _rename_named(o.SEQUENCE, c.rename_sequence, "sequence"),
    "rename_template": _rename_named(o.EMAIL_TEMPLATE, c.rename_email_template, "template"),
    "rename_contact": _rename_contact,
    "delete_field": _delete_field,
    "retype_field": _retype_field,
    "rename_choice": _rename_choice,
}
assert set(_KINDS) == set(DEFAULT_WEIGHTS)
