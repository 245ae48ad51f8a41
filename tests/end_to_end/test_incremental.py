"""Incremental runs through the Event Log: after any sequence of changes in Close and syncs,
every table equals Close's current state (the central invariant), on DuckDB and PostgreSQL,
under each reading of the docs the fake can serve."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import dlt
import pytest

from close_fake import EventSettings, FakeClose, FakeOrg, Faults, generate_org
from close_fake import changes as c
from close_fake import events as ev
from close_fake import org as o
from close_fake.churn import random_changes
from close_source.catalog import CATALOG
from close_source.read.export import exported_tables
from close_source.run.state import HORIZON
from tests.conftest import WAREHOUSES, warehouse
from tests.helpers import rows, sync
from tests.invariant import every_table_mismatches

# Weights of the randomized rounds: every default kind of change, status renames too.
WEIGHTS = {"rename_status": 1}


def export_jobs(fake: FakeClose) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.endpoint == "/export/lead/")


def requests_to(fake: FakeClose, endpoint: str) -> int:
    return sum(1 for r in fake.requests if r.endpoint == endpoint)


def by_id_requests(fake: FakeClose) -> list[str]:
    return [r.path for r in fake.requests if r.endpoint and r.endpoint.endswith("{id}/")
            and r.endpoint.startswith(("/lead/", "/contact/", "/opportunity/", "/task/",
                                       "/activity/"))]


def rounds(org: FakeOrg, rng: random.Random, run: Callable[[], dlt.Pipeline], n: int,
           changes: int, soft: bool = False) -> None:
    """`n` rounds of random changes, a sync after each, the invariant after each sync."""
    ever: dict[str, set[str]] = {}
    for round_number in range(n):
        org.advance(timedelta(minutes=7))
        done = random_changes(org, rng, changes, weights=WEIGHTS, step=timedelta(seconds=11))
        org.advance(timedelta(seconds=30))
        pipeline = run()
        problems = every_table_mismatches(org, pipeline, soft=soft)
        assert not problems, (round_number, problems, done)
        if soft:
            _assert_nothing_lost(pipeline, org, ever)


def _assert_nothing_lost(pipeline: dlt.Pipeline, org: FakeOrg, ever: dict[str, set[str]]) -> None:
    """Soft deletes: every row ever loaded is still there; the deleted ones carry
    `_deleted_at`, and Close really has none of them."""
    for table in ("leads", "contacts", "opportunities", "tasks", "notes", "calls"):
        now = dict(rows(pipeline, f"SELECT id, _deleted_at FROM close.{table}"))
        assert ever.setdefault(table, set()) <= set(now), table
        ever[table] |= set(now)
        deleted = {object_id for object_id, at in now.items() if at is not None}
        collection = {"leads": o.LEAD, "contacts": o.CONTACT, "opportunities": o.OPPORTUNITY,
                      "tasks": o.TASK}.get(table, o.ACTIVITY)
        assert not any(org.get(collection, object_id) for object_id in deleted), table


def test_random_rounds_of_changes_keep_every_table_equal_to_close(request, tmp_path: Path):
    """The docs' strict reading: no unfiltered Event Log query (read per object type and
    action), `id__in` only on tasks. (PostgreSQL: the random run shapes, test_run_shapes.py.)"""
    kind = "duckdb"
    org = generate_org(seed=61, leads=12)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, warehouse=warehouse(request, kind))
        assert export_jobs(fake) == 1
        rounds(org, random.Random(61), lambda: sync(fake, tmp_path, pipeline=pipeline), 5, 30)
        assert export_jobs(fake) == 1  # every later run read the Event Log instead
        assert requests_to(fake, "/event/") > 0


def test_random_rounds_under_the_lenient_readings(tmp_path: Path):
    """Close accepts a date-only window, spells object types as the samples do (`note`,
    `lead.task`, `status_change.lead`), dates events in UTC with offsets, sends flat lead data,
    filters every list by `id__in`, and moves a lead's `date_updated` silently when its
    children change."""
    org = generate_org(seed=66, leads=12)
    ev.configure(org, touch_lead=True)
    settings = EventSettings(filters="unfiltered", object_types=ev.SAMPLE_SPELLINGS,
                             dates="utc", lead_data="flat")
    with FakeClose(org, events=settings, id_filters="all") as fake:
        pipeline = sync(fake, tmp_path)
        rounds(org, random.Random(66), lambda: sync(fake, tmp_path, pipeline=pipeline), 4, 30)
        windows = [r for r in fake.requests if r.endpoint == "/event/"]
        assert windows and all("object_type" not in r.params for r in windows)


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_soft_deletes_keep_deleted_rows_with_their_deletion_time(request, tmp_path: Path,
                                                                 kind: str):
    org = generate_org(seed=67, leads=12)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, warehouse=warehouse(request, kind), deletes="soft")
        rounds(org, random.Random(67),
               lambda: sync(fake, tmp_path, pipeline=pipeline, deletes="soft"), 3, 30,
               soft=True)
        lead = org.all(o.LEAD)[0]
        org.advance(timedelta(minutes=5))
        deleted = c.delete(org, o.LEAD, lead["id"])
        org.advance(timedelta(seconds=30))
        sync(fake, tmp_path, pipeline=pipeline, deletes="soft")
    assert not every_table_mismatches(org, pipeline, soft=True)
    ((name, deleted_at),) = rows(pipeline, "SELECT display_name, _deleted_at FROM close.leads "
                                           f"WHERE id = '{lead['id']}'")
    assert name == lead["display_name"]
    when = max(e.date_updated for e in ev.events(org)
               if e.object_id == lead["id"] and e.action == "deleted")
    assert deleted_at == when
    assert deleted is not None


def test_soft_deletes_survive_the_full_reload_after_a_long_gap(tmp_path: Path, caplog):
    org = generate_org(seed=68, leads=8)
    rng = random.Random(68)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, deletes="soft")
        org.advance(timedelta(minutes=10))
        random_changes(org, rng, 15, step=timedelta(seconds=5))
        sync(fake, tmp_path, pipeline=pipeline, deletes="soft")
        kept = dict(rows(pipeline, "SELECT id, _deleted_at FROM close.leads "
                                   "WHERE _deleted_at IS NOT NULL"))
        victim = org.all(o.LEAD)[0]["id"]
        addresses = rows(pipeline, "SELECT count(*) FROM close.leads__addresses "
                                   f"WHERE lead_id = '{victim}'")
        org.advance(timedelta(days=31))  # no events survive: the next run reloads in full
        c.delete(org, o.LEAD, victim)
        sync(fake, tmp_path, pipeline=pipeline, deletes="soft")
        assert export_jobs(fake) == 2
    assert "more than 29 days" in caplog.text
    after = dict(rows(pipeline, "SELECT id, _deleted_at FROM close.leads "
                                "WHERE _deleted_at IS NOT NULL"))
    assert {k: after[k] for k in kept} == kept  # earlier deletions keep their times
    assert after[victim] is not None  # deleted during the gap: marked at the reload
    assert rows(pipeline, "SELECT count(*) FROM close.leads__addresses "
                          f"WHERE lead_id = '{victim}'") == addresses  # its child rows too
    assert not every_table_mismatches(org, pipeline, soft=True)


def test_events_that_become_visible_late_are_caught_by_the_five_minute_rescan(tmp_path):
    org = generate_org(seed=69, leads=8)
    rng = random.Random(69)
    late = EventSettings(late_every=3, late_by=timedelta(minutes=2))
    lagging = []
    with FakeClose(org, events=late) as fake:
        pipeline = sync(fake, tmp_path)
        for _ in range(3):
            org.advance(timedelta(minutes=7))
            random_changes(org, rng, 20, step=timedelta(seconds=4))
            org.advance(timedelta(seconds=20))
            sync(fake, tmp_path, pipeline=pipeline)  # a third of the newest are not visible
            lagging.append(bool(every_table_mismatches(org, pipeline)))
            org.advance(timedelta(minutes=3))
            sync(fake, tmp_path, pipeline=pipeline)  # they are now, older than the newest seen
            assert not every_table_mismatches(org, pipeline)
    assert any(lagging)  # the late events really were missing from the first sync


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


def test_a_gap_shown_only_by_the_event_times_is_healed_by_a_full_reload(tmp_path, caplog):
    """Close's `Date` header 40 days behind its event times: after a 31-day pause only the
    events show that the changes made right after the last run are gone from the log, so
    Close's time is the later of the two and the tables are reloaded."""
    org = generate_org(seed=64, leads=8)
    rng = random.Random(64)
    with FakeClose(org, date_skew=-timedelta(days=40)) as fake:
        pipeline = sync(fake, tmp_path)
        org.advance(timedelta(minutes=10))
        random_changes(org, rng, 30, step=timedelta(seconds=5))  # past the log's 30 days soon
        org.advance(timedelta(days=31))
        random_changes(org, rng, 10, step=timedelta(seconds=5))
        org.advance(timedelta(seconds=30))
        sync(fake, tmp_path, pipeline=pipeline)
        assert export_jobs(fake) == 2
    assert "more than 29 days" in caplog.text and "ahead of its Date header" in caplog.text
    assert not every_table_mismatches(org, pipeline)


