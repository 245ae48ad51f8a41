"""Random renames whose names are copied onto other objects: statuses, users, pipelines,
sequences, email templates and contacts (the copies follow silently)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .. import changes as c
from .. import org as o
from ..org import FakeOrg
from .picks import _FIRST_NAMES, _LAST_NAMES, _PEOPLE, Change, _pick, _renamed, _user


def _rename_status(org: FakeOrg, rng: random.Random) -> str | None:
    status = _pick(rng, org.all(o.LEAD_STATUS))
    if status is None:
        return None
    label = status["label"].split(" ~")[0] + f" ~{rng.randint(1, 999)}"
    c.update(org, o.LEAD_STATUS, status["id"], label=label, user_id=_user(org, rng))
    return f"lead status {status['id']}"


def _rename_user(org: FakeOrg, rng: random.Random) -> str | None:
    """A user (active or former member) gets a new full name, unique in the organisation
    (user custom fields map exact names to users [003:4283-4285])."""
    user = _pick(rng, org.all(o.USER))
    if user is None:
        return None
    taken = {org.user_name(u["id"]) for u in org.all(o.USER)}
    for _ in range(50):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        if f"{first} {last}" not in taken:
            break
    else:
        last = _renamed(rng, last)
    c.rename_user(org, user["id"], first, last, user_id=_user(org, rng))
    return f"user {user['id']}"


def _rename_named(collection: str, rename: Callable[..., dict[str, Any]], what: str) -> Change:
    """A pipeline, sequence or email template gets a new `name` (` ~N` suffix)."""

    def run(org: FakeOrg, rng: random.Random) -> str | None:
        obj = _pick(rng, org.all(collection))
        if obj is None:
            return None
        rename(org, obj["id"], _renamed(rng, obj.get("name") or what), user_id=_user(org, rng))
        return f"{what} {obj['id']}"

    return run


def _rename_contact(org: FakeOrg, rng: random.Random) -> str | None:
    contact = _pick(rng, org.ranked(o.CONTACT))
    if contact is None:
        return None
    people = [p for p in _PEOPLE if p and p != contact.get("name")]
    name = rng.choice(people) + rng.choice(("", " Jr.", " Sr."))
    if name == contact.get("name"):
        name = _renamed(rng, name)
    c.rename_contact(org, contact["id"], name, user_id=_user(org, rng))
    return f"contact {contact['id']}"
