"""Generator part: activities of every type (emails grouped in threads, meetings in the
future, custom activities with their fields) and tasks of every subtype, with the
TaskCompleted activities that reference them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from . import org as o
from .common import (
    add_seconds,
    format_money,
    format_phone,
    iso,
    iso_seconds,
)
from .gen_base import WORDS, GenBase, parse_iso


class ActivityMixin(GenBase):
    """Makes activities and tasks for the leads made before."""

    # -- activities -------------------------------------------------------------------------------

    def base_activity(
        self,
        type_: str,
        lead: dict,
        created: datetime,
        updated: datetime,
        *,
        contact: dict | None = None,
        user: dict | None = None,
    ) -> dict:
        user = user or self.user()
        out: dict[str, Any] = {
            "id": self.id("acti"),
            "_type": type_,
            "organization_id": self.org_id,
            "lead_id": lead["id"],
            "contact_id": contact["id"] if contact else None,
            "user_id": user["id"],
            "user_name": self.name(user),
            "users": [],
        }
        out.update(self.audit(created, updated, names=True, creator=user))
        return out

    def make_activities(self, counts: dict[str, int]) -> None:
        # TaskCompleted activities are made with the tasks (they reference them).
        self.lead_activities: dict[str, dict[str, list[dict]]] = {}
        objs: list[dict] = []
        self._meetings = 0
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

    def act_threads(
        self, lead: dict, lead_created: datetime, contacts: list, n_threads: int, n_emails: int
    ) -> list[dict]:
        """Email threads and their emails; each email's `thread_id` names its thread."""
        if n_threads == 0:
            return []
        rng = self.rng
        out: list[dict] = []
        per_thread = [
            n_emails // n_threads + (1 if i < n_emails % n_threads else 0) for i in range(n_threads)
        ]
        for k in per_thread:
            user = self.user()
            contact = self.maybe(contacts, 0.9)
            account = self.google_account[user["id"]]
            subject = rng.choice(
                (
                    "Excited to have you on board!",
                    "Quick question",
                    "Pricing for 2026",
                    "Re: contract",
                    "Welcome to Close!",
                )
            )
            thread_id = self.id("acti")
            emails = []
            t = self.created("Email", lead_created)
            for j in range(k):
                t = t if j == 0 else min(self.now, add_seconds(t, rng.randint(60, 5 * 86400)))
                emails.append(
                    self.email(lead, user, contact, account, thread_id, subject, t, reply=j > 0)
                )
            latest = max(parse_iso(e["date_created"]) for e in emails)
            thread = self.base_activity(
                "EmailThread",
                lead,
                latest,
                add_seconds(latest, rng.randint(1, 20000) / 1000),
                contact=None,
                user=user,
            )
            thread["id"] = thread_id
            thread["users"] = [user["id"]]
            out.append(thread)
            out.extend(emails)
        return out

    def email(
        self,
        lead: dict,
        user: dict,
        contact: dict | None,
        account: dict,
        thread_id: str,
        subject: str,
        created: datetime,
        reply: bool,
    ) -> dict:
        rng = self.rng
        act = self.base_activity(
            "Email", lead, created, self.updated(created), contact=contact, user=user
        )
        direction = rng.choice(("outgoing", "outgoing", "incoming"))
        them = (
            contact["emails"][0]["email"]
            if contact and contact["emails"]
            else "someone@example.org"
        )
        them_name = (contact["name"] if contact else "") or None
        me = {"email": user["email"], "name": self.name(user)}
        other = {"email": them, "name": them_name}
        sender, receiver = (me, other) if direction == "outgoing" else (other, me)
        status = (
            "inbox"
            if direction == "incoming"
            else rng.choice(("sent", "sent", "sent", "draft", "scheduled"))
        )
        body = f"Hi,\n\n{self.sentence(10)}\n\n{sender['name'] or sender['email']}"
        message_id = f"<{rng.getrandbits(64):016x}@mail.fakeclose.example>"
        sub = self.contact_sub.get(contact["id"]) if contact else None
        use_seq = bool(sub) and direction == "outgoing" and rng.random() < 0.5
        seq = next((s for s in self.sequences if sub and s["id"] == sub["sequence_id"]), None)
        opens = []
        if status == "sent" and rng.random() < 0.4:
            for _ in range(rng.randint(1, 3)):
                opens.append(
                    {
                        "ip_address": f"203.0.113.{rng.randint(1, 254)}",
                        "opened_at": iso(self.moment(created, max(created, self.now))),
                        "opened_by": them,
                        "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
                    }
                )
        template = (
            rng.choice(self.templates) if direction == "outgoing" and rng.random() < 0.3 else None
        )
        att = (
            []
            if rng.random() < 0.8
            else [
                {
                    "url": f"https://closeio-filepicker.s3.amazonaws.com/{rng.getrandbits(40):x}.png",
                    "filename": "screenshot.png",
                    "size": rng.randint(1000, 2_000_000),
                    "content_type": "image/png",
                }
            ]
        )
        cc = ["cc@example.org"] if rng.random() < 0.15 else []
        act.update({
            "direction": direction,
            "status": status,
            "subject": f"Re: {subject}" if reply else subject,
            "sender": (f"{sender['name']} <{sender['email']}>" if sender["name"]
                       else sender["email"]),
            "to": [receiver["email"]],
            "cc": cc,
            "bcc": [],
            "envelope": {
                "from": [sender], "sender": [sender], "to": [receiver],
                "cc": [{"email": c, "name": None} for c in cc], "bcc": [], "reply_to": [],
                "date": created.strftime("%a, %d %b %Y %H:%M:%S +0000"),
                "in_reply_to": None, "message_id": message_id,
                "subject": f"Re: {subject}" if reply else subject,
            },
            "body_text": body,
            "body_html": body.replace("\n", "<br>\n"),
            "body_text_quoted": [{"text": body, "expand": True}],
            "body_preview": body[:200],
            "attachments": att,
            "opens": opens,
            "opens_summary": f"Opened {len(opens)} times" if opens else None,
            "send_attempts": [],
            "template_id": template["id"] if template else None,
            "template_name": template["name"] if template else None,
            "thread_id": thread_id,
            "email_account_id": account["id"],
            "message_ids": [message_id],
            "in_reply_to_id": None,
            "references": [],
            "need_smtp_credentials": False,
            "date_sent": iso_seconds(created) if status in ("sent", "inbox") else None,
            "sequence_subscription_id": sub["id"] if use_seq and sub else None,
            "sequence_id": seq["id"] if use_seq and seq else None,
            "sequence_name": seq["name"] if use_seq and seq else None,
        })  # fmt: skip
        return act

    # -- tasks (+ TaskCompleted activities, which reference them) ----------------------------------

    def make_tasks(self, per_lead: int, completed_per_lead: int) -> None:
        rng = self.rng
        tasks: list[dict] = []
        completed_acts: list[dict] = []
        subtype_cycle = [t for t in o.TASK_TYPES if t != "lead"]
        n = 0
        for lead in self.leads:
            lead_created = parse_iso(lead["date_created"])
            contacts = self.lead_contacts.get(lead["id"]) or []
            lead_tasks = []
            for i in range(per_lead):
                if i == 0 or rng.random() < 0.4:
                    type_ = "lead"
                else:
                    type_ = subtype_cycle[n % len(subtype_cycle)]
                    n += 1
                lead_tasks.append(self.task(type_, lead, lead_created, contacts))
            tasks.extend(lead_tasks)
            for _ in range(completed_per_lead):
                done = [t for t in lead_tasks if t["_type"] == "lead" and t["is_complete"]]
                task = rng.choice(done or lead_tasks) if (done or lead_tasks) else None
                created = self.created("TaskCompleted", lead_created)
                act = self.base_activity("TaskCompleted", lead, created, created)
                act["task_id"] = task["id"] if task else self.id("task")
                act["task_text"] = task.get("text", "Follow up") if task else "Follow up"
                completed_acts.append(act)
        # Tasks not attached to any lead (calls from unknown numbers) [003:3371,3447].
        if per_lead > 0:
            for i in range(max(2, len(self.leads) // 20)):
                type_ = ("voicemail", "answered_detached_call")[i % 2]
                tasks.append(self.task(type_, None, self.start, []))
        self.org.put_many(o.TASK, tasks)
        self.org.put_many(o.ACTIVITY, completed_acts)

    def task(self, type_: str, lead: dict | None, lead_created: datetime, contacts: list) -> dict:
        rng = self.rng
        created = self.created(f"task.{type_}", lead_created)
        updated = self.updated(created)
        assignee = self.user()
        contact = self.maybe(contacts, 0.5) if type_ != "lead" or rng.random() < 0.3 else None
        is_complete = rng.random() < 0.4
        when = self.moment(created, self.now + timedelta(days=60))
        # Task dates are date-only ("2013-02-06") or datetimes [003:3225-3227].
        date_value = when.date().isoformat() if rng.random() < 0.4 else iso(when)
        view = "archive" if is_complete else ("inbox" if when <= self.now else "future")
        task: dict[str, Any] = {
            "id": self.id("task" if type_ == "lead" else "noti"),
            "_type": type_,
            "view": view,
            "assigned_to": assignee["id"],
            "assigned_to_name": self.name(assignee),
            "contact_id": contact["id"] if contact else None,
            "contact_name": (contact["name"] if contact else None),
            "date": date_value,
            "is_complete": is_complete,
            "lead_id": lead["id"] if lead else None,
            "lead_name": lead["display_name"] if lead else None,
            "object_id": None,
            "object_type": None,
            "organization_id": self.org_id,
        }
        acts = self.lead_activities.get(lead["id"], {}) if lead else {}

        def pick(kind: str) -> str:
            found = acts.get(kind) or []
            return rng.choice(found)["id"] if found else self.id("acti")

        if type_ == "lead":
            task["text"] = rng.choice(
                (
                    "Follow up",
                    "Connect with Account Manager",
                    "Send proposal",
                    "Call back re: " + rng.choice(WORDS),
                )
            )
            task["is_dateless"] = False
        elif type_ in ("incoming_email", "email_followup"):
            task["object_type"] = "emailthread"
            task["object_id"] = pick("EmailThread")
            task["subject"] = rng.choice(("December Metrics", "I have an offer for you"))
            task["body_preview"] = self.sentence(6)
            if type_ == "incoming_email":
                task["emails"] = [pick("Email")]
            else:
                task["email_id"] = pick("Email")
        elif type_ in ("missed_call", "answered_detached_call", "voicemail"):
            num = self.phone()
            task["object_type"] = "call"
            task["object_id"] = pick("Call")
            task["phone"] = num
            task["phone_formatted"] = format_phone(num)
            task["phone_number_description"] = "California"
            if type_ == "missed_call":
                task["local_phone"] = self.user_numbers.get(assignee["id"]) or self.phone()
            if type_ == "answered_detached_call":
                task["recording_url"] = f"https://recordings.example/{task['id']}.mp3"
            if type_ == "voicemail":
                task["local_phone"] = self.user_numbers.get(assignee["id"]) or self.phone()
                task["voicemail_duration"] = rng.randint(5, 90)
                task["voicemail_url"] = f"https://voicemail.example/{task['id']}.mp3"
        elif type_ == "opportunity_due":
            opps = self.lead_opps.get(lead["id"]) if lead else None
            opp = rng.choice(opps) if opps else None
            value = opp["value"] if opp else 0
            period = opp["value_period"] if opp else "one_time"
            task.update({
                "object_type": "opportunity", "object_id": opp["id"] if opp else self.id("oppo"),
                "opportunity_value": value, "opportunity_value_period": period,
                "opportunity_value_formatted": format_money(value, period),
                "opportunity_value_currency": "USD",
                "opportunity_note": opp["note"] if opp else "",
            })  # fmt: skip
        elif type_ == "incoming_sms":
            num = self.phone()
            task.update({
                "object_type": "sms", "object_id": pick("SMS"),
                "local_phone": self.user_numbers.get(assignee["id"]) or self.phone(),
                "remote_phone": num, "remote_phone_description": "California",
                "remote_phone_formatted": format_phone(num), "text": self.sentence(4),
            })  # fmt: skip
        system = type_ != "lead"
        task.update(
            self.audit(
                created,
                updated,
                names=True,
                creator=None if system else assignee,
                nullable=not system,
            )
        )
        if system:
            task["created_by"] = None
            task["created_by_name"] = None
        return task
