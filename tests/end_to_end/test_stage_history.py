"""The stage history tables equal what the fake organisation's status-change activities say,
computed here in Python: after a full load, after incremental runs that add, fold, revert and
tie status changes, after a load an earlier run left behind, and with a stage table dropped.
A run that changed no status change leaves them alone. The docs' SQL examples (docs/history.md)
run on each destination and give what Python computes."""

from __future__ import annotations

import random
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import changes as c
from close_fake import org as o
from close_fake.churn import random_changes
from tests.conftest import warehouse
from tests.end_to_end.test_destination_truth import leave_a_package
from tests.helpers import rows, sync

PAGE = Path(__file__).resolve().parents[2] / "docs" / "history.md"
LEAD_COLUMNS = ("activity_id", "lead_id", "from_status_id", "from_status_label",
                "to_status_id", "to_status_label", "changed_at", "changed_by",
                "changed_by_name", "seconds_in_from_status")
OPPORTUNITY_COLUMNS = ("activity_id", "opportunity_id", "lead_id", "from_status_id",
                       "from_status_label", "from_status_type", "from_pipeline_id",
                       "to_status_id", "to_status_label", "to_status_type", "to_pipeline_id",
                       "changed_at", "changed_by", "changed_by_name", "seconds_in_from_status")
HISTORIES = {  # stage table -> (activity type, the object whose status changed, columns)
    "lead_status_history": ("LeadStatusChange", "lead_id", LEAD_COLUMNS),
    "opportunity_status_history": ("OpportunityStatusChange", "opportunity_id",
                                   OPPORTUNITY_COLUMNS),
}
SOURCES = ("lead_status_changes", "opportunity_status_changes")


def changed_at(activity: dict[str, Any]) -> datetime:
    stamp = datetime.fromisoformat(activity["date_created"])
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def first_present(activity: dict[str, Any], *names: str) -> Any:
    return next((activity[name] for name in names if activity.get(name) is not None), None)


def expected_history(org: FakeOrg, table: str) -> dict[str, dict[str, Any]]:
    """activity id -> the stage row, from the fake's status-change activities."""
    type_, object_key, _ = HISTORIES[table]
    by_object: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for activity in org.activities(type_):
        by_object[activity[object_key]].append(activity)
    expected = {}
    for changes in by_object.values():
        changes.sort(key=lambda activity: (changed_at(activity), activity["id"]))
        previous: datetime | None = None
        for activity in changes:
            row = {"activity_id": activity["id"], "lead_id": activity["lead_id"],
                   "changed_at": changed_at(activity),
                   "changed_by": first_present(activity, "created_by", "user_id"),
                   "changed_by_name": first_present(activity, "created_by_name", "user_name"),
                   "seconds_in_from_status": None if previous is None
                   else round((changed_at(activity) - previous).total_seconds(), 6)}
            for side, prefix in (("from", "old"), ("to", "new")):
                for part in ("status_id", "status_label", "status_type", "pipeline_id"):
                    if f"{side}_{part}" in HISTORIES[table][2]:
                        row[f"{side}_{part}"] = activity.get(f"{prefix}_{part}")
            if object_key != "lead_id":
                row[object_key] = activity[object_key]
            expected[activity["id"]] = row
            previous = changed_at(activity)
    return expected


def actual_history(pipeline: dlt.Pipeline, table: str) -> dict[str, dict[str, Any]]:
    columns = HISTORIES[table][2]
    found = {}
    for values in rows(pipeline, f"SELECT {', '.join(columns)} FROM close.{table}"):
        row = dict(zip(columns, values, strict=True))
        if row["seconds_in_from_status"] is not None:
            row["seconds_in_from_status"] = round(row["seconds_in_from_status"], 6)
        found[row["activity_id"]] = row
    return found


@dataclass
class Observed:
    """What the stage tables held after one run, and what they had to hold."""

    actual: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    expected: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def now(cls, org: FakeOrg, pipeline: dlt.Pipeline) -> Observed:
        return cls({table: actual_history(pipeline, table) for table in HISTORIES},
                   {table: expected_history(org, table) for table in HISTORIES})


@dataclass
class Synced:
    org: FakeOrg
    pipeline: dlt.Pipeline
    after: dict[str, Observed] = field(default_factory=dict)
    folded: tuple[str, str] = ("", "")  # a change's activity id, and the status it left
    reverted: tuple[str, str] = ("", "")
    last_loads: list[set[str]] = field(default_factory=list)  # tables each load wrote
    sentinels: set[str] = field(default_factory=set)  # stage tables the last run left alone


def move(org: FakeOrg, collection: str, object_id: str, *avoid: str, **kwargs: Any) -> str:
    """To a status other than the current one and `avoid`; returns the status left."""
    statuses = [status["id"] for status in org.all(
        o.LEAD_STATUS if collection == o.LEAD else o.OPPORTUNITY_STATUS)]
    current = org.get(collection, object_id)["status_id"]  # type: ignore[index]
    c.update(org, collection, object_id,
             status_id=next(s for s in statuses if s != current and s not in avoid), **kwargs)
    return current


