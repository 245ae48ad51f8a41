"""Paging: every row exactly once across many pages, a low `_skip` cap, 429s, 5xx and drops."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from close_fake import FakeClose, Faults, generate_org
from tests.helpers import ids, sync
from tests.oracle import expected_objects

MAX_SKIP = 1_000


def _refused(fake: FakeClose) -> list:
    """The 400s of list reads (the Event Log is first asked without filters, for Close's
    time: a 400 where Close refuses that)."""
    return [r for r in fake.requests if r.status == 400 and r.endpoint != "/event/"]


def _skips(fake: FakeClose, endpoint: str) -> list[int]:
    return [int(r.params.get("_skip", 0)) for r in fake.requests if r.endpoint == endpoint]


def test_20k_notes_under_a_low_skip_cap_with_faults_load_exactly_once(tmp_path: Path):
    org = generate_org(seed=5, leads=200, activities_per_lead=2, notes_per_lead=101)
    expected = set(expected_objects(org, "notes"))
    assert len(expected) >= 20_000
    faults = Faults(seed=3, p_429=0.05, p_500=0.02, p_503=0.02, p_drop=0.01, p_partial=0.01,
                    rate_reset=0.01)
    with FakeClose(org, max_skip=MAX_SKIP, faults=faults) as fake:
        pipeline = sync(fake, tmp_path, resources=["notes"], max_skip=MAX_SKIP, max_attempts=12,
                        full_load="lists")

    loaded = ids(pipeline, "close.notes")
    assert len(loaded) == len(expected)
    assert set(loaded) == expected
    # the faults really happened, and no request ever ran into the cap
    assert faults.injected["429"] > 0 and faults.injected["drop"] + faults.injected["partial"] > 0
    assert faults.injected["500"] + faults.injected["503"] > 0
    assert max(_skips(fake, "/activity/note/")) + 200 <= MAX_SKIP
    assert not _refused(fake)


def test_leads_and_contacts_past_the_cap_use_a_restarting_keyset_walk(tmp_path: Path):
    org = generate_org(seed=8, leads=1_500, contacts_per_lead=1, activities_per_lead=0,
                       tasks_per_lead=0, opportunities_per_lead=0)
    with FakeClose(org, max_skip=MAX_SKIP, search_walk_max=400) as fake:
        pipeline = sync(fake, tmp_path, resources=["leads", "contacts"], max_skip=MAX_SKIP,
                        full_load="lists")

    for table in ("leads", "contacts"):
        loaded = ids(pipeline, f"close.{table}")
        assert Counter(loaded).most_common(1)[0][1] == 1, f"duplicate {table}"
        assert set(loaded) == set(expected_objects(org, table)), table
    searches = [r for r in fake.requests if r.endpoint == "/data/search/"]
    walks = [r for r in searches if not r.body.get("cursor")]
    assert len(walks) >= 3, "the walk cap (400) must have forced restarts"
    assert not _refused(fake)


def test_contacts_carry_every_field_through_the_walk(tmp_path: Path):
    """Objects read by the walk must equal objects read by offset pages."""
    org = generate_org(seed=9, leads=60, contacts_per_lead=2)
    with FakeClose(org, max_skip=40) as walked, FakeClose(org) as paged:
        by_walk = sync(walked, tmp_path / "walk", resources=["contacts"], max_skip=40,
                       full_load="lists")
        by_pages = sync(paged, tmp_path / "pages", resources=["contacts"], full_load="lists")
    query = ("SELECT id, lead_id, name, title, date_created FROM close.contacts ORDER BY id")
    from tests.helpers import rows
    assert rows(by_walk, query) == rows(by_pages, query)
    email_query = "SELECT email, type FROM close.contacts__emails ORDER BY email, type"
    assert rows(by_walk, email_query) == rows(by_pages, email_query)


def test_smaller_page_cap_is_detected_and_adapted_to(tmp_path: Path):
    org = generate_org(seed=4, leads=40)
    with FakeClose(org, page_caps={"/activity/call/": 7}) as fake:
        pipeline = sync(fake, tmp_path, resources=["calls"], full_load="lists")
    assert set(ids(pipeline, "close.calls")) == set(expected_objects(org, "calls"))
    limits = [int(r.params["_limit"]) for r in fake.requests if r.endpoint == "/activity/call/"]
    assert limits[0] > 7 and set(limits[1:]) == {7}


@pytest.mark.parametrize("max_skip", [30, 100])
def test_windows_split_recursively_and_lose_nothing(tmp_path: Path, max_skip: int):
    """Ties on date_created and future meetings included (the generator makes both)."""
    org = generate_org(seed=12, leads=80)
    with FakeClose(org, max_skip=max_skip) as fake:
        pipeline = sync(fake, tmp_path, resources=["meetings", "tasks", "opportunities"],
                        max_skip=max_skip, full_load="lists")
    for table in ("meetings", "tasks", "opportunities"):
        loaded = ids(pipeline, f"close.{table}")
        assert len(loaded) == len(set(loaded))
        assert set(loaded) == set(expected_objects(org, table)), table


def test_a_lower_cap_than_configured_is_learned_from_the_400_and_nothing_is_lost(tmp_path: Path):
    """The connector believes Close's documented 250,000; this server caps at 300."""
    org = generate_org(seed=6, leads=60, activities_per_lead=2, notes_per_lead=25)
    with FakeClose(org, max_skip=300) as fake:
        pipeline = sync(fake, tmp_path, resources=["notes"], full_load="lists")
    loaded = ids(pipeline, "close.notes")
    assert len(loaded) == len(set(loaded)) == len(expected_objects(org, "notes"))
    refused = _refused(fake)
    assert len(refused) == 1, "after the first 400 the learned cap must be respected"


def test_independent_endpoints_are_read_concurrently(tmp_path: Path):
    """Three endpoints each hold their first request for 3 s: read one after another, each
    would arrive after the previous one was answered; read concurrently, all three arrive
    while the first is still held. An order of events, not a time budget."""
    faults = Faults(slow_seconds=3.0)
    slow_paths = ("/role/", "/pipeline/", "/status/lead/")
    for path in slow_paths:
        faults.fail_next(path, ["slow"])
    with FakeClose(generate_org(seed=1, leads=3), faults=faults) as fake:
        sync(fake, tmp_path, resources=["roles", "pipelines", "lead_statuses"])
        held = sorted(record.at for record in fake.requests if record.fault == "slow")
    assert faults.injected["slow"] == 3 and len(held) == 3
    assert held[-1] - held[0] < faults.slow_seconds, \
        f"endpoints were read one after another (arrivals {held[-1] - held[0]:.1f}s apart)"