def test_the_first_run_is_a_full_load_whose_start_the_next_run_replays_from(tmp_path):
    org = generate_org(seed=70, leads=8)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
        marks = {table: kept["watermark"] for table, kept in
                 pipeline.state["sources"]["close"]["tables"].items()}
        assert set(marks) == {e.table for e in CATALOG if e.incremental != "every_run"}
        # the export's tables from its creation time, the others from the run's start; the
        # Event Log held nothing then, so their re-scan may start as far back as it keeps
        exported = {marks[t]["newest_event"] for t in exported_tables()}
        assert len(exported) == 1 and all(marks[t]["read_until"] in exported
                                          for t in exported_tables())
        for table in set(marks) - set(exported_tables()):
            read_until = datetime.fromisoformat(marks[table]["read_until"])
            assert datetime.fromisoformat(marks[table]["newest_event"]) == read_until - HORIZON
        state = min(marks.values(), key=lambda mark: mark["newest_event"])
        first_window = [r for r in fake.requests if r.endpoint == "/event/"
                        and "date_updated__gte" in r.params]
        assert first_window == []  # a full load reads no events (only Close's time)
        org.advance(timedelta(minutes=1))
        sync(fake, tmp_path, pipeline=pipeline)
        starts = {r.params.get("date_updated__gte") for r in fake.requests
                  if r.endpoint == "/event/" and "date_updated__gte" in r.params}
    assert export_jobs(fake) == 1
    replayed_from = (datetime.fromisoformat(state["newest_event"]) - timedelta(minutes=5)
                     ).replace(tzinfo=None).isoformat(timespec="milliseconds")
    assert starts == {replayed_from}


