"""Seeded generator of a realistic Close organisation (`generate_org`).

Deterministic for a seed: one `random.Random(seed)`, never the global generator, never the
wall clock. History is spread over a fixed range (2019-01-01 .. the org's `now`,
2026-10-01 by default). Object shapes follow the samples in Close's API reference
(the lead: the newest sample, in Close API: Leads, List Leads).

Built-in traps a connector must survive:
- exact `date_created` ties: leads imported in batches share one timestamp (and so do
  their Created activities); every 10th contact/opportunity/task/activity of a kind
  copies the previous one's `date_created`;
- meetings whose `date_created` (= start time: Close API: Activities, Meetings) lies after `now`,
  with a `date_updated` (sync time) *before* `date_created`;
- custom values of every type (text, multi-line textarea, int and float numbers, date,
  datetime with non-UTC offsets, single and multi choices, single and multi users, contact
  ids on opportunities, hidden), omitted when empty;
- task `date` both date-only and datetime; tasks of every subtype, some without a lead;
- an inactive membership whose user is not listed by `/user/`.

Parts (mixins of one generator, run in dependency order): `config.py` (people, statuses,
pipelines, configuration resources), `custom_fields.py`, `leads.py` (with contacts,
subscriptions, opportunities), `activities.py` + `emails.py`, `tasks.py`; `base.py` holds
the rng, the organisation under construction and the shared helpers; `runner.py` assembles
them. `chunks.py` makes the same organisation chunk by chunk, for sizes too big to hold
(`GeneratedChunks`), and the configuration alone (`generate_config`).
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from datetime import datetime

from ..org import FakeOrg
from .base import DEFAULT_NOW, DEFAULT_START
from .chunks import GeneratedChunks, generate_config
from .runner import ACTIVITY_KINDS, Generator, kind_counts, normalise_per_lead

__all__ = [
    "ACTIVITY_KINDS",
    "DEFAULT_NOW",
    "DEFAULT_START",
    "GeneratedChunks",
    "generate_config",
    "generate_org",
]


def generate_org(
    seed: int = 0,
    leads: int = 50,
    contacts_per_lead: int = 2,
    opportunities_per_lead: int = 1,
    tasks_per_lead: int = 2,
    activities_per_lead: int = 11,
    users: int = 5,
    *,
    per_lead: Mapping[str, int] | None = None,
    now: datetime = DEFAULT_NOW,
    start: datetime = DEFAULT_START,
    **extra: int,
) -> FakeOrg:
    """Build a deterministic organisation.

    `activities_per_lead` gives every lead one Created activity and spreads the rest over
    the other ten kinds. Skew one kind with `per_lead={"note": 100}` or the equivalent
    keyword `notes_per_lead=100` (kinds: see `ACTIVITY_KINDS`; plural aliases accepted).
    """
    counts = kind_counts(activities_per_lead, normalise_per_lead(per_lead, extra))
    gen = Generator(seed, now, start)
    # Generation only allocates (no cycles to collect); with the cyclic GC on, its full
    # passes rescan every object made so far, ~20% of the time at 20,000 leads.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        gen.run(
            leads=leads,
            contacts_per_lead=contacts_per_lead,
            opportunities_per_lead=opportunities_per_lead,
            tasks_per_lead=tasks_per_lead,
            kind_counts=counts,
            users=max(1, users),
        )
    finally:
        if gc_was_on:
            gc.enable()
    return gen.org
