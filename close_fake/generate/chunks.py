"""Chunked generation: the organisation `generate_org` makes, too big to hold at once, as a
sequence of small organisations, each the configuration plus one chunk of leads with
everything under them (`GeneratedChunks`), and the configuration alone (`generate_config`).

The generator's parts draw from one rng in a fixed order: the configuration, every lead's
creation time, then each part over *every* lead in turn (leads with their contacts,
subscriptions, opportunities, activities, tasks). Chunked generation keeps that order: each
part runs over the chunks one after the other with the one rng, and what a part made for a
chunk is spooled to disk (marshal, zlib level 1) for the parts after it, which need the
chunk's earlier objects (contacts for emails, activities for tasks ...). So a chunk holds
exactly the objects `generate_org` makes for its leads (same ids, same values, same order),
and memory holds one chunk at a time, plus the creation times (~60 bytes per lead) while
the leads are made. Chunks end between two different creation times, so every lead of a
later chunk is strictly newer. Not made: the tasks without a lead (made after every
lead's tasks, they belong to no chunk).
"""

from __future__ import annotations

import gc
import marshal
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from .. import org as o
from ..org import FakeOrg
from .base import DEFAULT_NOW, DEFAULT_START
from .runner import Generator, kind_counts, normalise_per_lead

# The parts, in the order they run, and the collections each one fills.
PARTS: dict[str, tuple[str, ...]] = {
    "leads": (o.LEAD, o.CONTACT),
    "subscriptions": (o.SEQUENCE_SUBSCRIPTION,),
    "opportunities": (o.OPPORTUNITY,),
    "activities": (o.ACTIVITY,),
    "tasks": (o.TASK, o.ACTIVITY),  # tasks and their TaskCompleted activities
}
# What a chunk's organisation holds, in `generate_org`'s order of collections.
_LEAD_COLLECTIONS = (o.LEAD, o.CONTACT, o.OPPORTUNITY, o.TASK, o.ACTIVITY,
                     o.SEQUENCE_SUBSCRIPTION)  # fmt: skip


def generate_config(
    seed: int = 0,
    users: int = 5,
    *,
    now: datetime = DEFAULT_NOW,
    start: datetime = DEFAULT_START,
) -> FakeOrg:
    """The configuration of every `generate_org(seed=seed, users=users, now=now,
    start=start, ...)` whatever its leads: users, memberships, roles, groups, the
    organisation's own fields, statuses, pipelines, custom field definitions, custom
    activity types, templates, sequences and the other configuration resources; no leads,
    contacts, opportunities, tasks, activities or subscriptions."""
    gen = Generator(seed, now, start)
    gen.make_config(max(1, users))
    return gen.org


