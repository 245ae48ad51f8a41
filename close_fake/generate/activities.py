"""Generator part: activities of every type (meetings in the future, custom activities with
their fields); emails and their threads come from `emails.py`, TaskCompleted activities
with the tasks they reference (`tasks.py`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from .. import org as o
from ..common import add_seconds, format_money, format_phone, iso, iso_seconds
from .base import parse_iso
from .emails import EmailMixin


class ActivityMixin(EmailMixin):
    """Makes activities for the leads made before."""

    def make_activities(self, counts: dict[str, int]) -> None:
        """Activities of `self.leads` (every lead, or one chunk of them). TaskCompleted
        activities are made with the tasks (they reference them)."""
        self.lead_activities: dict[str, dict[str, list[dict]]] = {}
        objs: list[dict] = []
        for lead in self.leads:
            acts: dict[str, list[dict]] = {}
            self.lead_activities[lead["id"]] = acts
            lead_created = parse_iso(lead["date_created"])
            contacts = self.lead_contacts.get(lead["id"]) or []
            for kind in (
                "created",
                "note",
                "call",
                "sms",
                "meeting",
                "lead_status_change",
                "opportunity_status_change",
                "custom_activity",
            ):
                for _ in range(counts[kind]):
                    act = getattr(self, f"act_{kind}")(lead, lead_created, contacts)
                    acts.setdefault(act["_type"], []).append(act)
                    objs.append(act)
            threads_and_emails = self.act_threads(
                lead, lead_created, contacts, counts["emailthread"], counts["email"]
            )
            for act in threads_and_emails:
                acts.setdefault(act["_type"], []).append(act)
                objs.append(act)
        self.org.put_many(o.ACTIVITY, objs)

    def act_created(self, lead: dict, lead_created: datetime, contacts: list) -> dict:
        # Same instant as the lead (+11 ms): batch-imported leads tie here too.
        created = add_seconds(lead_created, 0.011)
        act = self.base_activity("Created", lead, created, add_seconds(created, 0.001))
        act["source"] = self.rng.choice(("api", "ui", "ui"))
        act["import_id"] = None
        return act

    def act_note(self, lead: dict, lead_created: datetime, contacts: list) -> dict:
        created = self.created("Note", lead_created)
        act = self.base_activity(
            "Note", lead, created, self.updated(created), contact=self.maybe(contacts)
        )
        act["note"] = self.sentence(self.rng.randint(3, 20))
        return act

    def act_call(self, lead: dict, lead_created: datetime, contacts: list) -> dict:
        rng = self.rng
        created = self.created("Call", lead_created)
        user = self.user()
        contact = self.maybe(contacts, 0.9)
        act = self.base_activity(
            "Call", lead, created, self.updated(created), contact=contact, user=user
        )
        disposition = rng.choice(
            (
                "answered",
                "answered",
                "no-answer",
                "vm-left",
                "vm-answer",
                "busy",
                "blocked",
                "error",
                "abandoned",
            )
        )
        method = rng.choice(("regular", "regular", "power", "predictive", "external"))
        remote = contact["phones"][0]["phone"] if contact and contact["phones"] else self.phone()
        local = self.user_numbers.get(user["id"]) or self.phone()
        duration = rng.randint(5, 3600) if disposition == "answered" else 0
        dialer = rng.choice(self.dialers) if method in ("power", "predictive") else None
        act.update({
            "direction": rng.choice(("outbound", "outbound", "inbound")),
            "disposition": disposition,
            "call_method": method,
            "duration": duration,
            "note": rng.choice(("", self.sentence(6))),
            "phone": remote,
            "local_phone": local,
            "local_phone_formatted": format_phone(local),
            "remote_phone": remote,
            "remote_phone_formatted": format_phone(remote),
            "recording_url": (f"https://recordings.example/{act['id']}.mp3"
                              if duration and rng.random() < 0.5 else None),
            "voicemail_url": (f"https://voicemail.example/{act['id']}.mp3"
                              if disposition == "vm-left" else None),
            "voicemail_duration": rng.randint(5, 90) if disposition == "vm-left" else None,
            "source": "Close.io" if method != "external" else "External",
            "dialer_id": dialer["id"] if dialer else None,
            "dialer_saved_search_id": dialer["saved_search_id"] if dialer else None,
            "cost": str(rng.choice((0, 1, 2, 3, 7))) if rng.random() < 0.9 else "1.5",
            "local_country_iso": "US",
            "remote_country_iso": "US",
        })  # fmt: skip
        return act

    def act_sms(self, lead: dict, lead_created: datetime, contacts: list) -> dict:
        rng = self.rng
        created = self.created("SMS", lead_created)
        user = self.user()
        contact = self.maybe(contacts, 0.9)
        act = self.base_activity(
            "SMS", lead, created, self.updated(created), contact=contact, user=user
        )
        direction = rng.choice(("inbound", "outbound", "outbound"))
        status = (
            "inbox"
            if direction == "inbound"
            else rng.choice(("sent", "sent", "draft", "scheduled"))
        )
        remote = contact["phones"][0]["phone"] if contact and contact["phones"] else self.phone()
        act.update({
            "date_sent": iso(created) if status == "sent" else None,
            "direction": direction,
            "status": status,
            "cost": str(rng.choice((1, 1, 2))),
            "local_phone": self.user_numbers.get(user["id"]) or self.phone(),
            "local_country_iso": "US",
            "remote_phone": remote,
            "remote_phone_formatted": format_phone(remote),
            "remote_country_iso": "US",
            "text": rng.choice(("SMS in Close? HUZZAH!!!", self.sentence(4), "Sounds good 👍")),
        })  # fmt: skip
        return act

    def act_meeting(self, lead: dict, lead_created: datetime, contacts: list) -> dict:
        rng = self.rng
        self._meetings += 1
        future = self._meetings % 5 == 0
        if future:
            # Upcoming: starts after `now`; synced (updated) before it starts.
            starts = add_seconds(self.now, rng.randint(90, 450) * 86400.0)
            starts = starts.replace(minute=rng.choice((0, 30)), second=0, microsecond=0)
            synced = self.moment(max(lead_created, self.now - timedelta(days=60)), self.now)
        else:
            starts = self.created("Meeting", lead_created).replace(second=0, microsecond=0)
            synced = add_seconds(starts, -rng.randint(600, 7 * 86400))
        duration = rng.choice((900, 1800, 3600))
        user = self.user()
        contact = self.maybe(contacts, 0.8)
        act = self.base_activity("Meeting", lead, starts, synced, contact=contact, user=user)
        if not future and rng.random() < 0.5:
            act["date_updated"] = iso(add_seconds(starts, duration + rng.randint(1, 600)))
        attendees = [
            {
                "status": "yes",
                "user_id": user["id"],
                "name": None,
                "contact_id": None,
                "is_organizer": True,
                "email": user["email"],
            }
        ]
        for c in contacts[:2]:
            if c["emails"]:
                attendees.insert(
                    0,
                    {
                        "status": rng.choice(("noreply", "yes", "no", "maybe")),
                        "user_id": None,
                        "name": c["name"] or None,
                        "contact_id": c["id"],
                        "is_organizer": False,
                        "email": c["emails"][0]["email"],
                    },
                )
        status = (
            "upcoming"
            if future
            else rng.choice(
                (
                    "completed",
                    "completed",
                    "completed",
                    "canceled",
                    "declined-by-lead",
                    "declined-by-org",
                )
            )
        )
        act.update({
            "title": f"{lead['display_name']} — {rng.choice(('Demo', 'Intro', 'QBR'))}",
            "status": status,
            "attendees": attendees,
            "starts_at": iso_seconds(starts),
            "ends_at": iso_seconds(add_seconds(starts, duration)),
            "duration": duration,
            "location": rng.choice(("https://zoom.us/j/zoommeeting", "Office", None)),
            "note": rng.choice(("", self.sentence(6))),
            "calendar_event_link": f"https://www.google.com/calendar/event?eid={act['id'][5:25]}",
            "connected_account_id": self.google_account[user["id"]]["id"],
            "is_recurring": rng.random() < 0.1,
            "source": "calendar",
            "users": [user["id"]],
        })  # fmt: skip
        # As in the sample, a meeting's date_created is its start time (seconds precision).
        act["date_created"] = iso(starts)
        return act

    def act_lead_status_change(self, lead: dict, lead_created: datetime, contacts: list) -> dict:
        created = self.created("LeadStatusChange", lead_created)
        act = self.base_activity("LeadStatusChange", lead, created, created)
        old, new = self.rng.sample(self.lead_statuses, 2)
        act.update(
            {
                "old_status_id": old["id"],
                "old_status_label": old["label"],
                "new_status_id": new["id"],
                "new_status_label": new["label"],
            }
        )
        return act

    def act_opportunity_status_change(
        self, lead: dict, lead_created: datetime, contacts: list
    ) -> dict:
        rng = self.rng
        created = self.created("OpportunityStatusChange", lead_created)
        act = self.base_activity("OpportunityStatusChange", lead, created, created)
        opps = self.lead_opps.get(lead["id"]) or []
        opp = rng.choice(opps) if opps else None
        new = next(
            (s for s in self.opp_statuses if opp and s["id"] == opp["status_id"]),
            rng.choice(self.opp_statuses),
        )
        old = rng.choice([s for s in self.opp_statuses if s["id"] != new["id"]])
        value = opp["value"] if opp else 0
        act.update({
            "opportunity_id": opp["id"] if opp else self.id("oppo"),
            "old_status_id": old["id"], "old_status_label": old["label"],
            "old_status_type": old["type"], "old_pipeline_id": old["pipeline_id"],
            "new_status_id": new["id"], "new_status_label": new["label"],
            "new_status_type": new["type"], "new_pipeline_id": new["pipeline_id"],
            "opportunity_date_won": created.date().isoformat() if new["type"] == "won" else None,
            "opportunity_value": value,
            "opportunity_value_formatted": format_money(value) if value else None,
            "opportunity_value_currency": "USD",
        })  # fmt: skip
        return act

    def act_custom_activity(self, lead: dict, lead_created: datetime, contacts: list) -> dict:
        rng = self.rng
        created = self.created("CustomActivity", lead_created)
        act = self.base_activity(
            "CustomActivity",
            lead,
            created,
            self.updated(created),
            contact=self.maybe(contacts, 0.3),
        )
        type_ = rng.choice(self.activity_types)
        status = "draft" if rng.random() < 0.2 else "published"
        act["custom_activity_type_id"] = type_["id"]
        act["status"] = status
        for field in self.activity_fields:
            if field["custom_activity_type_id"] != type_["id"]:
                continue
            if field["required"] and status == "published" or rng.random() < 0.7:
                act[f"custom.{field['id']}"] = self.custom_value(field)
        return act
