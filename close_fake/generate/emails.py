"""Generator part: emails grouped in threads, each email's `thread_id` naming its thread."""

from __future__ import annotations

from datetime import datetime

from ..common import add_seconds, iso, iso_seconds
from .base import GenBase, parse_iso


class EmailMixin(GenBase):
    """Makes email threads and their emails."""

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
