"""Seeded generator of a realistic Close organisation (`generate_org`).

Deterministic for a seed: one `random.Random(seed)`, never the global generator, never the
wall clock. History is spread over a fixed range (2019-01-01 .. the org's `now`,
2026-10-01 by default). Object shapes follow the samples in Close's API reference
(`/work/shared/close-api-docs/003_*.txt`, newest lead sample in `001_*.txt`).

Built-in traps a connector must survive:
- exact `date_created` ties: leads imported in batches share one timestamp (and so do
  their Created activities); every 10th contact/opportunity/task/activity of a kind
  copies the previous one's `date_created`;
- meetings whose `date_created` (= start time, [003:1775]) lies after `now`, with a
  `date_updated` (sync time) *before* `date_created`;
- custom values of every type (text, multi-line textarea, int and float numbers, date,
  datetime with non-UTC offsets, single and multi choices, single and multi users, contact
  ids on opportunities, hidden), omitted when empty;
- task `date` both date-only and datetime; tasks of every subtype, some without a lead;
- an inactive membership whose user is not listed by `/user/`.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from . import org as o
from .common import (
    SHORT_ID,
    format_money,
    format_phone,
    iso,
    utc,
)
from .gen_activities import ActivityMixin
from .gen_base import (
    CITIES,
    COMPANY_A,
    COMPANY_B,
    DEFAULT_NOW,
    DEFAULT_START,
    TITLES,
    GenBase,
    parse_iso,
)
from .gen_config import ConfigMixin
from .org import FakeOrg

# Activity kinds accepted in `per_lead`, with their `_type`.
ACTIVITY_KINDS: dict[str, str] = {
    "created": "Created",
    "note": "Note",
    "email": "Email",
    "emailthread": "EmailThread",
    "call": "Call",
    "sms": "SMS",
    "meeting": "Meeting",
    "lead_status_change": "LeadStatusChange",
    "opportunity_status_change": "OpportunityStatusChange",
    "task_completed": "TaskCompleted",
    "custom_activity": "CustomActivity",
}
# Order in which `activities_per_lead - 1` activities are spread over the kinds.
_SPREAD_ORDER = (
    "note", "email", "call", "emailthread", "meeting", "sms", "lead_status_change",
    "opportunity_status_change", "task_completed", "custom_activity",
)  # fmt: skip
_ALIASES = {
    "notes": "note", "emails": "email", "emailthreads": "emailthread",
    "email_threads": "emailthread", "threads": "emailthread", "calls": "call",
    "smses": "sms", "meetings": "meeting", "lead_status_changes": "lead_status_change",
    "opportunity_status_changes": "opportunity_status_change",
    "task_completions": "task_completed", "tasks_completed": "task_completed",
    "created_activities": "created", "custom_activities": "custom_activity",
    "custom": "custom_activity",
}  # fmt: skip


def _kind_counts(activities_per_lead: int, per_lead: Mapping[str, int]) -> dict[str, int]:
    """Activities per lead for each kind: one Created activity, the rest spread evenly,
    then explicit overrides. Threads are clamped to 1..emails (a thread needs emails)."""
    counts = dict.fromkeys(ACTIVITY_KINDS, 0)
    if activities_per_lead > 0:
        counts["created"] = 1
        rest = activities_per_lead - 1
        for i, kind in enumerate(_SPREAD_ORDER):
            counts[kind] = rest // len(_SPREAD_ORDER) + (1 if i < rest % len(_SPREAD_ORDER) else 0)
    for kind, n in per_lead.items():
        counts[kind] = int(n)
    if counts["email"] > 0:
        counts["emailthread"] = min(max(counts["emailthread"], 1), counts["email"])
    else:
        counts["emailthread"] = 0
    return counts


def _normalise_per_lead(per_lead: Mapping[str, int] | None, extra: Mapping[str, Any]) -> dict:
    """Merge `per_lead={...}` and `notes_per_lead=100`-style keywords into kind -> count."""
    out: dict[str, int] = {}
    for key, value in {**(per_lead or {}), **extra}.items():
        name = key[: -len("_per_lead")] if key.endswith("_per_lead") else key
        if key not in (per_lead or {}) and not key.endswith("_per_lead"):
            raise TypeError(f"generate_org() got an unexpected keyword argument {key!r}")
        name = _ALIASES.get(name, name)
        if name not in ACTIVITY_KINDS:
            raise TypeError(f"unknown activity kind {key!r}; known: {sorted(ACTIVITY_KINDS)}")
        out[name] = int(value)
    return out


def generate_org(
    seed: int = 0,
    leads: int = 50,
    contacts_per_lead: int = 2,
    opportunities_per_lead: int = 1,
    tasks_per_lead: int = 2,
    activities_per_lead: int = 11,
    users: int = 5,
    *,
    per_lead: Mapping[str, int] | None = None,
    now: datetime = DEFAULT_NOW,
    start: datetime = DEFAULT_START,
    **extra: int,
) -> FakeOrg:
    """Build a deterministic organisation.

    `activities_per_lead` gives every lead one Created activity and spreads the rest over
    the other ten kinds. Skew one kind with `per_lead={"note": 100}` or the equivalent
    keyword `notes_per_lead=100` (kinds: see `ACTIVITY_KINDS`; plural aliases accepted).
    """
    counts = _kind_counts(activities_per_lead, _normalise_per_lead(per_lead, extra))
    gen = _Generator(seed, now, start)
    # Generation only allocates (no cycles to collect); with the cyclic GC on, its full
    # passes rescan every object made so far, ~20% of the time at 20,000 leads.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        gen.run(
            leads=leads,
            contacts_per_lead=contacts_per_lead,
            opportunities_per_lead=opportunities_per_lead,
            tasks_per_lead=tasks_per_lead,
            kind_counts=counts,
            users=max(1, users),
        )
    finally:
        if gc_was_on:
            gc.enable()
    return gen.org


class _Generator(ConfigMixin, ActivityMixin, GenBase):
    """Runs the parts in dependency order; makes leads, contacts, subscriptions and
    opportunities itself."""

    def run(
        self,
        *,
        leads: int,
        contacts_per_lead: int,
        opportunities_per_lead: int,
        tasks_per_lead: int,
        kind_counts: dict[str, int],
        users: int,
    ) -> None:
        self.make_users_and_roles(users)
        created = utc(2019, 1, 1, 0, 0, 0)
        self.org.info = {
            "id": self.org_id,
            "name": self.org.name,
            "currency": "USD",
            "currency_symbol": "$",
            "created_by": None,
            "updated_by": self.active_users[0]["id"],
            "date_created": iso(created),
            "date_updated": iso(self.moment(created, self.now)),
        }
        self.make_statuses_and_pipelines()
        self.make_custom_fields()
        self.make_configuration()
        self.make_leads(leads, contacts_per_lead)
        self.make_subscriptions()
        self.make_opportunities(opportunities_per_lead)
        self.make_activities(kind_counts)
        self.make_tasks(tasks_per_lead, kind_counts["task_completed"])

    # -- leads and contacts ---------------------------------------------------------------------

    def make_leads(self, n_leads: int, contacts_per_lead: int) -> None:
        rng, org = self.rng, self.org
        # Lead creation times, sorted, with import batches of 5 identical timestamps.
        times = sorted(
            self.moment(self.start, self.now - timedelta(days=1)) for _ in range(n_leads)
        )
        for b in range(0, n_leads - 4, 25):
            for k in range(b + 1, b + 5):
                times[k] = times[b]
        lead_objs, contact_objs = [], []
        self.lead_contacts: dict[str, list[dict]] = {}
        for created in times:
            name = f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)}"
            status = rng.choice(self.lead_statuses)
            lead_id = self.id("lead")
            lead: dict[str, Any] = {
                "id": lead_id,
                "name": name,
                "display_name": name,
                "description": rng.choice(("", self.sentence(8))),
                "url": rng.choice((None, f"https://{name.split()[0].lower()}.example.com")),
                "html_url": f"https://app.close.com/lead/{lead_id}/",
                "status_id": status["id"],
                "status_label": status["label"],
                "organization_id": self.org_id,
                "addresses": self.addresses(),
            }
            lead.update(self.audit(created, self.updated(created)))
            self.put_custom(lead, self.lead_fields + self.shared_for("lead"))
            lead_objs.append(lead)
            contacts = []
            for _ in range(contacts_per_lead):
                contacts.append(self.contact(lead, created))
            self.lead_contacts[lead_id] = contacts
            contact_objs.extend(contacts)
        org.put_many(o.LEAD, lead_objs)
        org.put_many(o.CONTACT, contact_objs)
        self.leads = lead_objs

    def addresses(self) -> list[dict[str, Any]]:
        out = []
        for label in self.rng.sample(("business", "mailing", "other"), self.rng.randint(0, 2)):
            city, state, country = self.rng.choice(CITIES)
            out.append({
                "label": label, "address_1": f"{self.rng.randint(1, 999)} Main St",
                "address_2": self.rng.choice(("", "Suite 100", "Floor 3")), "city": city,
                "state": state, "zipcode": f"{self.rng.randint(10000, 99999)}",
                "country": country,
            })  # fmt: skip
        return out

    def contact(self, lead: dict[str, Any], lead_created: datetime) -> dict[str, Any]:
        rng = self.rng
        first, last = self.person()
        name = rng.choice((f"{first} {last}", f"{first} {last}", first, ""))
        created = self.created(
            "contact", lead_created, min(self.now, lead_created + timedelta(days=400))
        )
        domain = lead["name"].split()[0].lower() + ".example.com"
        local = (first.encode("ascii", "ignore").decode() or "info").lower()
        emails = [
            {
                "email": f"{local}@{domain}",
                "is_unsubscribed": rng.random() < 0.1,
                "type": rng.choice(("office", "direct", "home")),
            }
        ]
        if rng.random() < 0.3:
            emails.append(
                {
                    "email": f"{local}.{rng.randint(1, 99)}@mail.example",
                    "is_unsubscribed": False,
                    "type": "home",
                }
            )
        phones = []
        for _ in range(rng.randint(0, 2)):
            num = self.phone()
            phones.append(
                {
                    "phone": num,
                    "phone_formatted": format_phone(num),
                    "type": rng.choice(("office", "mobile", "direct")),
                    "country": "US",
                }
            )
        urls = (
            [{"url": f"https://www.linkedin.com/in/{local}{rng.randint(1, 999)}", "type": "url"}]
            if rng.random() < 0.4
            else []
        )
        contact: dict[str, Any] = {
            "id": self.id("cont"),
            "organization_id": self.org_id,
            "lead_id": lead["id"],
            "name": name,
            "title": rng.choice(TITLES),
            "display_name": name or emails[0]["email"],
            "emails": emails if rng.random() < 0.95 else [],
            "phones": phones,
            "urls": urls,
        }
        contact.update(self.audit(created, self.updated(created)))
        self.put_custom(contact, self.contact_fields + self.shared_for("contact"))
        return contact

    def make_subscriptions(self) -> None:
        org, rng = self.org, self.rng
        subs = []
        self.contact_sub: dict[str, dict] = {}
        for contacts in self.lead_contacts.values():
            for contact in contacts:
                if not contact["emails"] or rng.random() > 0.35:
                    continue
                seq = rng.choice(self.sequences)
                sender = self.user()
                account = self.google_account[sender["id"]]
                created = self.moment(
                    max(utc(2020, 1, 1), parse_iso(contact["date_created"])), self.now
                )
                sub = {
                    "id": self.id("sub", SHORT_ID), "organization_id": self.org_id,
                    "sequence_id": seq["id"], "contact_id": contact["id"],
                    "contact_email": contact["emails"][0]["email"],
                    "status": rng.choice(("active", "paused", "finished", "finished")),
                    "sender_account_id": account["id"], "sender_name": self.name(sender),
                    "sender_email": sender["email"], "date_created": iso(created),
                    "date_updated": iso(self.updated(created)),
                    "created_by_id": sender["id"], "updated_by_id": sender["id"],
                }  # fmt: skip
                subs.append(sub)
                self.contact_sub[contact["id"]] = sub
        org.put_many(o.SEQUENCE_SUBSCRIPTION, subs)

    # -- opportunities ----------------------------------------------------------------------------

    def make_opportunities(self, per_lead: int) -> None:
        rng, objs = self.rng, []
        self.lead_opps: dict[str, list[dict]] = {}
        for lead in self.leads:
            lead_created = parse_iso(lead["date_created"])
            opps = []
            for _ in range(per_lead):
                status = rng.choice(self.opp_statuses)
                pipe = self.pipeline_by_id[status["pipeline_id"]]
                created = self.created("opportunity", lead_created)
                updated = self.updated(created)
                value = rng.choice((0, 5000, 50000, 100000, 300000, rng.randint(100, 2_000_000)))
                period = rng.choice(("one_time", "one_time", "monthly", "annual"))
                confidence = {"won": 100, "lost": 0}.get(status["type"], rng.choice((25, 50, 75)))
                annualized = value * 12 if period == "monthly" else value
                owner = self.user()
                contacts = self.lead_contacts.get(lead["id"]) or []
                contact = rng.choice(contacts) if contacts and rng.random() < 0.6 else None
                opp: dict[str, Any] = {
                    "id": self.id("oppo"),
                    "organization_id": self.org_id,
                    "lead_id": lead["id"],
                    "lead_name": lead["display_name"],
                    "status_id": status["id"],
                    "status_label": status["label"],
                    "status_type": status["type"],
                    "pipeline_id": pipe["id"],
                    "pipeline_name": pipe["name"],
                    "value": value,
                    "value_period": period,
                    "value_formatted": format_money(value, period),
                    "value_currency": "USD",
                    "expected_value": value * confidence // 100,
                    "annualized_value": annualized,
                    "annualized_expected_value": annualized * confidence // 100,
                    "date_won": updated.date().isoformat() if status["type"] == "won" else None,
                    "date_lost": updated.date().isoformat() if status["type"] == "lost" else None,
                    "confidence": confidence,
                    "note": rng.choice(("", self.sentence(5))),
                    "user_id": owner["id"],
                    "user_name": self.name(owner),
                    "contact_id": contact["id"] if contact else None,
                    # As the webhook sample's opportunity [003:84]; `events.configure(org,
                    # opportunity_contact_name=False)` strips it.
                    "contact_name": contact["name"] if contact else None,
                }
                opp.update(self.audit(created, updated))
                self.put_custom(
                    opp,
                    self.opportunity_fields + self.shared_for("opportunity"),
                    contacts=contacts,
                )
                opps.append(opp)
            self.lead_opps[lead["id"]] = opps
            objs.extend(opps)
        self.org.put_many(o.OPPORTUNITY, objs)
