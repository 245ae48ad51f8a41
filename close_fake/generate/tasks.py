"""Generator part: tasks of every subtype (some without a lead), with the TaskCompleted
activities that reference them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .. import org as o
from ..common import format_money, format_phone, iso
from .base import WORDS, GenBase, parse_iso


class TaskMixin(GenBase):
    """Makes tasks (+ TaskCompleted activities, which reference them)."""

    def make_tasks(self, per_lead: int, completed_per_lead: int) -> None:
        """Tasks of `self.leads` and their TaskCompleted activities."""
        rng = self.rng
        tasks: list[dict] = []
        completed_acts: list[dict] = []
        subtype_cycle = [t for t in o.TASK_TYPES if t != "lead"]
        for lead in self.leads:
            lead_created = parse_iso(lead["date_created"])
            contacts = self.lead_contacts.get(lead["id"]) or []
            lead_tasks = []
            for i in range(per_lead):
                if i == 0 or rng.random() < 0.4:
                    type_ = "lead"
                else:
                    type_ = subtype_cycle[self._task_subtypes % len(subtype_cycle)]
                    self._task_subtypes += 1
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
        self.org.put_many(o.TASK, tasks)
        self.org.put_many(o.ACTIVITY, completed_acts)

    def make_orphan_tasks(self, per_lead: int, n_leads: int) -> None:
        """Tasks not attached to any lead (calls from unknown numbers; Close API: Tasks):
        one per 20 leads, at least 2 (none without tasks)."""
        if per_lead > 0:
            tasks = []
            for i in range(max(2, n_leads // 20)):
                type_ = ("voicemail", "answered_detached_call")[i % 2]
                tasks.append(self.task(type_, None, self.start, []))
            self.org.put_many(o.TASK, tasks)

    def task(self, type_: str, lead: dict | None, lead_created: datetime, contacts: list) -> dict:
        rng = self.rng
        created = self.created(f"task.{type_}", lead_created)
        updated = self.updated(created)
        assignee = self.user()
        contact = self.maybe(contacts, 0.5) if type_ != "lead" or rng.random() < 0.3 else None
        is_complete = rng.random() < 0.4
        when = self.moment(created, self.now + timedelta(days=60))
        # Task dates are date-only ("2013-02-06") or datetimes (Close API: Tasks).
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
