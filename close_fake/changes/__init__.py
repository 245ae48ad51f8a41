"""Object changes that emit the Event Log entries Close documents (Close API: Event Log).

Tests change a running fake organisation between two syncs and expect the events a real
Close would log:

    from close_fake import changes as c, generate_org, org as o

    org = generate_org(seed=1, leads=5)
    lead = c.create(org, o.LEAD, {"name": "Acme", "contacts": [{"name": "Ann"}]})
    field_id = org.all(o.CUSTOM_FIELD_LEAD)[0]["id"]
    c.update(org, o.LEAD, lead["id"], {"name": "Acme Inc", f"custom.{field_id}": None})
    task = next(t for t in org.all(o.TASK) if t["_type"] == "lead")
    c.update(org, o.TASK, task["id"], {"is_complete": True})
    c.merge_leads(org, org.all(o.LEAD)[0]["id"], lead["id"])
    c.delete(org, o.LEAD, lead["id"])  # and its contacts, opportunities, tasks, activities

Every call is one request (`events.request`): its events share a request id, user, time
and `meta.request_method` / `request_path` (those of the equivalent API call). The rules
of the `FakeOrg` contract hold: stored objects are replaced, never edited, under
`org.lock`. Invalid input raises `ValueError`, unknown ids `KeyError`.

What each change emits (our reading of the List of events there, README "Changes"):
- create: `<type>.created`; a contact also `lead.updated` (`contact_ids`); a lead with
  nested `contacts` (its data shows them) then `contact.created` for each; a new lead gets a
  `Created` activity, which has no events.
- update: `<type>.updated` with `changed_fields` / `previous_data` (no event when nothing
  but `date_updated`/`updated_by` changed); a lead's status change also creates (or, by the
  same user within the consolidation window, updates, or when reverted deletes) a
  LeadStatusChange activity, an opportunity's an OpportunityStatusChange; completing a
  `lead` task adds `task.lead.completed`, a TaskCompleted activity and `lead.updated`
  (un-completing deletes the activity); email/SMS `status: sent` adds `sent`, meeting
  statuses `scheduled`/`started`/`completed`/`canceled`; a contact moved to another lead
  updates both leads; an email changes its thread (`activity.email_thread.updated`).
- delete: `<type>.deleted`; a lead first deletes its activities, tasks, opportunities and
  contacts (each `deleted`; Created activities silently); a contact its sequence
  subscriptions and updates its lead; a thread its emails; the last email of a thread
  deletes the thread.
- merge_leads: children moved (`updated`, new `lead_id`), destination `updated`, source
  `deleted`, then `lead.merged` (data: the destination); all carry
  `meta.merge_source_lead_id` / `merge_destination_lead_id` (Close API: Event Log, List of events).
- renames (`rename_user`, `rename_lead_status`, `rename_opportunity_status`,
  `rename_pipeline`, `rename_sequence`, `rename_email_template`, `rename_contact`; updates of
  a `name` or `label`): the renamed object's own events only (users and pipelines have none);
  copies of the name elsewhere follow silently (`_follow_labels`). `update_pipeline` also
  reorders a pipeline's statuses or moves one in from another pipeline (no events; the
  opportunities in a moved status move with it, silently).

Modules: `objects.py` (new objects, derived values), `touches.py` (effects on related
objects), `creates.py`, `updates.py`, `labels.py` (copied names), `renames.py`,
`statuses.py`, `deletes.py`, `merges.py`. This package is the namespace callers use:
`from close_fake import changes as c`.
"""

from .creates import create
from .deletes import delete
from .labels import NAME_COPIES, USER_NAME_COPIES
from .merges import merge_leads
from .objects import ADMIN, ID_PREFIXES
from .renames import rename_contact, rename_email_template, rename_sequence, rename_user
from .statuses import (
    rename_lead_status,
    rename_opportunity_status,
    rename_pipeline,
    update_pipeline,
)
from .updates import update

__all__ = [
    "ADMIN",
    "ID_PREFIXES",
    "NAME_COPIES",
    "USER_NAME_COPIES",
    "create",
    "delete",
    "merge_leads",
    "rename_contact",
    "rename_email_template",
    "rename_lead_status",
    "rename_opportunity_status",
    "rename_pipeline",
    "rename_sequence",
    "rename_user",
    "update",
    "update_pipeline",
]