def newest_change(org: FakeOrg, lead_id: str) -> dict[str, Any]:
    return max((activity for activity in org.children(o.ACTIVITY, "lead_id", lead_id)
                if activity["_type"] == "LeadStatusChange"), key=changed_at)


def status_changes(org: FakeOrg, synced: Synced) -> None:
    """A fold and a revert of changes the full load saw (by the same user, within Close's
    window: the activity is rewritten, or deleted), chains of changes hours apart, two users
    changing one lead at the same instant (a tie on `changed_at`), and random churn."""
    leads = sorted(org.all(o.LEAD), key=lambda lead: lead["id"])
    opportunities = sorted(org.all(o.OPPORTUNITY), key=lambda opp: opp["id"])[:3]
    org.advance(timedelta(minutes=1))
    move(org, o.LEAD, leads[2]["id"], synced.folded[1])
    folded = org.get(o.ACTIVITY, synced.folded[0]) or {}
    assert folded.get("new_status_id") == org.get(o.LEAD, leads[2]["id"])["status_id"]  # type: ignore[index]
    c.update(org, o.LEAD, leads[3]["id"], status_id=synced.reverted[1])
    assert org.get(o.ACTIVITY, synced.reverted[0]) is None
    for _ in range(3):
        org.advance(timedelta(hours=5))
        for lead in leads[:2]:
            move(org, o.LEAD, lead["id"])
        for opportunity in opportunities:
            move(org, o.OPPORTUNITY, opportunity["id"])
    org.advance(timedelta(hours=5))
    not_won = [s["id"] for s in org.all(o.OPPORTUNITY_STATUS) if s["type"] != "won"]
    for opportunity in opportunities[:2]:  # won at last
        move(org, o.OPPORTUNITY, opportunity["id"], *not_won)
    at = org.advance(timedelta(hours=1))
    for user in [user["id"] for user in org.all(o.USER)][:2]:
        move(org, o.LEAD, leads[4]["id"], user_id=user, at=at)
    random_changes(org, random.Random(1), 30, step=timedelta(minutes=7))
    assert org.get(o.ACTIVITY, synced.folded[0]), "the churn left the folded change"
    org.advance(timedelta(minutes=10))  # the next run's re-scan sees no status change
    c.update(org, o.LEAD, leads[0]["id"], description="after the status changes")
    org.advance(timedelta(seconds=30))


def execute(pipeline: dlt.Pipeline, statement: str) -> None:
    with pipeline.sql_client() as client:
        client.execute_sql(statement)


def loaded_tables(pipeline: dlt.Pipeline, load_id: str) -> set[str]:
    return {job.job_file_info.table_name
            for job in pipeline.get_load_package_info(load_id).jobs["completed_jobs"]}


@pytest.fixture(scope="module", params=[("duckdb", "hard"), ("postgres", "soft")],
                ids=["duckdb", "postgres-soft-deletes"])
def synced(request, tmp_path_factory) -> Synced:
    kind, deletes = request.param
    org = generate_org(seed=57, leads=10)
    workdir = tmp_path_factory.mktemp(f"stage_history_{kind}")
    opportunity = sorted(org.all(o.OPPORTUNITY), key=lambda opp: opp["id"])[0]
    for _ in range(2):  # an opportunity's later change for the full load
        org.advance(timedelta(hours=2))
        move(org, o.OPPORTUNITY, opportunity["id"])
    leads = sorted(org.all(o.LEAD), key=lambda lead: lead["id"])
    folded = move(org, o.LEAD, leads[2]["id"])
    folded_id = newest_change(org, leads[2]["id"])["id"]
    reverted = move(org, o.LEAD, leads[3]["id"])
    reverted_id = newest_change(org, leads[3]["id"])["id"]
    org.advance(timedelta(seconds=30))
    with FakeClose(org) as fake:
        pipeline = sync(fake, workdir, warehouse=warehouse(request, kind), deletes=deletes)
        found = Synced(org, pipeline, {"full load": Observed.now(org, pipeline)},
                       (folded_id, folded), (reverted_id, reverted))
        status_changes(org, found)
        sync(fake, workdir, pipeline=pipeline, deletes=deletes)
        found.after["incremental run"] = Observed.now(org, pipeline)

        # A run that died after extracting left a package with a lead status change: the
        # next run loads it first, then reads on. A row no rebuild keeps marks each table.
        for table in HISTORIES:
            execute(pipeline, f"INSERT INTO close.{table} (activity_id) VALUES ('sentinel')")
        move(org, o.LEAD, leads[1]["id"])
        org.advance(timedelta(minutes=10))  # the next run's re-scan sees no status change
        c.update(org, o.LEAD, leads[0]["id"], description="after the last status change")
        org.advance(timedelta(seconds=30))
        before = set(pipeline.list_completed_load_packages())
        leave_a_package(fake, pipeline)
        sync(fake, workdir, pipeline=pipeline, deletes=deletes)
        found.last_loads = [loaded_tables(pipeline, load_id) for load_id in sorted(
            set(pipeline.list_completed_load_packages()) - before, key=float)]
        found.sentinels = {table for table in HISTORIES if rows(
            pipeline, f"SELECT activity_id FROM close.{table} WHERE activity_id = 'sentinel'")}
        for table in HISTORIES:
            execute(pipeline, f"DELETE FROM close.{table} WHERE activity_id = 'sentinel'")
        found.after["a load an earlier run left"] = Observed.now(org, pipeline)
    return found


