"""Incremental runs through the Event Log: after any sequence of changes in Close and syncs,
every table equals Close's current state (the central invariant), on DuckDB and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from close_source.fake import FakeClose, Faults, generate_org
from close_source.fake.churn import random_changes
from tests.conftest import WAREHOUSES, warehouse
from tests.helpers import rows, sync
from tests.invariant import every_table_mismatches


def export_jobs(fake: FakeClose) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.endpoint == "/export/lead/")


def event_reads(fake: FakeClose) -> int:
    return sum(1 for r in fake.requests if r.endpoint == "/event/")


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_random_rounds_of_changes_keep_every_table_equal_to_close(request, tmp_path: Path,
                                                                  kind: str):
    org = generate_org(seed=61, leads=12)
    rng = random.Random(61)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, warehouse=warehouse(request, kind))
        assert export_jobs(fake) == 1
        for round_number in range(4):
            org.advance(timedelta(minutes=7))
            done = random_changes(org, rng, 25, step=timedelta(seconds=11))
            org.advance(timedelta(seconds=30))
            sync(fake, tmp_path, pipeline=pipeline)
            problems = every_table_mismatches(org, pipeline)
            assert not problems, (round_number, problems, done)
        assert export_jobs(fake) == 1  # every later run read the Event Log instead
        assert event_reads(fake) > 0


def test_a_gap_longer_than_the_event_log_keeps_is_healed_by_a_full_reload(tmp_path, caplog):
    org = generate_org(seed=62, leads=8)
    rng = random.Random(62)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
        org.advance(timedelta(days=30))
        random_changes(org, rng, 10)
        sync(fake, tmp_path, pipeline=pipeline)
        assert export_jobs(fake) == 2
    assert "more than 29 days" in caplog.text
    assert not every_table_mismatches(org, pipeline)


def test_a_run_that_dies_loses_and_duplicates_nothing(tmp_path):
    org = generate_org(seed=63, leads=8)
    rng = random.Random(63)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
        org.advance(timedelta(minutes=10))
        random_changes(org, rng, 20, step=timedelta(seconds=5))
    faults = Faults(seed=1, p_500=1.0, paths=["/custom_activity/"])  # read after the events
    with FakeClose(org, faults=faults) as fake, pytest.raises(Exception):  # noqa: B017
        sync(fake, tmp_path, pipeline=pipeline, max_attempts=2)
    with FakeClose(org) as fake:
        sync(fake, tmp_path, pipeline=pipeline)
    assert not every_table_mismatches(org, pipeline)


def test_a_non_admin_key_gets_old_events_without_data_and_reads_objects_by_id(tmp_path):
    org = generate_org(seed=64, leads=8)
    rng = random.Random(64)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
    org.advance(timedelta(minutes=10))
    random_changes(org, rng, 15, step=timedelta(seconds=5))
    org.advance(timedelta(hours=2))  # older than an hour: no `data` for a non-admin
    with FakeClose(org, admin=False) as fake:
        sync(fake, tmp_path, pipeline=pipeline)
        by_id = [r for r in fake.requests if r.endpoint and r.endpoint.endswith("{id}/")]
    assert by_id
    assert not every_table_mismatches(org, pipeline)


def test_merged_leads_are_recorded(tmp_path):
    from close_source.fake import changes

    org = generate_org(seed=65, leads=6)
    source, destination = (lead["id"] for lead in org.all("lead")[:2])
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
        org.advance(timedelta(minutes=10))
        changes.merge_leads(org, source, destination)
        org.advance(timedelta(seconds=30))
        sync(fake, tmp_path, pipeline=pipeline)
    assert rows(pipeline, "SELECT source_lead_id, destination_lead_id FROM close.lead_merges") \
        == [(source, destination)]
    assert rows(pipeline, f"SELECT count(*) FROM close.leads WHERE id = '{source}'") == [(0,)]
    assert not every_table_mismatches(org, pipeline)
