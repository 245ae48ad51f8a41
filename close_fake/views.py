"""Turn stored objects into API response objects.

This is where nested lists are assembled from their own collections (a lead's contacts,
opportunities and tasks; a thread's emails; a pipeline's statuses; an organisation's
memberships...) and where `_fields` projection happens. Assembly is skipped when `_fields`
does not ask for the nested key, which keeps big listings cheap.
"""

from __future__ import annotations

from typing import Any

from . import org as o
from .org import FakeOrg

Fields = frozenset[str] | None

# Fields on a stored user that only `/me/` shows (Close API: Users).
_ME_ONLY = ("last_used_timezone",)
# Keys dropped from emails nested in a thread ("stripped-down" Email objects; Close API:
# Activities, Email Threads).
_EMAIL_HEAVY = ("body_text", "body_html", "body_text_quoted")


def parse_fields(value: str | None) -> Fields:
    """`_fields=a,b,custom` -> frozenset, or None when absent/empty."""
    if value is None:
        return None
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    return names or None


def wants(fields: Fields, key: str) -> bool:
    return fields is None or key in fields or "_all" in fields


def project(obj: dict[str, Any], fields: Fields) -> dict[str, Any]:
    """Keep only the requested keys. `custom` means every `custom.*` key; `custom.<id>`
    picks one; `_all` keeps everything (the fake has no smart fields)."""
    if fields is None or "_all" in fields:
        return obj
    all_custom = "custom" in fields
    return {
        k: v for k, v in obj.items()
        if k in fields or (all_custom and k.startswith("custom."))
    }  # fmt: skip


# -- CRM core ------------------------------------------------------------------------------------


def render_contact(
    org: FakeOrg, contact: dict[str, Any], fields: Fields = None, *, with_lead_id: bool = True
) -> dict[str, Any]:
    """A contact. The list sample (Close API: Contacts) and the contacts nested in a lead
    (Close API: Leads) carry no `lead_id` while the single-contact sample does: callers pass
    `with_lead_id=False` for lists, and `lead_id` then appears only if `_fields` names it."""
    out = contact
    if not with_lead_id and not (fields and "lead_id" in fields):
        out = {k: v for k, v in contact.items() if k != "lead_id"}
    return project(out, fields)


def render_lead(org: FakeOrg, lead: dict[str, Any], fields: Fields = None) -> dict[str, Any]:
    """A lead with its nested `contacts`, `opportunities`, `tasks` and `contact_ids`
    assembled from their own collections (as in the 001 sample)."""
    out: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for k, v in lead.items():
        (custom if k.startswith("custom.") else out)[k] = v
    lead_id = lead["id"]
    if wants(fields, "contacts") or wants(fields, "contact_ids"):
        contacts = org.children(o.CONTACT, "lead_id", lead_id)
        if wants(fields, "contact_ids"):
            out["contact_ids"] = [c["id"] for c in contacts]
        if wants(fields, "contacts"):
            out["contacts"] = [render_contact(org, c, with_lead_id=False) for c in contacts]
    if wants(fields, "opportunities"):
        out["opportunities"] = list(org.children(o.OPPORTUNITY, "lead_id", lead_id))
    if wants(fields, "tasks"):
        # The lead's related tasks (Close API: Leads): every task type whose lead_id is this lead.
        out["tasks"] = list(org.children(o.TASK, "lead_id", lead_id))
    out.update(custom)
    return project(out, fields)


def render_user(user: dict[str, Any], fields: Fields = None) -> dict[str, Any]:
    return project({k: v for k, v in user.items() if k not in _ME_ONLY}, fields)


def render_pipeline(org: FakeOrg, pipe: dict[str, Any], fields: Fields = None) -> dict:
    """A pipeline with `statuses[]` in status order (Close API: Pipelines)."""
    out = dict(pipe)
    statuses = org.children(o.OPPORTUNITY_STATUS, "pipeline_id", pipe["id"])
    out["statuses"] = [{"id": s["id"], "label": s["label"], "type": s["type"]} for s in statuses]
    # Keep the sample's key order: statuses right after name.
    ordered = {"id": out.pop("id"), "name": out.pop("name"), "statuses": out.pop("statuses")}
    ordered.update(out)
    return project(ordered, fields)


