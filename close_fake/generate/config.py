"""Generator part: users, memberships, roles, groups, statuses, pipelines and the
configuration resources (templates, sequences, smart views, connected accounts, phone
numbers, dialers, webhooks...)."""

from __future__ import annotations

from datetime import datetime, timedelta

from .. import org as o
from ..common import SHORT_ID, add_seconds, format_phone, iso, iso_naive, utc
from .base import GenBase


class ConfigMixin(GenBase):
    """Makes the organisation's people and configuration objects."""

    def make_users_and_roles(self, n_users: int) -> None:
        org, rng = self.org, self.rng
        roles = [
            ("Admin", False, ["manage_organization", "export", "bulk_edit", "bulk_delete"]),
            ("Sales Rep", True, ["export"]),
            ("Account Manager", True, ["export", "bulk_edit"]),
            ("Restricted User", True, []),
        ]
        role_objs = [
            {"id": self.id("role"), "name": n, "editable": e, "permissions": p} for n, e, p in roles
        ]
        org.put_many(o.ROLE, role_objs)
        self.roles = role_objs
        used: set[tuple[str, str]] = set()
        all_users = []
        for i in range(n_users + (1 if n_users >= 2 else 0)):
            first, last = self.person()
            while (first, last) in used:
                first, last = self.person()
            used.add((first, last))
            created = self.moment(self.start, utc(2020, 1, 1))
            ascii_first = first.encode("ascii", "ignore").decode().lower() or "user"
            ascii_last = last.encode("ascii", "ignore").decode().lower().replace("'", "")
            inactive = i == n_users
            all_users.append({
                "id": self.id("user"),
                "email": f"{ascii_first}.{ascii_last}@fakeclose.example",
                "first_name": first,
                "last_name": last,
                "image": f"https://secure.gravatar.com/avatar/{rng.getrandbits(128):032x}",
                "organizations": [] if inactive else [self.org_id],
                "date_created": iso(created),
                "date_updated": iso(self.updated(created)),
                # Only `/me/` shows this one (views strip it elsewhere; Close API: Users).
                "last_used_timezone": rng.choice(
                    ("America/Denver", "Europe/Berlin", "Asia/Tokyo", "America/New_York")),
            })  # fmt: skip
        org.put_many(o.USER, all_users)
        self.active_users = all_users[:n_users]
        self.inactive_users = all_users[n_users:]
        org.admin_user_id = all_users[0]["id"]
        perms = {r["id"]: r["permissions"] for r in role_objs}
        for i, user in enumerate(all_users):
            role = role_objs[0] if i == 0 else role_objs[1 + (i % 3)]
            member = {
                "id": self.id("memb"),
                "organization_id": self.org_id,
                "user_id": user["id"],
                "role_id": role["id"],
                "track_email_opens": rng.random() < 0.8,
                "record_calls": rng.random() < 0.3,
                "permissions_granted": list(perms[role["id"]]),
            }
            target = o.INACTIVE_MEMBERSHIP if user in self.inactive_users else o.MEMBERSHIP
            org.put(target, member)
        groups = []
        for gname, members in (
            ("Sales", self.active_users[1:] or self.active_users),
            ("Support", self.active_users[:2]),
        ):
            groups.append({
                "id": self.id("group", SHORT_ID),
                "name": gname,
                "members": [{"user_id": u["id"]} for u in members],
                "organization_id": self.org_id,
            })  # fmt: skip
        org.put_many(o.GROUP, groups)

    def make_statuses_and_pipelines(self) -> None:
        org = self.org
        self.lead_statuses = [
            {"id": self.id("stat"), "label": label, "organization_id": self.org_id}
            for label in ("Potential", "Bad Fit", "Qualified", "Customer", "Not Serious")
        ]
        org.put_many(o.LEAD_STATUS, self.lead_statuses)
        admin = self.active_users[0]
        self.pipelines = []
        self.opp_statuses = []
        for pname, statuses in (
            ("Sales", (("Active", "active"), ("Demo Scheduled", "active"), ("Won", "won"),
                       ("Lost", "lost"))),
            ("Renewals", (("Up for Renewal", "active"), ("Renewed", "won"),
                          ("Churned", "lost"))),
        ):  # fmt: skip
            created = self.moment(utc(2019, 6, 1), utc(2020, 6, 1))
            pipe = {
                "id": self.id("pipe", SHORT_ID),
                "name": pname,
                "created_by": admin["id"],
                "updated_by": admin["id"],
                "date_created": iso_naive(created),
                "date_updated": iso_naive(self.updated(created)),
                "organization_id": self.org_id,
            }
            self.pipelines.append(pipe)
            for label, type_ in statuses:
                self.opp_statuses.append({
                    "id": self.id("stat"), "label": label, "type": type_,
                    "pipeline_id": pipe["id"], "organization_id": self.org_id,
                })  # fmt: skip
        org.put_many(o.PIPELINE, self.pipelines)
        org.put_many(o.OPPORTUNITY_STATUS, self.opp_statuses)
        self.pipeline_by_id = {p["id"]: p for p in self.pipelines}

    # -- configuration resources --------------------------------------------------------------

    def make_configuration(self) -> None:
        org, rng, admin = self.org, self.rng, self.active_users[0]

        def dates(lo: datetime | None = None) -> tuple[datetime, datetime]:
            c = self.moment(lo or utc(2019, 1, 1), self.now - timedelta(days=30))
            return c, self.updated(c)

        # Email templates (some archived) and SMS templates (TOC-only: plausible shape).
        templates = []
        for i, (name, subject) in enumerate((
            ("Cold 1", "I bet using other sales tools sucks"), ("Cold 2", "Quick question"),
            ("Follow-up", "Following up on {{ lead.display_name }}"),
            ("Breakup", "Should I close your file?"), ("Old promo", "Summer promo 2019"),
            ("Renewal", "Your renewal is coming up"),
        )):  # fmt: skip
            c, u = dates()
            author = self.user()
            templates.append({
                "id": self.id("tmpl"), "organization_id": self.org_id, "name": name,
                "subject": subject, "body": f"<p>{self.sentence()}</p>",
                "is_shared": rng.random() < 0.7,
                "attachments": [] if i % 3 else [{
                    "url": "https://closeio-filepicker.s3.amazonaws.com/brochure.pdf",
                    "filename": "brochure.pdf", "size": 183204,
                    "content_type": "application/pdf"}],
                "date_created": iso(c), "date_updated": iso(u),
                "created_by": author["id"], "updated_by": author["id"],
                "is_archived": name in ("Old promo", "Breakup"),
            })  # fmt: skip
        org.put_many(o.EMAIL_TEMPLATE, templates)
        self.templates = templates
        sms_templates = []
        for name, text, archived in (
            ("Intro", "Hi {{ contact.first_name }}, it's {{ user.first_name }}!", False),
            ("Reminder", "Reminder: our call is tomorrow.", False),
            ("Old", "Old promo text", True),
        ):
            c, u = dates()
            author = self.user()
            sms_templates.append({
                "id": self.id("smstmpl", SHORT_ID), "organization_id": self.org_id,
                "name": name, "text": text, "is_shared": True, "is_archived": archived,
                "attachments": [], "date_created": iso(c), "date_updated": iso(u),
                "created_by": author["id"], "updated_by": author["id"],
            })  # fmt: skip
        org.put_many(o.SMS_TEMPLATE, sms_templates)

        # Sequence schedules (the two documented pre-created ones) and sequences.
        schedules = [
            {"id": self.id("sched", SHORT_ID), "name": "Any time",
             "ranges": [{"weekday": d, "from": "00:00", "to": "23:59"} for d in range(1, 6)]},
            {"id": self.id("sched", SHORT_ID), "name": "9am – 4pm",
             "ranges": [{"weekday": d, "from": "09:00", "to": "16:00"} for d in range(1, 6)]},
        ]  # fmt: skip
        org.put_many(o.SEQUENCE_SCHEDULE, schedules)
        sequences = []
        for i, name in enumerate(("My Sequence", "Trial nurture", "Win-back")):
            c, u = dates(utc(2020, 1, 1))
            author = self.user()
            steps = []
            for j in range(rng.randint(2, 4)):
                sc = add_seconds(c, j * 300)
                steps.append({
                    "id": self.id("seqstep", SHORT_ID), "delay": 0 if j == 0 else 86400 * (j + 1),
                    "email_template_id": templates[(i + j) % len(templates)]["id"],
                    "threading": "new_thread" if j == 0 else "old_thread",
                    "date_created": iso(sc), "date_updated": iso(sc),
                    "created_by_id": author["id"], "updated_by_id": author["id"],
                })  # fmt: skip
            sequences.append({
                "organization_id": self.org_id, "id": self.id("seq", SHORT_ID), "name": name,
                "status": "paused" if i == 2 else "active",
                "schedule_id": None if i == 0 else schedules[i % 2]["id"],
                "timezone": rng.choice(("America/Los_Angeles", "Europe/Berlin", "UTC")),
                "steps": steps, "date_created": iso(c), "date_updated": iso(u),
                "created_by_id": author["id"], "updated_by_id": author["id"],
            })  # fmt: skip
        org.put_many(o.SEQUENCE, sequences)
        self.sequences = sequences

        # Smart views.
        views = []
        for name, query, shared in (("All Leads", "*", True),
                                    ("Recently Created", "created <= 30 days ago", True),
                                    ("Recently Updated", "updated <= 30 days ago", True),
                                    ("Never Called", "calls = 0", True),
                                    ("My hot leads", 'status:"Qualified"', False)):  # fmt: skip
            views.append({
                "user_id": None if shared else admin["id"], "is_shared": shared,
                "used_recently": rng.random() < 0.4, "organization_id": self.org_id,
                "query": query, "id": self.id("save"), "name": name,
            })  # fmt: skip
        org.put_many(o.SAVED_SEARCH, views)
        self.saved_searches = views

        # Connected accounts: one Google account per user, plus custom email, Zoom, Microsoft.
        accounts = []
        for user in self.active_users:
            accounts.append({
                "id": self.id("emailacct"), "organization_id": self.org_id, "user_id": user["id"],
                "identities": [{"email": user["email"], "name": self.name(user)}],
                "synced_calendars": [user["email"]], "_type": "google",
            })  # fmt: skip
        accounts.append({
            "id": self.id("emailacct"), "organization_id": self.org_id, "user_id": admin["id"],
            "identities": [{"name": self.name(admin), "email": admin["email"]},
                           {"name": "Close CRM Support", "email": "support@fakeclose.example"}],
            "smtp": {"username": admin["email"], "port": 465, "use_ssl": True,
                     "host": "smtp.mailgun.org"},
            "imap": None, "_type": "custom_email",
        })  # fmt: skip
        accounts.append({
            "id": self.id("emailacct"), "user_id": admin["id"], "organization_id": self.org_id,
            "identities": [], "email": admin["email"], "_type": "zoom",
        })  # fmt: skip
        last = self.active_users[-1]
        accounts.append({
            "id": self.id("emailacct"), "organization_id": self.org_id, "user_id": last["id"],
            "identities": [{"email": last["email"], "name": self.name(last)}],
            "_type": "microsoft",
        })  # fmt: skip
        org.put_many(o.CONNECTED_ACCOUNT, accounts)
        self.google_account = {a["user_id"]: a for a in accounts if a["_type"] == "google"}

        # Send As associations: only those involving the key's user are visible.
        send_as = []
        for other in self.active_users[1:3]:
            send_as.append(
                {
                    "allowed_user_id": other["id"],
                    "allowing_user_id": admin["id"],
                    "id": self.id("sdas", SHORT_ID),
                    "organization_id": self.org_id,
                }
            )
        if len(self.active_users) > 1:
            send_as.append(
                {
                    "allowed_user_id": admin["id"],
                    "allowing_user_id": self.active_users[1]["id"],
                    "id": self.id("sdas", SHORT_ID),
                    "organization_id": self.org_id,
                }
            )
        org.put_many(o.SEND_AS, send_as)

        # Phone numbers: one internal per user, one external, one group number.
        numbers = []
        for user in self.active_users:
            num = self.phone()
            c, u = dates()
            numbers.append({
                "organization_id": self.org_id, "user_id": user["id"], "id": self.id("phon"),
                "is_group_number": False, "label": "Primary Number", "number": num,
                "number_formatted": format_phone(num), "type": "internal", "sms_enabled": True,
                "supports_sms_to_countries": ["CA", "US"], "voicemail_greeting_url": None,
                "forward_to": None, "forward_to_enabled": False, "forward_to_formatted": None,
                "date_created": iso(c), "date_updated": iso(u),
            })  # fmt: skip
        num, c = self.phone(), self.moment(self.start, self.now)
        numbers.append({
            "organization_id": self.org_id, "user_id": admin["id"], "id": self.id("phon"),
            "label": "My Personal Cell", "number": num, "number_formatted": format_phone(num),
            "type": "external", "sms_enabled": False, "supports_sms_to_countries": [],
            "date_created": iso(c), "date_updated": iso(self.updated(c)),
        })  # fmt: skip
        num, c = self.phone(), self.moment(self.start, self.now)
        numbers.append({
            "organization_id": self.org_id, "user_id": None, "id": self.id("phon"),
            "is_group_number": True, "label": "Group Number", "number": num,
            "number_formatted": format_phone(num), "type": "internal", "sms_enabled": True,
            "supports_sms_to_countries": ["CA", "US"],
            "participants": [u["id"] for u in self.active_users[:3]],
            "phone_numbers": [], "phone_numbers_formatted": [], "voicemail_greeting_url": None,
            "forward_to": None, "forward_to_enabled": False, "forward_to_formatted": None,
            "date_created": iso(c), "date_updated": iso(self.updated(c)),
        })  # fmt: skip
        org.put_many(o.PHONE_NUMBER, numbers)
        self.user_numbers = {n["user_id"]: n["number"] for n in numbers if n["type"] == "internal"}

        org.put_many(o.INTEGRATION_LINK, [
            {"organization_id": self.org_id, "id": self.id("ilink"), "name": name, "url": url,
             "type": t}
            for name, url, t in (
                ("Google Search", "http://google.com/search?q={{lead.display_name}}", "lead"),
                ("LinkedIn", "https://www.linkedin.com/search?keywords={{contact.name}}",
                 "contact"),
                ("Billing", "https://billing.example/deals/{{opportunity.id}}", "opportunity"),
            )
        ])  # fmt: skip

        dialers = []
        for i in range(3):
            c = self.moment(utc(2020, 1, 1), self.now - timedelta(days=1))
            user = self.active_users[i % len(self.active_users)]
            dialers.append({
                "status": "inactive" if i else "active", "user_id": user["id"],
                "users": [{"is_active": i == 0, "state": "inactive" if i else "active",
                           "user_id": user["id"]}],
                "saved_search_id": views[i]["id"],
                "date_updated": iso_naive(self.updated(c)),
                "caller_id": "" if i == 0 else self.phone(), "organization_id": self.org_id,
                "ring_mode": "more-voicemails", "saved_search_is_user_dependent": False,
                "date_created": iso_naive(c), "music_preference": "tone1",
                "type": "power" if i % 2 == 0 else "predictive",
                "id": self.id("dial", SHORT_ID),
            })  # fmt: skip
        org.put_many(o.DIALER, dialers)
        self.dialers = dialers

        hooks = []
        for i, events in enumerate((
            [("activity.note", "updated"), ("lead", "created"), ("lead", "updated"),
             ("activity.call", "created"), ("activity.note", "created")],
            [("opportunity", "updated"), ("lead", "deleted"), ("lead", "merged")],
        )):  # fmt: skip
            c = self.moment(utc(2020, 1, 1), self.now - timedelta(days=1))
            hooks.append({
                "status": "active" if i == 0 else "paused", "updated_by": admin["id"],
                "date_updated": iso_naive(self.updated(c)), "created_by": admin["id"],
                "verify_ssl": True,
                "events": [{"action": a, "object_type": t} for t, a in events],
                "url": f"https://hooks.example.com/close/{i}", "date_created": iso_naive(c),
                "id": self.id("whsub", SHORT_ID),
            })  # fmt: skip
        org.put_many(o.WEBHOOK, hooks)
