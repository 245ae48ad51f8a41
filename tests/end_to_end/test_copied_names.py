"""Copied names (`status_label`, `pipeline_name`, `user_name`, ...) follow renames made through
the documented writes (`PUT /status/opportunity/{id}/`, `PUT /pipeline/{id}/`), also when
Close's `Date` header lags its event times and the next run's 5-minute re-scan replays
snapshots taken before the rename, and after a full read through the list endpoints whose
re-scan replays snapshots from before it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import changes as c
from close_fake import org as o
from tests.helpers import rows, sync
from tests.invariant import every_table_mismatches


def status_labelled(org: FakeOrg, label: str) -> dict:
    return next(s for s in org.all(o.OPPORTUNITY_STATUS) if s["label"] == label)


def touch_opportunities_in(org: FakeOrg, status_id: str) -> int:
    """An event (snapshot with the status's current label) for each of its opportunities."""
    opps = org.children(o.OPPORTUNITY, "status_id", status_id)
    for opp in list(opps):
        c.update(org, o.OPPORTUNITY, opp["id"], note=f"{opp.get('note') or ''}!")
    return len(opps)


def rename_after_a_change(org: FakeOrg, renamed: str, changed: dict) -> None:
    """`changed` (an opportunity or a task) changes, then its pipeline or user is renamed
    (neither has events): the change's snapshot carries the old name."""
    collection = o.OPPORTUNITY if changed["id"].startswith("oppo_") else o.TASK
    c.update(org, collection, changed["id"],
             {"note" if collection == o.OPPORTUNITY else "text": "changed"})
    org.advance(timedelta(seconds=5))
    if renamed == "pipeline":
        c.rename_pipeline(org, changed["pipeline_id"], "Renamed Pipeline")
    else:
        c.rename_user(org, changed.get("assigned_to") or changed["user_id"], "Zed", "Zulu")
    org.advance(timedelta(seconds=30))


def test_opportunity_status_renames_relabel_every_run_shape_with_a_lagging_date_header(
        tmp_path: Path) -> None:
    """The report: "Won" -> "Closed Won", then "Lost" -> "Closed Lost", each after its
    opportunities changed, the `Date` header 10 minutes behind the event times; incremental
    runs (each replaying the last 5 minutes), a subset and a run of every table."""
    org = generate_org(seed=91, leads=14)
    opps = org.all(o.OPPORTUNITY)
    for opp, label in zip(opps, ["Won"] * 3 + ["Lost"] * 3, strict=False):
        c.update(org, o.OPPORTUNITY, opp["id"], status_id=status_labelled(org, label)["id"])
    with FakeClose(org, date_skew=-timedelta(minutes=10)) as fake, httpx.Client(
            base_url=fake.base_url, auth=(fake.api_key, "")) as client:
        pipeline = sync(fake, tmp_path)

        def rename(label: str, new: str) -> None:
            status = status_labelled(org, label)
            assert touch_opportunities_in(org, status["id"]) >= 3
            org.advance(timedelta(seconds=5))
            answer = client.put(f"status/opportunity/{status['id']}/", json={"label": new})
            assert answer.status_code == 200
            org.advance(timedelta(seconds=30))

        def run(tables: list[str] | None = None) -> None:
            sync(fake, tmp_path, pipeline=pipeline, resources=tables)
            assert not every_table_mismatches(org, pipeline, tables=tables)

        org.advance(timedelta(minutes=7))
        rename("Won", "Closed Won")
        run()
        org.advance(timedelta(minutes=1))
        run()  # the re-scan replays the opportunities' events from before the rename
        rename("Lost", "Closed Lost")
        run(["opportunities", "calls"])
        org.advance(timedelta(minutes=1))
        run(["opportunities", "leads"])
        run()
    labels = dict(rows(pipeline, "SELECT status_label, count(*) FROM close.opportunities "
                                 "GROUP BY status_label"))
    assert labels.keys() >= {"Closed Won", "Closed Lost"} and not labels.keys() & {"Won", "Lost"}


@pytest.mark.parametrize("renamed", ["pipeline", "user"])
def test_renames_without_events_survive_the_replay_with_a_lagging_date_header(
        tmp_path: Path, renamed: str) -> None:
    """A pipeline or user renamed just after an opportunity changed: no event dates the
    rename, the header lags, so the newest event is the best bound the run has of when it
    saw the rename; the opportunity's own snapshot at that moment is not trusted."""
    org = generate_org(seed=92, leads=8)
    with FakeClose(org, date_skew=-timedelta(seconds=50)) as fake:
        pipeline = sync(fake, tmp_path)
        org.advance(timedelta(minutes=7))
        rename_after_a_change(org, renamed, org.all(o.OPPORTUNITY)[0])
        for _ in range(2):  # the second run replays the opportunity's event
            sync(fake, tmp_path, pipeline=pipeline)
            assert not every_table_mismatches(org, pipeline)
            org.advance(timedelta(minutes=1))


@pytest.mark.parametrize("renamed", ["pipeline", "user"])
def test_a_list_read_is_not_undone_by_the_replay_of_older_snapshots(
        tmp_path: Path, renamed: str) -> None:
    """A first load through the list endpoints starts from its `Date` (T0); the next run
    replays the 5 minutes before T0, whose snapshots may carry names renamed before the
    read (there were no names to compare yet)."""
    org = generate_org(seed=93, leads=8)
    with FakeClose(org) as fake:
        org.advance(timedelta(minutes=1))
        changed = org.all(o.OPPORTUNITY)[0] if renamed == "pipeline" else \
            next(t for t in org.all(o.TASK) if t.get("assigned_to"))
        rename_after_a_change(org, renamed, changed)
        pipeline = sync(fake, tmp_path, full_load="lists")
        org.advance(timedelta(minutes=1))
        sync(fake, tmp_path, pipeline=pipeline)
    assert not every_table_mismatches(org, pipeline)


def test_a_status_moved_to_another_pipeline_moves_its_opportunities(tmp_path: Path) -> None:
    """`PUT /pipeline/{id}/` with a status of another pipeline: no event, the status's
    opportunities now show the new pipeline's id and name."""
    org = generate_org(seed=94, leads=14)
    with FakeClose(org) as fake, httpx.Client(base_url=fake.base_url,
                                              auth=(fake.api_key, "")) as client:
        pipeline = sync(fake, tmp_path)
        sales, _ = org.all(o.PIPELINE)
        churned = status_labelled(org, "Churned")
        moving = {x["id"] for x in org.children(o.OPPORTUNITY, "status_id", churned["id"])}
        assert moving
        org.advance(timedelta(minutes=7))
        own = [s["id"] for s in org.children(o.OPPORTUNITY_STATUS, "pipeline_id", sales["id"])]
        statuses = [{"id": status_id} for status_id in [*own, churned["id"]]]
        assert client.put(f"pipeline/{sales['id']}/", json={"statuses": statuses}).is_success
        org.advance(timedelta(seconds=30))
        sync(fake, tmp_path, pipeline=pipeline)
    assert not every_table_mismatches(org, pipeline)
    moved = rows(pipeline, "SELECT DISTINCT pipeline_id, pipeline_name FROM close.opportunities "
                           f"WHERE status_id = '{churned['id']}'")
    assert moved == [(sales["id"], sales["name"])]


def test_an_object_renamed_again_dates_from_its_latest_rename(tmp_path: Path) -> None:
    """Runs a minute apart: a user renamed, seen; the opportunity naming them changes, the
    user is renamed again, seen; the next run's re-scan replays the opportunity's snapshot
    from between the two renames, which it must not trust."""
    org = generate_org(seed=95, leads=8)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
        opp = org.all(o.OPPORTUNITY)[0]
        for step, name in enumerate(("Ada", "Bea")):
            org.advance(timedelta(minutes=1))
            c.update(org, o.OPPORTUNITY, opp["id"], note=f"change {step}")
            org.advance(timedelta(seconds=5))
            c.rename_user(org, opp["user_id"], name, "Renamed")
            org.advance(timedelta(seconds=5))
            sync(fake, tmp_path, pipeline=pipeline)
        org.advance(timedelta(minutes=1))
        sync(fake, tmp_path, pipeline=pipeline)  # replays the opportunity's "change 1"
    assert not every_table_mismatches(org, pipeline)
    assert rows(pipeline, f"SELECT user_name FROM close.opportunities WHERE id = '{opp['id']}'") \
        == [("Bea Renamed",)]


@pytest.mark.parametrize("renamed", ["opportunity status", "pipeline"])
def test_a_rename_undone_within_one_window_leaves_no_trace(tmp_path: Path, renamed: str) -> None:
    """"Won" -> "Temp", an opportunity changes (its snapshot says "Temp"), "Temp" -> "Won":
    the names the next run compares are the same as before, but the snapshot is stale."""
    org = generate_org(seed=96, leads=8)
    with FakeClose(org) as fake, httpx.Client(base_url=fake.base_url,
                                              auth=(fake.api_key, "")) as client:
        pipeline = sync(fake, tmp_path)
        opp = org.all(o.OPPORTUNITY)[0]
        path, key, old = (f"status/opportunity/{opp['status_id']}/", "label",
                          opp["status_label"]) if renamed == "opportunity status" else \
            (f"pipeline/{opp['pipeline_id']}/", "name", opp["pipeline_name"])
        org.advance(timedelta(minutes=7))
        assert client.put(path, json={key: "Temp"}).is_success
        org.advance(timedelta(seconds=5))
        c.update(org, o.OPPORTUNITY, opp["id"], note="changed")
        org.advance(timedelta(seconds=5))
        assert client.put(path, json={key: old}).is_success
        org.advance(timedelta(seconds=30))
        sync(fake, tmp_path, pipeline=pipeline)
    assert not every_table_mismatches(org, pipeline)