def _lead_statuses(org: FakeOrg) -> list[dict[str, Any]]:
    return [{"id": s["id"], "label": s["label"]} for s in org.all(o.LEAD_STATUS)]


def _membership(org: FakeOrg, member: dict[str, Any], expand: bool) -> dict[str, Any]:
    """A membership as the organisation shows it: user data prefixed with `user_`, or a
    nested `user` object with `_expand` (Close API: Organizations; user_id is kept either way)."""
    user = org.get(o.USER, member["user_id"]) or {}
    phone = next(
        (
            p["number"]
            for p in org.children(o.PHONE_NUMBER, "user_id", user.get("id"))
            if p.get("type") == "internal"
        ),
        None,
    )
    out: dict[str, Any] = {"user_id": member["user_id"]}
    if expand:
        out["user"] = render_user(user) if user else None
    else:
        out.update({
            "user_phone": phone.lstrip("+") if phone else None,
            "user_first_name": user.get("first_name"),
            "user_full_name": org.user_name(member["user_id"]),
            "user_last_name": user.get("last_name"),
            "user_email": user.get("email"),
        })  # fmt: skip
    for k in ("track_email_opens", "role_id", "permissions_granted", "id", "record_calls"):
        out[k] = member.get(k)
    return out


def render_organization(
    org: FakeOrg, expand: frozenset[str] = frozenset(), fields: Fields = None
) -> dict[str, Any]:
    info = org.info or {"id": org.organization_id, "name": org.name}
    out: dict[str, Any] = {
        "id": info.get("id", org.organization_id),
        "name": info.get("name", org.name),
        "lead_statuses": _lead_statuses(org),
        "pipelines": [render_pipeline(org, p) for p in org.all(o.PIPELINE)],
        "memberships": [
            _membership(org, m, "memberships__user" in expand) for m in org.all(o.MEMBERSHIP)
        ],
        "inactive_memberships": [
            _membership(org, m, "inactive_memberships__user" in expand)
            for m in org.all(o.INACTIVE_MEMBERSHIP)
        ],
    }
    for k, v in info.items():
        out.setdefault(k, v)
    return project(out, fields)


def render_me(org: FakeOrg, user_id: str, fields: Fields = None) -> dict[str, Any]:
    """`/me/`: the user plus memberships, organisations, email accounts and phone numbers
    (Close API: Users, Fetch information about yourself)."""
    user = dict(org.get(o.USER, user_id) or {})
    user.pop("organizations", None)
    info = org.info or {}
    user["memberships"] = [
        {k: m[k] for k in ("id", "organization_id", "user_id", "role_id", "track_email_opens",
                           "record_calls", "permissions_granted")}
        for m in org.children(o.MEMBERSHIP, "user_id", user_id)
    ]  # fmt: skip
    user["organizations"] = [{
        "id": org.organization_id, "name": info.get("name", org.name),
        "lead_statuses": _lead_statuses(org),
        "pipelines": [render_pipeline(org, p) for p in org.all(o.PIPELINE)],
        "date_updated": info.get("date_updated"), "date_created": info.get("date_created"),
        "created_by": info.get("created_by"), "updated_by": info.get("updated_by"),
    }]  # fmt: skip
    user["email_accounts"] = [
        {k: a.get(k) for k in ("id", "organization_id", "user_id", "identities", "_type")}
        for a in org.children(o.CONNECTED_ACCOUNT, "user_id", user_id)
        if a["_type"] in ("google", "custom_email", "microsoft")
    ]  # fmt: skip
    user["phone_numbers"] = [
        {k: p.get(k) for k in ("id", "organization_id", "number", "date_updated", "date_created")}
        for p in org.children(o.PHONE_NUMBER, "user_id", user_id)
    ]  # fmt: skip
    return project(user, fields)


def render_group(group: dict[str, Any], fields: Fields, *, single: bool) -> dict[str, Any]:
    """Groups return `members` only from the single-group endpoint and only when `_fields`
    asks for them; the list endpoint never does (Close API: Groups)."""
    out = {"id": group["id"], "name": group["name"], "organization_id": group["organization_id"]}
    if single and fields and "members" in fields:
        out["members"] = [dict(m) for m in group.get("members", [])]
    if fields:
        keep = set(fields) | {"id"}
        out = {k: v for k, v in out.items() if k in keep}
    return out


# -- activities ----------------------------------------------------------------------------------


