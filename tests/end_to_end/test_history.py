"""History: `field_changes` and the versions of `history = ["leads", "opportunities"]`.

One organisation per warehouse goes through the run shapes history must survive, synced
after each (module-scoped: the steps build on each other, as a user's runs do):

1. a first load: one version per object, at its `date_updated`, and no field changes;
2. changes between two runs: three renames of a lead are three versions at Close's times and
   three field changes; random changes (deletes, merges, custom values...) all recorded;
3. a consolidated event (two updates within Close's five minutes, a run in between): its
   rows are updated, not added, and keep the earliest old value;
4. a replayed window (the destination's state rolled back behind its data): adds nothing;
5. the 30-day guard's full reload, with one change in the gap: only that object gets a
   version; `--full-refresh`: nothing changes, and the history tables survive it.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import changes as c
from close_fake import org as o
from close_fake.churn import random_changes
from close_fake.events.log import events
from close_source.catalog import HISTORY_TABLES
from close_source.timestamps import to_utc
from tests import destinations as dest
from tests.comments import TABLE, comments_of
from tests.conftest import WAREHOUSES, warehouse
from tests.helpers import new_pipeline, rows, sync
from tests.history_checks import count, event_mismatches, version_mismatches
from tests.invariant import every_table_mismatches

VERSIONED = ["leads", "opportunities"]
HISTORY = {"history": VERSIONED}
WEIGHTS = {"retype_field": 0, "delete_field": 0}  # their columns move: test_custom_fields


@dataclass
class Story:
    org: FakeOrg
    pipeline: dlt.Pipeline
    since: datetime  # the first load's time: every later event is history's
    lead: str  # renamed three times between two runs
    names: list[tuple[datetime, str]] = field(default_factory=list)
    consolidated: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    comments: dict[str, Any] = field(default_factory=dict)  # the dataset's, after each step


def changed_at(org: FakeOrg, lead: str) -> datetime:
    moment = to_utc(org.get(o.LEAD, lead)["date_updated"])
    assert moment is not None
    return moment


def _check(story: Story, step: str, events: bool = True) -> None:
    found = [*sum(every_table_mismatches(story.org, story.pipeline).values(), []),
             *version_mismatches(story.pipeline, VERSIONED)]
    if events:
        found += event_mismatches(story.org, story.pipeline, story.since, HISTORY_TABLES,
                                  VERSIONED)
    story.problems[step] = found[:10]
    story.comments[step] = comments_of(story.pipeline)
    story.counts[step] = [count(story.pipeline, "SELECT count(*) FROM field_changes"),
                          count(story.pipeline, "SELECT count(*) FROM leads_history"),
                          count(story.pipeline, "SELECT count(*) FROM opportunities_history")]


@pytest.fixture(scope="module", params=WAREHOUSES)
def story(request, tmp_path_factory) -> Story:
    workdir: Path = tmp_path_factory.mktemp(f"history_{request.param}")
    org = generate_org(seed=25, leads=14)
    rng = random.Random(25)
    with FakeClose(org) as fake:
        pipeline = new_pipeline(workdir, warehouse=warehouse(request, request.param))
        sync(fake, workdir, pipeline=pipeline, **HISTORY)
        lead = next(opportunity["lead_id"] for opportunity in org.all(o.OPPORTUNITY))
        story = Story(org, pipeline, org.clock(), lead)
        _check(story, "first load")

        org.advance(timedelta(minutes=10))
        for name in ("Acme One", "Acme Two", "Acme Three"):
            org.advance(timedelta(minutes=6))  # past Close's consolidation of updates
            c.update(org, o.LEAD, lead, {"name": name})
            story.names.append((changed_at(org, lead), name))
        statuses = [s["id"] for s in org.all(o.LEAD_STATUS)]
        c.update(org, o.LEAD, lead, {"status_id": next(s for s in statuses if s != org.get(
            o.LEAD, lead)["status_id"])}, user_id=org.all(o.USER)[-1]["id"])
        deal = next(op["id"] for op in org.all(o.OPPORTUNITY) if op["lead_id"] == lead)
        c.update(org, o.OPPORTUNITY, deal, {"value": 123456})
        c.delete(org, o.OPPORTUNITY, next(op["id"] for op in org.all(o.OPPORTUNITY)
                                          if op["lead_id"] != lead))
        others = [other["id"] for other in org.all(o.LEAD) if other["id"] != lead]
        c.merge_leads(org, others[0], others[1])
        random_changes(org, rng, 40, weights=WEIGHTS, step=timedelta(seconds=20))
        org.advance(timedelta(minutes=1))
        sync(fake, workdir, pipeline=pipeline, **HISTORY)
        _check(story, "changes")

        opportunity = org.all(o.OPPORTUNITY)[0]["id"]
        org.advance(timedelta(minutes=10))
        before = org.get(o.OPPORTUNITY, opportunity)["note"]
        c.update(org, o.OPPORTUNITY, opportunity, {"note": "first"})
        org.advance(timedelta(seconds=30))
        sync(fake, workdir, pipeline=pipeline, **HISTORY)
        org.advance(timedelta(minutes=1))
        c.update(org, o.OPPORTUNITY, opportunity, {"note": "second"})  # folded into one event
        org.advance(timedelta(seconds=30))
        sync(fake, workdir, pipeline=pipeline, **HISTORY)
        story.consolidated = {"id": opportunity, "old": before}
        _check(story, "consolidated")

        org.advance(timedelta(minutes=10))
        random_changes(org, rng, 30, weights=WEIGHTS, step=timedelta(seconds=20))
        org.advance(timedelta(minutes=1))
        state_loads = [r[0] for r in rows(pipeline, "SELECT _dlt_load_id FROM "
                                                    f"{pipeline.dataset_name}._dlt_pipeline_state")]
        sync(fake, workdir, pipeline=pipeline, **HISTORY)
        _check(story, "before replay")
        dest.execute(pipeline, f"DELETE FROM {pipeline.dataset_name}._dlt_pipeline_state "
                               f"WHERE _dlt_load_id > '{max(state_loads)}'")
        sync(fake, workdir, pipeline=pipeline, **HISTORY)  # the window again
        _check(story, "replayed")

        org.advance(timedelta(days=20))
        c.update(org, o.LEAD, lead, {"name": "Acme Four"})  # in the gap
        story.names.append((changed_at(org, lead), "Acme Four"))
        org.advance(timedelta(days=11))
        sync(fake, workdir, pipeline=pipeline, **HISTORY)
        _check(story, "30-day guard", events=False)
        sync(fake, workdir, pipeline=pipeline, full_refresh=True, **HISTORY)
        _check(story, "full refresh", events=False)
    return story


def test_every_step_keeps_history_equal_to_close(story):
    assert {step: found for step, found in story.problems.items() if found} == {}


def test_a_first_load_gives_one_version_per_object_and_no_field_changes(story):
    changes, leads, opportunities = story.counts["first load"]
    assert changes == 0
    assert leads == 14
    assert opportunities == len([1 for _ in story.org.all(o.OPPORTUNITY)]) or opportunities > 0


def test_three_renames_between_two_runs_are_three_versions_at_their_times(story):
    versions = rows(story.pipeline, "SELECT _valid_from, _valid_to, name, _event_id FROM "
                                    f"leads_history WHERE id = '{story.lead}' ORDER BY 1")
    named = [(valid_from, name) for valid_from, _, name, _ in versions]
    for moment, name in story.names:
        assert (moment, name) in named, (moment, name, named)
    renames = [v for v in versions if v[2] in {name for _, name in story.names[:3]}]
    assert [v[1] for v in renames[:2]] == [renames[1][0], renames[2][0]]  # each ends the next
    assert all(v[3] for v in renames[:3])  # begun by an event
    said = rows(story.pipeline, "SELECT old_value, new_value, user_id FROM field_changes "
                                f"WHERE object_id = '{story.lead}' AND field = 'name' "
                                "AND action = 'updated' ORDER BY changed_at")
    pairs = [(old, new) for old, new, _ in said]
    at = pairs.index(('"Acme One"', '"Acme Two"'))
    assert pairs[at + 1] == ('"Acme Two"', '"Acme Three"')
    assert pairs[at - 1][1] == '"Acme One"'

    assert all(user for _, _, user in said)


def test_a_consolidated_event_updates_its_rows_with_the_earliest_old_value(story):
    said = rows(story.pipeline, "SELECT event_id, old_value, new_value FROM field_changes "
                                f"WHERE object_id = '{story.consolidated['id']}' "
                                "AND field = 'note' ORDER BY changed_at DESC")
    event_id, old, new = said[0]
    assert (old, new) == (f'"{story.consolidated["old"]}"', '"second"')
    assert [row[0] for row in said].count(event_id) == 1


def test_a_replayed_window_adds_nothing(story):
    assert story.counts["replayed"] == story.counts["before replay"]


def test_a_reload_closes_nothing_that_did_not_change(story):
    before, guard, refresh = (story.counts[step] for step in
                              ("replayed", "30-day guard", "full refresh"))
    assert guard[0] == before[0]  # no events were read: no field changes
    assert guard[1] == before[1] + 1  # the lead changed in the gap, and only it
    assert guard[2] == before[2]
    assert refresh == guard


def test_history_tables_and_field_changes_read_back_their_comments(story):
    """After the steps (the last a `--full-refresh`, which drops and makes the tables again):
    every history and change table and each of its columns has its comment; a history table's
    custom columns name their field, as its table's do."""
    found = story.comments["full refresh"]
    for table in ("leads_history", "opportunities_history", "field_changes", "leads"):
        assert found[table][TABLE] and all(found[table].values()), (table, found[table])
    history = found["leads_history"]
    assert history[TABLE].startswith('Versions of leads (history = ["leads"])')
    assert history["_valid_to"].startswith("When this version ended")
    assert history["_deleted"].startswith("True on the version a delete or a merge ended")
    custom = [column for column in history if column and column.startswith("custom_")
              and column != "custom_unmapped"]
    assert custom and all(history[column] == found["leads"][column] for column in custom)
    assert all(history[column].startswith("Close custom field") for column in custom)
    assert found["field_changes"]["values_known"].startswith("False when Close listed")
    merges = story.comments["changes"]["lead_merges"]  # (a full refresh drops the table)
    assert merges[TABLE].startswith("Lead merges from the Event Log") and all(merges.values())
    assert merges["source_lead_id"].startswith("The lead merged away")


