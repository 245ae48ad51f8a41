"""Random rounds of changes for randomized tests and benchmarks (`random_changes`).

Each change goes through `changes` / `mutations`, so it emits the events Close
would log. Deterministic: the same organisation (same history) and the same
`random.Random` state give the same changes, ids and, with a frozen clock, timestamps.

    import random
    from close_fake import generate_org, random_changes

    org = generate_org(seed=7, leads=20)
    done = random_changes(org, random.Random(7), 50)  # ["update_lead lead lead_…: name", ...]

Modules: `rounds.py` (`random_changes`, the weights), `objects.py`, `fields.py` and
`renames.py` (the kinds of change), `picks.py` (what they draw from).
"""

from .fields import _VALUE_KINDS as _VALUE_KINDS  # tests list the field kinds with values
from .fields import _column as _column  # and compare column kinds before and after a retype
from .picks import MIN_LEADS, Change
from .rounds import DEFAULT_WEIGHTS, random_changes

__all__ = ["DEFAULT_WEIGHTS", "MIN_LEADS", "Change", "random_changes"]