def render_thread(org: FakeOrg, thread: dict[str, Any], fields: Fields = None) -> dict:
    """An EmailThread with `emails[]` (stripped-down, newest first), `n_emails`,
    `participants` and `latest_normalized_subject` derived from the thread's emails."""
    out = dict(thread)
    if any(
        wants(fields, k)
        for k in ("emails", "n_emails", "participants", "latest_normalized_subject")
    ):
        emails = sorted(
            org.children(o.ACTIVITY, "thread_id", thread["id"]),
            key=lambda e: (e["date_created"], e["id"]),
            reverse=True,
        )
        out["emails"] = [strip_email(e) for e in emails]
        out["n_emails"] = len(emails)
        seen: dict[str, dict] = {}
        for e in emails:
            env = e.get("envelope") or {}
            for who in (env.get("from") or []) + (env.get("to") or []):
                seen.setdefault(who["email"], {"email": who["email"], "name": who.get("name")})
        out["participants"] = list(seen.values())
        subject = emails[0].get("subject", "") if emails else ""
        while subject.lower().startswith(("re: ", "fwd: ")):
            subject = subject.split(": ", 1)[1]
        out["latest_normalized_subject"] = subject
    return project(out, fields)


def strip_email(email: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in email.items() if k not in _EMAIL_HEAVY}


def render_activity(org: FakeOrg, act: dict[str, Any], fields: Fields = None) -> dict:
    if act["_type"] == "EmailThread":
        return render_thread(org, act, fields)
    return project(act, fields)


# -- configuration -------------------------------------------------------------------------------


def render_custom_activity_type(
    org: FakeOrg, type_: dict[str, Any], fields: Fields = None
) -> dict[str, Any]:
    """A custom activity type with `fields[]` metadata from its activity custom fields."""
    out = dict(type_)
    out["fields"] = [
        {"accepts_multiple_values": f["accepts_multiple_values"],
         "converting_to_type": f.get("converting_to_type"),
         "description": f.get("description"),
         "editable_with_roles": f.get("editable_with_roles", []),
         "id": f["id"], "name": f["name"], "required": f.get("required", False),
         "type": f["type"]}
        for f in org.children(o.CUSTOM_FIELD_ACTIVITY, "custom_activity_type_id", type_["id"])
    ]  # fmt: skip
    return project(dict(sorted(out.items())), fields)


def render_email_template(
    org: FakeOrg, tmpl: dict[str, Any], fields: Fields = None, *, single: bool = False
) -> dict[str, Any]:
    """`used_by_sequences` is shown only when fetching one template (Close API: Email Templates)."""
    out = dict(tmpl)
    if single:
        out["used_by_sequences"] = [
            {"id": s["id"], "name": s["name"]} for s in org.all(o.SEQUENCE)
            if any(step.get("email_template_id") == tmpl["id"] for step in s.get("steps", []))
        ]  # fmt: skip
    return project(out, fields)


def render_sequence(
    org: FakeOrg, seq: dict[str, Any], fields: Fields = None, *, single: bool = False
) -> dict[str, Any]:
    """`subscription_counts_by_status` is shown only when fetching one sequence."""
    out = dict(seq)
    if single:
        counts: dict[str, int] = {}
        for sub in org.children(o.SEQUENCE_SUBSCRIPTION, "sequence_id", seq["id"]):
            counts[sub["status"]] = counts.get(sub["status"], 0) + 1
        out["subscription_counts_by_status"] = counts
    return project(out, fields)


SCHEMA_TYPES = {
    "lead": o.CUSTOM_FIELD_LEAD,
    "contact": o.CUSTOM_FIELD_CONTACT,
    "opportunity": o.CUSTOM_FIELD_OPPORTUNITY,
}


def render_schema(org: FakeOrg, object_type: str) -> dict[str, Any]:
    """`/custom_field_schema/<type>/` (TOC-only in the docs; our plausible shape):
    `{"fields": [...]}` with every field that applies to the object type, its own fields
    first, then the shared fields associated with it, each flagged with `is_shared`."""
    fields = [dict(f, is_shared=False) for f in org.all(SCHEMA_TYPES[object_type])]
    for f in org.all(o.CUSTOM_FIELD_SHARED):
        if any(a.get("object_type") == object_type for a in f.get("associations", [])):
            fields.append(dict(f, is_shared=True))
    return {"fields": fields}
