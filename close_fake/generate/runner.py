"""The generator assembled from its parts (`Generator`) and the activities per lead of each
kind (`kind_counts`): shared by `generate_org` and the chunked generation (`chunks.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..common import iso, utc
from .activities import ActivityMixin
from .base import GenBase
from .config import ConfigMixin
from .custom_fields import CustomFieldMixin
from .leads import LeadMixin
from .tasks import TaskMixin

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


def kind_counts(activities_per_lead: int, per_lead: Mapping[str, int]) -> dict[str, int]:
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


def normalise_per_lead(per_lead: Mapping[str, int] | None, extra: Mapping[str, Any]) -> dict:
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


class Generator(ConfigMixin, CustomFieldMixin, LeadMixin, ActivityMixin, TaskMixin, GenBase):
    """Runs the parts in dependency order."""

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
        self.make_config(users)
        self.make_leads(self.lead_times(leads), contacts_per_lead)
        self.make_subscriptions()
        self.make_opportunities(opportunities_per_lead)
        self.make_activities(kind_counts)
        self.make_tasks(tasks_per_lead, kind_counts["task_completed"])
        self.make_orphan_tasks(tasks_per_lead, leads)

    def make_config(self, users: int) -> None:
        """Everything before the leads: people, the organisation's own fields, statuses,
        pipelines, custom fields, configuration resources. Draws the same for any number
        of leads, so every org of a seed (and `users`) has the same configuration."""
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
