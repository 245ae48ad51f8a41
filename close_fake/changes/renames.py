"""Renames of users, sequences, email templates and contacts (updates of a name); statuses
and pipelines: `statuses.py`.

Users have no Event Log events; the others log their own `updated`. Copies of
the name elsewhere follow silently (`labels.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import org as o
from ..org import FakeOrg
from .objects import ADMIN
from .updates import update


def rename_user(
    org: FakeOrg,
    target_id: str,
    first_name: str | None = None,
    last_name: str | None = None,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A user's `first_name` / `last_name` change (None: kept). Users have no Event Log events
    (only memberships are `activated` / `deactivated`: Close API: Event Log, List of events):
    nothing is logged; the user's `date_updated` moves; with `labels="follow"` every `user_name`,
    `created_by_name`, `updated_by_name` and `assigned_to_name` naming the user follows, silently.
    Returns the user."""
    changes = {
        k: val for k, val in (("first_name", first_name), ("last_name", last_name))
        if val is not None
    }  # fmt: skip
    if not changes:
        raise ValueError("Give a first_name and/or a last_name.")
    if not all(isinstance(val, str) for val in changes.values()):
        raise ValueError("Names must be strings.")
    return update(org, o.USER, target_id, changes, user_id=user_id, api_key_id=api_key_id, at=at)


def _rename(
    org: FakeOrg,
    collection: str,
    object_id: str,
    name: str,
    user_id: str | None,
    api_key_id: str | None,
    at: datetime | None,
) -> dict[str, Any]:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("A name must be a non-empty string.")
    return update(org, collection, object_id, {"name": name}, user_id=user_id,
                  api_key_id=api_key_id, at=at)  # fmt: skip


def rename_sequence(
    org: FakeOrg,
    sequence_id: str,
    name: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A sequence's new `name`: `sequence.updated` (Close API: Event Log, List of events); with
    `labels="follow"` the emails' `sequence_name` follows, silently. Returns the sequence."""
    return _rename(org, o.SEQUENCE, sequence_id, name, user_id, api_key_id, at)


def rename_email_template(
    org: FakeOrg,
    template_id: str,
    name: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """An email template's new `name`: `email_template.updated` (Close API: Event Log, List of
    events); with `labels="follow"` the emails' `template_name` follows, silently. Returns the
    template."""
    return _rename(org, o.EMAIL_TEMPLATE, template_id, name, user_id, api_key_id, at)


def rename_contact(
    org: FakeOrg,
    contact_id: str,
    name: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A contact's new `name` (`update` with `name`): `contact.updated` (its
    `display_name` follows when it showed the name); with `labels="follow"` the tasks' and
    opportunities' `contact_name` follows, silently. Returns the contact."""
    return _rename(org, o.CONTACT, contact_id, name, user_id, api_key_id, at)
