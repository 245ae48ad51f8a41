"""`random_changes`: rounds of changes of weighted random kinds (`DEFAULT_WEIGHTS`).

A kind that does not apply (nothing to delete ...) is drawn again; every kind lives in
`objects.py`, `fields.py` or `renames.py`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import timedelta

from .. import changes as c
from .. import org as o
from ..org import FakeOrg
from .fields import (
    _add_field,
    _clear_custom,
    _delete_field,
    _rename_choice,
    _rename_field,
    _retype_field,
    _set_custom,
)
from .objects import (
    _complete_task,
    _create_activity,
    _create_contact,
    _create_lead,
    _create_opportunity,
    _create_task,
    _delete_activity,
    _delete_lead,
    _delete_of,
    _merge_leads,
    _repeat_update,
    _subscribe,
    _update_activity,
    _update_contact,
    _update_lead,
    _update_opportunity,
    _update_subscription,
    _update_task,
)
from .picks import Change
from .renames import _move_status, _rename_contact, _rename_named, _rename_user

# Relative weights of the kinds of change. Off by default (weight 0, so the default random
# sequences stay as they were): `rename_status` (a lead status's label),
# `rename_opportunity_status`, `rename_user`, `rename_pipeline`, `rename_sequence`,
# `rename_template` (an email template), `rename_contact`, whose names are copied onto other
# objects and follow silently (see `EventLog.labels`); `move_status` (a pipeline takes an
# opportunity status from another or reorders its own: the status's opportunities move with
# it, silently); `delete_field`, `retype_field` (a change of type or of
# `accepts_multiple_values` that changes the field's column type, values converted by
# `mutations.update_field`) and `rename_choice`, which change custom values without events.
DEFAULT_WEIGHTS: dict[str, float] = {
    "create_lead": 3,
    "update_lead": 6,
    "delete_lead": 1,
    "merge_leads": 1,
    "create_contact": 3,
    "update_contact": 4,
    "delete_contact": 1,
    "create_opportunity": 2,
    "update_opportunity": 4,
    "delete_opportunity": 1,
    "create_task": 2,
    "update_task": 2,
    "complete_task": 2,
    "delete_task": 1,
    "create_activity": 4,
    "update_activity": 4,
    "delete_activity": 1,
    "set_custom": 4,
    "clear_custom": 2,
    "add_field": 1,
    "rename_field": 1,
    "repeat_update": 2,
    "rename_status": 0,
    "subscribe": 1,
    "update_subscription": 1,
    "rename_user": 0,
    "rename_pipeline": 0,
    "rename_sequence": 0,
    "rename_template": 0,
    "rename_contact": 0,
    "rename_opportunity_status": 0,
    "move_status": 0,
    "delete_field": 0,
    "retype_field": 0,
    "rename_choice": 0,
}


def random_changes(
    org: FakeOrg,
    rng: random.Random,
    n: int,
    *,
    weights: Mapping[str, float] | None = None,
    step: timedelta | None = None,
) -> list[str]:
    """Apply `n` random changes (a mix of creates, updates incl. cleared custom values and
    edited activities, deletes, merges, custom field additions and renames; `weights`
    overrides `DEFAULT_WEIGHTS` per kind) and return one description per change.
    `step`: advance the organisation's clock by that much before each change."""
    table = dict(DEFAULT_WEIGHTS)
    if weights:
        unknown = set(weights) - set(table)
        if unknown:
            raise ValueError(f"Unknown kinds of change: {sorted(unknown)}.")
        table.update(weights)
    kinds = [k for k, w in table.items() if w > 0]
    if not kinds:
        raise ValueError("No kind of change has a positive weight.")
    shares = [table[k] for k in kinds]
    out: list[str] = []
    while len(out) < n:
        if step is not None:
            org.advance(step)
        for _ in range(20):  # a kind may not apply (nothing to delete ...): pick again
            kind = rng.choices(kinds, shares)[0]
            done = _KINDS[kind](org, rng)
            if done is not None:
                out.append(f"{kind} {done}")
                break
        else:
            raise RuntimeError("No applicable change found in 20 tries.")
    return out


_KINDS: dict[str, Change] = {
    "create_lead": _create_lead,
    "update_lead": _update_lead,
    "delete_lead": _delete_lead,
    "merge_leads": _merge_leads,
    "create_contact": _create_contact,
    "update_contact": _update_contact,
    "delete_contact": _delete_of(o.CONTACT),
    "create_opportunity": _create_opportunity,
    "update_opportunity": _update_opportunity,
    "delete_opportunity": _delete_of(o.OPPORTUNITY),
    "create_task": _create_task,
    "update_task": _update_task,
    "complete_task": _complete_task,
    "delete_task": _delete_of(o.TASK),
    "create_activity": _create_activity,
    "update_activity": _update_activity,
    "delete_activity": _delete_activity,
    "set_custom": _set_custom,
    "clear_custom": _clear_custom,
    "add_field": _add_field,
    "rename_field": _rename_field,
    "repeat_update": _repeat_update,
    "rename_status": _rename_named(o.LEAD_STATUS, c.rename_lead_status, "lead status", "label"),
    "rename_opportunity_status": _rename_named(
        o.OPPORTUNITY_STATUS, c.rename_opportunity_status, "opportunity status", "label"
    ),
    "move_status": _move_status,
    "subscribe": _subscribe,
    "update_subscription": _update_subscription,
    "rename_user": _rename_user,
    "rename_pipeline": _rename_named(o.PIPELINE, c.rename_pipeline, "pipeline"),
    "rename_sequence": _rename_named(o.SEQUENCE, c.rename_sequence, "sequence"),
    "rename_template": _rename_named(o.EMAIL_TEMPLATE, c.rename_email_template, "template"),
    "rename_contact": _rename_contact,
    "delete_field": _delete_field,
    "retype_field": _retype_field,
    "rename_choice": _rename_choice,
}
assert set(_KINDS) == set(DEFAULT_WEIGHTS)