@pytest.mark.parametrize("id_filters", ["documented", "all"])
def test_a_non_admin_key_gets_old_events_without_data_and_reads_objects_by_id(
        tmp_path: Path, id_filters: str):
    org = generate_org(seed=64, leads=8)
    rng = random.Random(64)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
    org.advance(timedelta(minutes=10))
    random_changes(org, rng, 25, step=timedelta(seconds=5))
    org.advance(timedelta(hours=2))  # older than an hour: no `data` for a non-admin
    with FakeClose(org, admin=False, id_filters=id_filters) as fake:
        sync(fake, tmp_path, pipeline=pipeline)
        one_by_one = by_id_requests(fake)
        batches = [r for r in fake.requests if "id__in" in r.params]
    assert not every_table_mismatches(org, pipeline)
    assert batches
    if id_filters == "all":
        # batched: only ids a batch did not return (deleted meanwhile) are asked for alone
        assert len(one_by_one) < 10, one_by_one
    else:
        assert len(one_by_one) > 10


def test_merged_leads_are_recorded(tmp_path):
    org = generate_org(seed=65, leads=6)
    source, destination = (lead["id"] for lead in org.all("lead")[:2])
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
        org.advance(timedelta(minutes=10))
        c.merge_leads(org, source, destination)
        org.advance(timedelta(seconds=30))
        sync(fake, tmp_path, pipeline=pipeline)
    assert rows(pipeline, "SELECT source_lead_id, destination_lead_id FROM close.lead_merges") \
        == [(source, destination)]
    assert rows(pipeline, f"SELECT count(*) FROM close.leads WHERE id = '{source}'") == [(0,)]
    assert rows(pipeline, "SELECT count(*) FROM close.created_activities "
                          f"WHERE lead_id = '{source}'") == [(0,)]
    assert not every_table_mismatches(org, pipeline)


def test_the_raw_event_log_table_is_merged_on_event_id(tmp_path):
    org = generate_org(seed=71, leads=6)
    lead = org.all(o.LEAD)[0]
    tables = [entry.table for entry in CATALOG] + ["events"]
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
        org.advance(timedelta(minutes=10))
        c.update(org, o.LEAD, lead["id"], {"name": "First"})
        org.advance(timedelta(seconds=20))
        sync(fake, tmp_path, pipeline=pipeline, resources=tables)
        c.update(org, o.LEAD, lead["id"], {"name": "Second"})  # consolidated into one event
        org.advance(timedelta(seconds=20))
        sync(fake, tmp_path, pipeline=pipeline, resources=tables)
    found = rows(pipeline, "SELECT id, object_type, action FROM close.events "
                           f"WHERE object_id = '{lead['id']}'")
    assert len(found) == 1 and found[0][1:] == ("lead", "updated")
    (data,) = rows(pipeline, f"SELECT data FROM close.events WHERE id = '{found[0][0]}'")[0]
    assert "Second" in str(data)
    assert not every_table_mismatches(org, pipeline)


