"""Positions in collection order (`close_fake.positions`): `FakeOrg.ranked` views and the
`children()` indexes stay equal to the lists a scan of the collection gives, through random
changes (which is what keeps `random_changes` drawing exactly what it drew with lists)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from close_fake import FakeOrg, generate_org, random_changes
from close_fake import changes as c
from close_fake import org as o
from close_fake.positions import Ranks

ALL_KINDS = {kind: 1 for kind in ("rename_status", "rename_user", "rename_contact",
                                  "delete_field", "retype_field", "rename_choice")}  # fmt: skip


def _emailed(org: FakeOrg, contact: dict[str, Any]) -> bool:
    return bool(contact.get("emails")) and not org.children(
        o.SEQUENCE_SUBSCRIPTION, "contact_id", contact["id"]
    )


def _note(org: FakeOrg, act: dict[str, Any]) -> bool:
    return act["_type"] == "Note"


def test_ranks_count_and_kth_follow_every_change() -> None:
    rng = random.Random(1)
    for _ in range(100):
        members = [rng.random() < 0.5 for _ in range(rng.randint(0, 50))]
        ranks = Ranks(bytes(members))
        for _ in range(60):
            slot, on = rng.randint(0, len(members) + 40), rng.random() < 0.6
            ranks.set(slot, on)
            members += [False] * (slot + 1 - len(members))
            members[slot] = on
            expected = [i for i, member in enumerate(members) if member]
            assert ranks.count == len(expected)
            assert [ranks.kth(k) for k in range(len(expected))] == expected


@pytest.mark.parametrize("seed", [1, 2])
def test_ranked_views_equal_the_filtered_lists(seed: int) -> None:
    org = generate_org(seed=seed, leads=25)
    views = {
        "leads": (org.ranked(o.LEAD), lambda: org.all(o.LEAD)),
        "notes": (org.ranked(o.ACTIVITY, _note), lambda: org.activities("Note")),
        "unsubscribed": (
            org.ranked(o.CONTACT, _emailed, watch=(o.SEQUENCE_SUBSCRIPTION, "contact_id")),
            lambda: [x for x in org.all(o.CONTACT) if _emailed(org, x)],
        ),
    }
    rng = random.Random(seed)
    for _ in range(6):
        random_changes(org, rng, 60, weights={**ALL_KINDS, "subscribe": 6, "merge_leads": 3})
        for name, (view, scan) in views.items():
            expected = scan()
            assert len(view) == len(expected), name
            assert list(view) == expected and [view[i] for i in range(len(view))] == expected
            assert view[-1] is expected[-1] and view[1:3] == expected[1:3]
    with pytest.raises(IndexError):
        views["leads"][0][len(views["leads"][0])]
    assert org.ranked(o.ACTIVITY, _note) is views["notes"][0]  # one view per predicate


def test_a_held_group_never_changes_and_groups_stay_in_collection_order() -> None:
    org = generate_org(seed=3, leads=12)
    lead_ids = [x["id"] for x in org.all(o.LEAD)]
    held = org.children(o.ACTIVITY, "lead_id", lead_ids[0])
    before = list(held)
    for key in ("_type", "user_id"):  # built now, kept up to date by the writes below
        org.children(o.ACTIVITY, key, "-")
    c.merge_leads(org, lead_ids[1], lead_ids[0])  # the source's activities join the group
    c.create(org, o.ACTIVITY, {"_type": "Note", "lead_id": lead_ids[0], "note": "new"})
    c.delete(org, o.ACTIVITY, before[-1]["id"])
    assert held == before
    now = org.children(o.ACTIVITY, "lead_id", lead_ids[0])
    assert now == [x for x in org.all(o.ACTIVITY) if x["lead_id"] == lead_ids[0]]
    assert len(now) > len(before)
    random_changes(org, random.Random(4), 80, weights=ALL_KINDS)
    fresh = org.snapshot()
    for key in ("lead_id", "_type", "user_id"):
        for value in {x.get(key) for x in org.all(o.ACTIVITY)} - {None}:
            assert org.children(o.ACTIVITY, key, value) == fresh.children(o.ACTIVITY, key, value)