def test_field_changes_can_be_turned_off(tmp_path, small_fake):
    pipeline = sync(small_fake, tmp_path, field_changes=False)
    small_fake.org.advance(timedelta(minutes=10))
    lead = small_fake.org.all(o.LEAD)[0]["id"]
    c.update(small_fake.org, o.LEAD, lead, {"name": "Renamed"})
    sync(small_fake, tmp_path, pipeline=pipeline, field_changes=False)
    assert "field_changes" not in pipeline.default_schema.tables
    assert rows(pipeline, f"SELECT name FROM leads WHERE id = '{lead}'") == [("Renamed",)]


def test_the_docs_worked_example_lists_the_leads_status_and_value_changes(story):
    page = (Path(__file__).parents[2] / "docs" / "history.md").read_text(encoding="utf-8")
    sql = page.split("<!-- history-example -->\n```sql\n", 1)[1].split("```", 1)[0]
    sql = sql.replace("close.", f"{story.pipeline.dataset_name}.").replace("lead_…", story.lead)
    got = [(to_utc(at), kind, object_id, column, old, new, who)
           for at, kind, object_id, column, old, new, who in rows(story.pipeline, sql)]
    users = {u["id"]: f"{u['first_name']} {u['last_name']}" for u in story.org.all(o.USER)}
    opportunities = {op["id"] for op in story.org.all(o.OPPORTUNITY)} | {
        row[0] for row in rows(story.pipeline, "SELECT object_id FROM field_changes WHERE "
                                               f"lead_id = '{story.lead}'")}
    expected = []
    for event in reversed(events(story.org)):
        watched = {"lead": ("status_label",), "opportunity": ("value", "status_label")}
        if event.action != "updated" or event.date_updated < story.since or \
                event.object_type not in watched or event.lead_id != story.lead or \
                (event.object_type == "opportunity" and event.object_id not in opportunities):
            continue
        for column in watched[event.object_type]:
            if column in event.changed_fields:
                expected.append((event.date_updated, event.object_type, event.object_id, column,
                                 json.dumps(event.previous_data[column]),
                                 json.dumps(event.data[column]), users.get(event.user_id)))
    assert {row[3] for row in expected} >= {"status_label", "value"}
    assert sorted(got, key=str) == sorted(expected, key=str)