def chunk_bounds(times: list[datetime], size: int) -> list[tuple[int, int]]:
    """[start, end) of each chunk of about `size` leads of `times` (sorted); a chunk ends
    only between two different times."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    bounds, lo = [], 0
    while lo < len(times):
        hi = min(lo + size, len(times))
        while hi < len(times) and times[hi] == times[hi - 1]:
            hi += 1
        bounds.append((lo, hi))
        lo = hi
    return bounds


class GeneratedChunks:
    """`generate_org(...)` (same arguments) chunk by chunk:

        with GeneratedChunks(seed=1, leads=300_000, activities_per_lead=15) as chunks:
            chunks.config  # the configuration (a FakeOrg without leads)
            for org in chunks.orgs(reverse=True):  # newest leads first
                ...  # the configuration + about `chunk_leads` leads and what they hold

    Entering generates every part into the spool (`spool_dir`, a temporary directory by
    default); leaving deletes it. Each `orgs()` organisation is a new FakeOrg: change it
    freely."""

    def __init__(
        self,
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
        chunk_leads: int = 1000,
        spool_dir: str | Path | None = None,
        spool_level: int = 0,
        **extra: int,
    ) -> None:
        self._counts = kind_counts(activities_per_lead, normalise_per_lead(per_lead, extra))
        self._sizes = (leads, contacts_per_lead, opportunities_per_lead, tasks_per_lead)
        self._seed, self._users, self._now, self._start = seed, max(1, users), now, start
        self.chunk_leads = chunk_leads
        self._spool_parent = spool_dir
        self._spool_level = spool_level  # zlib level of the spool; 0: not compressed
        self._spool: Path | None = None
        self.config: FakeOrg | None = None
        self.bounds: list[tuple[int, int]] = []
        self.spooled_bytes = 0  # bytes written to the spool

    def __enter__(self) -> GeneratedChunks:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the spool."""
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    # -- generating ------------------------------------------------------------------------

    def build(self) -> None:
        """Run every part over every chunk, in `generate_org`'s order of draws. The cyclic
        GC is paused meanwhile (as in `generate_org`): the parts make no cycles, and its
        passes over each chunk's fresh objects cost a quarter of the time."""
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            self._build()
        finally:
            if gc_was_on:
                gc.enable()

    def _build(self) -> None:
        self._spool = Path(tempfile.mkdtemp(prefix="close-fake-chunks-", dir=self._spool_parent))
        n_leads, contacts, opportunities, tasks = self._sizes
        gen = Generator(self._seed, self._now, self._start)
        gen.make_config(self._users)
        self.config = gen.org
        times = gen.lead_times(n_leads)
        self.bounds = chunk_bounds(times, self.chunk_leads)
        for k, (lo, hi) in enumerate(self.bounds):
            self._run(gen, "leads", k, partial(gen.make_leads, times[lo:hi], contacts))
        del times
        steps: dict[str, Callable[[], None]] = {
            "subscriptions": gen.make_subscriptions,
            "opportunities": partial(gen.make_opportunities, opportunities),
            "activities": partial(gen.make_activities, self._counts),
            "tasks": partial(gen.make_tasks, tasks, self._counts["task_completed"]),
        }
        for part, step in steps.items():
            for k in range(len(self.bounds)):
                self._restore(gen, self._load(k, list(PARTS).index(part)))
                self._run(gen, part, k, step)

    def _run(self, gen: Generator, part: str, k: int, step: Callable[[], None]) -> None:
        """One part for one chunk, into a scratch organisation, then to the spool."""
        gen.org = self._empty()
        step()
        data = [list(gen.org.collections[name].values()) for name in PARTS[part]]
        blob = marshal.dumps(data)
        if self._spool_level:
            blob = zlib.compress(blob, self._spool_level)
        assert self._spool is not None
        (self._spool / f"{k:06d}.{part}").write_bytes(blob)
        self.spooled_bytes += len(blob)

    def _load(self, k: int, n_parts: int) -> dict[str, list[dict[str, Any]]]:
        """The objects the first `n_parts` parts made for chunk `k`, by collection, in the
        order the parts made them."""
        assert self._spool is not None
        out: dict[str, list[dict[str, Any]]] = {}
        for part in list(PARTS)[:n_parts]:
            blob = (self._spool / f"{k:06d}.{part}").read_bytes()
            data = marshal.loads(zlib.decompress(blob) if self._spool_level else blob)
            for name, objs in zip(PARTS[part], data, strict=True):
                out.setdefault(name, []).extend(objs)
        return out

    @staticmethod
    def _restore(gen: Generator, made: dict[str, list[dict[str, Any]]]) -> None:
        """The generator's per-lead tables of one chunk, as its parts left them."""
        leads = made[o.LEAD]
        gen.leads = leads
        gen.lead_contacts = {lead["id"]: [] for lead in leads}
        for contact in made[o.CONTACT]:
            gen.lead_contacts[contact["lead_id"]].append(contact)
        gen.contact_sub = {s["contact_id"]: s for s in made.get(o.SEQUENCE_SUBSCRIPTION, ())}
        gen.lead_opps = {lead["id"]: [] for lead in leads}
        for opp in made.get(o.OPPORTUNITY, ()):
            gen.lead_opps[opp["lead_id"]].append(opp)
        gen.lead_activities = {lead["id"]: {} for lead in leads}
        for act in made.get(o.ACTIVITY, ()):
            gen.lead_activities[act["lead_id"]].setdefault(act["_type"], []).append(act)

    def _empty(self) -> FakeOrg:
        config = self.config
        assert config is not None
        return FakeOrg(organization_id=config.organization_id,
                       admin_user_id=config.admin_user_id, now=config.now, name=config.name,
                       info=dict(config.info))  # fmt: skip

    # -- reading ---------------------------------------------------------------------------

    def orgs(self, reverse: bool = False) -> Iterator[FakeOrg]:
        """One organisation per chunk: the configuration (copied collections, shared
        objects) and the chunk's leads with everything under them, in `generate_org`'s
        order. Oldest chunk first, or newest first with `reverse`."""
        config = self.config
        if config is None or self._spool is None:
            raise RuntimeError("GeneratedChunks: use it in a `with` block (or call build()).")
        order = range(len(self.bounds))
        for k in reversed(order) if reverse else order:
            org = self._empty()
            for name, objs in config.collections.items():
                if objs:
                    org.collections[name] = dict(objs)
            made = self._load(k, len(PARTS))
            for name in _LEAD_COLLECTIONS:
                org.collections[name] = {x["id"]: x for x in made.get(name, ())}
            yield org
