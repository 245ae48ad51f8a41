"""Random renames whose names are copied onto other objects: statuses, users, pipelines,
sequences, email templates and contacts (the copies follow silently); opportunity statuses
moved between pipelines (their opportunities move with them, silently)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .. import changes as c
from .. import org as o
from ..org import FakeOrg
from .picks import _FIRST_NAMES, _LAST_NAMES, _PEOPLE, Change, _pick, _renamed, _user


def _move_status(org: FakeOrg, rng: random.Random) -> str | None:
    """`PUT /pipeline/{id}/` with `statuses`: an opportunity status moved in from another
    pipeline (which keeps one at least), or the pipeline's statuses reordered."""
    pipelines = org.all(o.PIPELINE)
    if not pipelines:
        return None
    pipe = rng.choice(pipelines)
    own = [s["id"] for s in org.children(o.OPPORTUNITY_STATUS, "pipeline_id", pipe["id"])]
    movable = [s for s in org.all(o.OPPORTUNITY_STATUS) if s["pipeline_id"] != pipe["id"]
               and len(org.children(o.OPPORTUNITY_STATUS, "pipeline_id", s["pipeline_id"])) > 1]
    if movable and rng.random() < 0.6:
        status = rng.choice(movable)
        order = [*own]
        order.insert(rng.randint(0, len(own)), status["id"])
        c.update_pipeline(org, pipe["id"], statuses=order, user_id=_user(org, rng))
        return f"pipeline {pipe['id']} took status {status['id']}"
    if len(own) < 2:
        return None
    order = own[:]
    while order == own:
        rng.shuffle(order)
    c.update_pipeline(org, pipe["id"], statuses=order, user_id=_user(org, rng))
    return f"pipeline {pipe['id']} reordered"


def _rename_user(org: FakeOrg, rng: random.Random) -> str | None:
    """A user (active or former member) gets a new full name, unique in the organisation
    (user custom fields map exact names to users: Close API: Custom Fields)."""
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


def _rename_named(
    collection: str, rename: Callable[..., dict[str, Any]], what: str, key: str = "name"
) -> Change:
    """A pipeline, sequence, email template or status gets a new `name` (`label`) with a
    ` ~N` suffix, as its `PUT` does."""

    def run(org: FakeOrg, rng: random.Random) -> str | None:
        obj = _pick(rng, org.all(collection))
        if obj is None:
            return None
        rename(org, obj["id"], _renamed(rng, obj.get(key) or what), user_id=_user(org, rng))
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
