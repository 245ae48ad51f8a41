"""Generator part: leads (in import batches that tie), their contacts, sequence
subscriptions and opportunities."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .. import org as o
from ..common import SHORT_ID, format_money, format_phone, iso, utc
from .base import CITIES, COMPANY_A, COMPANY_B, TITLES, GenBase, parse_iso


class LeadMixin(GenBase):
    """Makes leads, contacts, subscriptions and opportunities."""

    # -- leads and contacts ---------------------------------------------------------------------

    def lead_times(self, n_leads: int) -> list[datetime]:
        """Every lead's creation time, sorted, with import batches of 5 identical
        timestamps (at every multiple of 25)."""
        times = sorted(
            self.moment(self.start, self.now - timedelta(days=1)) for _ in range(n_leads)
        )
        for b in range(0, n_leads - 4, 25):
            for k in range(b + 1, b + 5):
                times[k] = times[b]
        return times

    def make_leads(self, times: list[datetime], contacts_per_lead: int) -> None:
        """Leads created at `times` (all of `lead_times`, or one chunk of them), with their
        contacts; they become `self.leads` for the parts that follow."""
        rng, org = self.rng, self.org
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
        """Sequence subscriptions of the contacts of `self.leads`."""
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
        """Opportunities of `self.leads`."""
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
                    # As the webhook sample's opportunity (Close API: Webhooks);
                    # `events.configure(org, opportunity_contact_name=False)` strips it.
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