def test_deletes_and_merges_end_versions(story):
    """The story's changes include both (else the checks above would prove less)."""
    assert count(story.pipeline, "SELECT count(*) FROM field_changes "
                                 "WHERE action = 'merged'") > 0
    for table in VERSIONED:
        ended = count(story.pipeline, f"SELECT count(*) FROM {table}_history WHERE _deleted "
                                      "AND _valid_to IS NOT NULL")
        assert ended > 0, table


def test_a_non_admin_keys_old_events_keep_their_fields_without_values(tmp_path):
    """Close gives a non-admin key no `data` or `previous_data` for events over an hour old:
    the changed fields are still rows, their values unknown; the version is the object as
    read by id."""
    org = generate_org(seed=7, leads=5)
    with FakeClose(org, admin=False) as fake:
        pipeline = sync(fake, tmp_path, history=["leads"])
        org.advance(timedelta(minutes=10))
        lead = org.all(o.LEAD)[0]["id"]
        c.update(org, o.LEAD, lead, {"name": "Hidden"})
        org.advance(timedelta(hours=2))
        sync(fake, tmp_path, pipeline=pipeline, history=["leads"])
    said = rows(pipeline, "SELECT old_value, new_value, values_known FROM field_changes "
                          f"WHERE object_id = '{lead}' AND field = 'name'")
    assert said == [(None, None, False)]
    current = rows(pipeline, "SELECT name, _valid_from FROM leads_history "
                             f"WHERE id = '{lead}' AND _valid_to IS NULL")
    assert [(name, to_utc(at)) for name, at in current] == [("Hidden", changed_at(org, lead))]
    assert version_mismatches(pipeline, ["leads"]) == []


