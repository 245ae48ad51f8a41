"""Copied names that follow a rename, silently: `lead_name`, `status_label`, `user_name`...

Where each copy of a name lives (`NAME_COPIES`, `USER_NAME_COPIES`) and `_follow_labels`,
which the Event Log's `labels="follow"` switches on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import events as ev
from .. import org as o
from ..org import FakeOrg

# Copies of a user's name, by the key holding the user's id (Close API: Activities; Tasks).
USER_NAME_COPIES: tuple[tuple[str, str], ...] = (
    ("user_id", "user_name"),
    ("created_by", "created_by_name"),
    ("updated_by", "updated_by_name"),
    ("assigned_to", "assigned_to_name"),
)
# Where the other copied names live: renamed collection -> (the name's key there, then
# (collection holding copies, key holding the renamed object's id, the copy's key, indexed)).
# `indexed`: the copies are found with `org.children` (an index kept anyway); otherwise by a
# scan, so rare renames do not make every write keep one more index up to date.
NAME_COPIES: dict[str, tuple[str, tuple[tuple[str, str, str, bool], ...]]] = {
    o.LEAD: ("display_name", (
        (o.OPPORTUNITY, "lead_id", "lead_name", True),
        (o.TASK, "lead_id", "lead_name", True),
    )),
    o.CONTACT: ("name", (
        (o.TASK, "contact_id", "contact_name", True),
        (o.OPPORTUNITY, "contact_id", "contact_name", True),
    )),
    o.LEAD_STATUS: ("label", ((o.LEAD, "status_id", "status_label", True),)),
    o.OPPORTUNITY_STATUS: ("label", ((o.OPPORTUNITY, "status_id", "status_label", True),)),
    o.PIPELINE: ("name", (
        (o.OPPORTUNITY, "pipeline_id", "pipeline_name", False),
        (o.OPPORTUNITY_STATUS, "pipeline_id", "pipeline_name", False),
    )),
    o.SEQUENCE: ("name", (
        (o.ACTIVITY, "sequence_id", "sequence_name", False),
        (o.SEQUENCE_SUBSCRIPTION, "sequence_id", "sequence_name", False),
    )),
    o.EMAIL_TEMPLATE: ("name", ((o.ACTIVITY, "template_id", "template_name", False),)),
}  # fmt: skip
# Collections that hold no copies of a user's name.
_NO_USER_NAMES = frozenset({o.USER, o.MEMBERSHIP, o.INACTIVE_MEMBERSHIP})


def _follow_labels(org: FakeOrg, collection: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """With `labels="follow"`, every current copy of a renamed object's name follows,
    silently (no events, no `date_updated`), as an API computing them would show: a lead's
    `display_name` -> `lead_name` (opportunities, tasks); a contact's `name` ->
    `contact_name` (tasks, opportunities that carry it); a status `label` -> `status_label`
    (leads, opportunities); a pipeline's `name` -> `pipeline_name` (opportunities, statuses
    that carry it); a sequence's `name` -> `sequence_name` (emails, subscriptions that carry
    it); an email template's `name` -> `template_name` (emails); a user's name
    (`org.user_name`) -> `user_name`, `created_by_name`, `updated_by_name`,
    `assigned_to_name` on every object naming that user.

    Not copies, so they stay: status-change activities' `old_status_label` /
    `new_status_label` (history: the labels at the time of the change, as the Event Log's
    old `data` keeps them), email envelopes' and meeting attendees' `name`s (the message and
    calendar data), connected accounts' identities and subscriptions' `sender_name` (the
    sending identity, edited on its own)."""
    if ev.log_of(org).labels != "follow":
        return
    if collection == o.USER:
        before, after = _full_name(old), _full_name(new)
        if before != after:
            _follow_user_name(org, new["id"], after)
        return
    source = NAME_COPIES.get(collection)
    if source is None:
        return
    name_key, copies = source
    label = new.get(name_key)
    if old.get(name_key) == label:
        return
    for coll, key, label_key, indexed in copies:
        objs = (
            org.children(coll, key, new["id"])
            if indexed
            else [x for x in org.collections[coll].values() if x.get(key) == new["id"]]
        )
        changed = [
            {**x, label_key: label} for x in objs if label_key in x and x[label_key] != label
        ]
        if changed:
            org.put_many(coll, changed)


def _full_name(user: Mapping[str, Any]) -> str:
    """A user's name as `org.user_name` builds it."""
    return f"{user.get('first_name') or ''} {user.get('last_name') or ''}".strip()


def _follow_user_name(org: FakeOrg, user_id: str, name: str) -> None:
    """Every `*_name` copy naming the user, in every collection (one scan each)."""
    for coll in o.COLLECTIONS:
        if coll in _NO_USER_NAMES:
            continue
        changed = []
        for obj in org.collections[coll].values():
            keys = [
                name_key
                for id_key, name_key in USER_NAME_COPIES
                if obj.get(id_key) == user_id and name_key in obj and obj[name_key] != name
            ]
            if keys:
                changed.append({**obj, **dict.fromkeys(keys, name)})
        if changed:
            org.put_many(coll, changed)