@pytest.mark.parametrize("run", ["full load", "incremental run", "a load an earlier run left"])
@pytest.mark.parametrize("table", list(HISTORIES))
def test_stage_tables_equal_the_status_change_activities(synced: Synced, run: str, table: str):
    observed = synced.after[run]
    assert observed.actual[table] == observed.expected[table]
    firsts = [row for row in observed.expected[table].values()
              if row["seconds_in_from_status"] is None]
    later = len(observed.expected[table]) - len(firsts)
    assert firsts and later, "the case has first changes and later ones"


def test_folded_and_reverted_changes_are_followed(synced: Synced):
    first, then = (synced.after[run].actual["lead_status_history"]
                   for run in ("full load", "incremental run"))
    folded, reverted = synced.folded[0], synced.reverted[0]
    assert folded in first and reverted in first
    assert then[folded]["from_status_id"] == first[folded]["from_status_id"]
    assert then[folded]["to_status_id"] != first[folded]["to_status_id"]
    assert reverted not in then


def test_the_incremental_run_had_chains_and_ties_to_follow(synced: Synced):
    """The scenario is what the tests claim: without it they could pass on too little."""
    leads = synced.after["incremental run"].expected["lead_status_history"]
    assert any(row["seconds_in_from_status"] == 0 for row in leads.values()), "a tie"
    assert sum(row["seconds_in_from_status"] is not None for row in leads.values()) >= 8


def test_a_load_an_earlier_run_left_rebuilds_what_it_changed_and_nothing_else(synced: Synced):
    """The left package wrote lead status changes, the run's own load (if any) none: the lead
    table is rebuilt all the same. No load wrote opportunity status changes: that table is
    kept."""
    left, *own = synced.last_loads
    assert "lead_status_changes" in left and not any("lead_status_changes" in t for t in own)
    assert not any("opportunity_status_changes" in tables for tables in synced.last_loads)
    assert synced.sentinels == {"opportunity_status_history"}


# --- the docs' examples ---------------------------------------------------------------------

def docs_sql(name: str) -> str:
    found = re.search(rf"<!-- tested: {name} -->\n```sql\n(.*?)```", PAGE.read_text(), re.S)
    assert found, f"docs/history.md has no example {name}"
    return found.group(1)


def test_docs_median_time_in_status(synced: Synced):
    history = expected_history(synced.org, "lead_status_history").values()
    seconds: dict[str | None, list[float]] = defaultdict(list)
    for row in history:
        if row["seconds_in_from_status"] is not None:
            seconds[row["from_status_label"]].append(row["seconds_in_from_status"])
    expected = {label: (len(values), statistics.median(values) / 86400)
                for label, values in seconds.items()}
    result = rows(synced.pipeline, docs_sql("median-time-in-status"))
    assert {label: (count, pytest.approx(float(days))) for label, count, days in result} \
        == expected
    assert len(expected) > 2


def test_docs_conversion_to_won(synced: Synced):
    history = list(expected_history(synced.org, "opportunity_status_history").values())
    entered: dict[str | None, dict[str, datetime]] = defaultdict(dict)
    for row in history:  # the first time each opportunity entered each status
        first = entered[row["to_status_label"]].get(row["opportunity_id"])
        if first is None or row["changed_at"] < first:
            entered[row["to_status_label"]][row["opportunity_id"]] = row["changed_at"]
    won = defaultdict(list)
    for row in history:
        if row["to_status_type"] == "won":
            won[row["opportunity_id"]].append(row["changed_at"])
    expected = {}
    for status, opportunities in entered.items():
        later = sum(any(at > since for at in won[opp]) for opp, since in opportunities.items())
        expected[status] = (len(opportunities), later, pytest.approx(later / len(opportunities)))
    result = rows(synced.pipeline, docs_sql("conversion-to-won"))
    assert {status: (entered, won, float(share)) for status, entered, won, share in result} \
        == expected
    assert any(later for _, later, _ in expected.values())