def test_versions_are_settled_after_loads_that_wrote_them_and_after_a_run_that_died(
        tmp_path, small_fake, caplog):
    """Settling scans a whole history table: a run that loaded nothing into it or its table
    skips it, unless an earlier run loaded and died before settling."""
    org = small_fake.org
    pipeline = sync(small_fake, tmp_path, **HISTORY)
    lead = org.all(o.LEAD)[0]["id"]
    org.advance(timedelta(minutes=10))
    c.update(org, o.LEAD, lead, {"name": "Settled"})
    caplog.set_level(logging.DEBUG, logger="close_source.run.history_settle")
    sync(small_fake, tmp_path, pipeline=pipeline, **HISTORY)
    assert "leads_history: versions settled" in caplog.text
    assert version_mismatches(pipeline, VERSIONED) == []
    caplog.clear()
    sync(small_fake, tmp_path, pipeline=pipeline, resources=["users"], **HISTORY)
    assert "versions settled" not in caplog.text
    # as a run leaves them when it dies between its load and settling: the old version open
    dest.execute(pipeline, f"UPDATE {pipeline.dataset_name}.leads_history SET _valid_to = NULL "
                           f"WHERE id = '{lead}'")
    (Path(pipeline.working_dir) / "close-history-unsettled").touch()
    sync(small_fake, tmp_path, pipeline=pipeline, resources=["users"], **HISTORY)
    assert "leads_history: versions settled" in caplog.text
    assert version_mismatches(pipeline, VERSIONED) == []
    assert count(pipeline, f"SELECT count(*) FROM leads_history WHERE id = '{lead}'") == 2