def test_unknown_event_types_are_logged_once_and_skipped(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="close_source")
    org = generate_org(seed=72, leads=6)
    with FakeClose(org, events=EventSettings(filters="unfiltered")) as fake:
        pipeline = sync(fake, tmp_path)
        org.advance(timedelta(minutes=10))
        with ev.request(org):
            for n in range(3):
                ev.emit(org, "import", f"import_{n}", "created", lead_id=None, data={"id": n})
        sync(fake, tmp_path, pipeline=pipeline)
    assert caplog.text.count("'import' events are not synced") == 1
    assert not every_table_mismatches(org, pipeline)


def test_a_run_that_fails_mid_way_loses_and_duplicates_nothing(tmp_path):
    org = generate_org(seed=63, leads=8)
    rng = random.Random(63)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
        org.advance(timedelta(minutes=10))
        random_changes(org, rng, 20, step=timedelta(seconds=5))
    faults = Faults(seed=1, p_500=1.0, paths=["/custom_activity/"])
    with FakeClose(org, faults=faults) as fake, pytest.raises(Exception):  # noqa: B017
        sync(fake, tmp_path, pipeline=pipeline, max_attempts=2)
    with FakeClose(org) as fake:
        sync(fake, tmp_path, pipeline=pipeline)
    assert not every_table_mismatches(org, pipeline)


def test_event_times_an_hour_ahead_of_the_date_header_are_tolerated(tmp_path, caplog):
    """Close's Event Log (its database clock) an hour ahead of its `Date` headers (its web
    front ends): runs complete, tables stay exact, the skew is said."""
    org = generate_org(seed=73, leads=8)
    rng = random.Random(73)
    with FakeClose(org, date_skew=-timedelta(hours=1)) as fake:
        pipeline = sync(fake, tmp_path, full_load="lists")
        for _ in range(3):
            org.advance(timedelta(minutes=10))
            random_changes(org, rng, 20, step=timedelta(seconds=5))
            org.advance(timedelta(seconds=30))
            sync(fake, tmp_path, pipeline=pipeline)
            assert not every_table_mismatches(org, pipeline)
    assert "ahead of its Date header" in caplog.text
    marks = pipeline.state["sources"]["close"]["tables"]
    newest = max(datetime.fromisoformat(m["watermark"]["newest_event"]) for m in marks.values())
    read_until = datetime.fromisoformat(marks["leads"]["watermark"]["read_until"])
    assert read_until >= newest  # Close's time: the later of the two clocks


@pytest.mark.parametrize("log", ["with events", "empty"])
def test_a_date_header_ahead_of_the_events_loses_nothing_after_a_list_read(tmp_path, log):
    """Close's `Date` header 10 minutes ahead of its event times: the next run replays a
    full read through the list endpoints from the log's newest event when it began, or from
    the horizon when the log held none (the header's T0 would skip what changed in the 10
    minutes after the read)."""
    org = generate_org(seed=75, leads=8)
    rng = random.Random(75)
    with FakeClose(org, date_skew=timedelta(minutes=10)) as fake:
        if log == "with events":
            random_changes(org, rng, 3)
            org.advance(timedelta(minutes=1))
        pipeline = sync(fake, tmp_path, full_load="lists")
        org.advance(timedelta(minutes=1))
        random_changes(org, rng, 20, step=timedelta(seconds=5))
        org.advance(timedelta(seconds=30))
        sync(fake, tmp_path, pipeline=pipeline)
    assert not every_table_mismatches(org, pipeline)


def test_a_non_admin_key_is_said_once_at_the_start(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="close_source")
    org = generate_org(seed=74, leads=6)
    with FakeClose(org, admin=False) as fake:
        sync(fake, tmp_path)
    assert caplog.text.count("this API key is not an admin's") == 1
    caplog.clear()
    with FakeClose(org) as fake:
        sync(fake, tmp_path / "admin")
    assert "not an admin's" not in caplog.text
