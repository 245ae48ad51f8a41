"""The central invariant under randomized run shapes, not only randomized changes.

Rounds of random changes (custom field definitions deleted, retyped and their choices renamed
in the same windows as lead deletes and merges; renames of every object whose name other rows
copy: leads, contacts, users, lead and opportunity statuses, pipelines, sequences and
templates; statuses moved between pipelines), each followed by a run of a
random shape: every table, a random subset of tables (`--resources`), or a subset read in
full. After a round that changed definitions, a run of every table with no new change follows:
its 5-minute re-scan replays the events from before the change. Before the runs of some rounds
the destination changes behind the pipeline's back (`DESTINATION_SHAPES`): the DuckDB file
deleted, the schema or one table dropped, the database restored from an earlier copy, a run
into another dataset first, or a fresh working directory. After every run, each table the run
synced equals Close's current state, and every table of the dataset has unique keys; after
the last round a run of every table makes every table equal. On DuckDB and PostgreSQL, with
hard and soft deletes (their server's `Date` header 10 minutes behind its event times), and
against a server that ignores the filters the docs do not list, shifts its pages while they
are read and whose `Date` header runs 10 minutes ahead of its events.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake.churn import random_changes
from close_source.api.client import CloseClient
from close_source.catalog import BY_TABLE, CATALOG, HISTORY_TABLES, owned_tables
from close_source.run.verify import DIFFERS, verify
from tests import destinations as dest
from tests.conftest import warehouse
from tests.helpers import new_pipeline, rows, sync
from tests.history_checks import event_mismatches, version_mismatches
from tests.invariant import duplicate_keys, every_table_mismatches

ALL = [entry.table for entry in CATALOG]
VERSIONED = ["leads", "opportunities"]  # `history`: their versions are checked every run
# Changes whose effects reach other tables' rows without events of theirs.
# (Leads are renamed by `update_lead`, a default kind.)
SHAPE_WEIGHTS = {
    "rename_status": 1, "rename_opportunity_status": 1.5, "move_status": 1, "rename_user": 1,
    "rename_pipeline": 1, "rename_sequence": 1, "rename_template": 1, "rename_contact": 1.5,
    "delete_field": 1.5, "retype_field": 1.5, "rename_choice": 1, "delete_lead": 2,
    "merge_leads": 2,
}
DEFINITION_CHANGES = ("delete_field", "retype_field", "rename_choice", "add_field",
                      "rename_field")


# What happens to the destination before a round's run, and what the run must say about it.
ANOTHER_STATE = "holds another state than this working directory's"
DESTINATION_SHAPES = {
    "database lost": "holds no data of this pipeline",
    "table dropped": "",  # which line depends on the table (`_change_destination`)
    "restored": ANOTHER_STATE,
    "other dataset": ANOTHER_STATE,  # back in the first dataset, after a run into another
    "fresh working directory": "this working directory had no state: restored it",
}


def shape_of(rng: random.Random, round_number: int) -> tuple[str, list[str] | None]:
    """A run over every table, a subset, or a subset read in full (`sync_mode="full"`)."""
    kind = rng.choice(("all", "subset", "subset", "full subset"))
    if kind == "all":
        return kind, None
    return kind, sorted(rng.sample(ALL, rng.randint(2, 9)))


def run_rounds(org: FakeOrg, fake: FakeClose, workdir: Path, seed: int, rounds: int,
               pipeline: dlt.Pipeline, soft: bool = False,
               caplog: pytest.LogCaptureFixture | None = None) -> list[str]:
    """`caplog`: the destination changes too, one shape of `DESTINATION_SHAPES` per round."""
    rng = random.Random(seed)
    since = org.clock()
    deletes = "soft" if soft else "hard"
    shapes = []
    lost = [*DESTINATION_SHAPES, *[None] * max(0, rounds - len(DESTINATION_SHAPES))]
    if caplog is not None:
        rng.shuffle(lost)
        caplog.set_level(logging.INFO, logger="close_source")
    snapshots = {-1: dest.Snapshot(pipeline)} if caplog is not None else {}

    def run(tables: list[str] | None, on: dlt.Pipeline | None = None, **args: object) -> None:
        sync(fake, workdir, pipeline=on or pipeline, resources=tables, deletes=deletes,
             history=VERSIONED, **args)
        problems = every_table_mismatches(org, on or pipeline, soft=soft, tables=tables)
        assert not problems, (shapes[-1], problems)
        # history: versions chained, the current ones equal to their tables, deletes ended
        problems = version_mismatches(on or pipeline, VERSIONED, soft=soft)
        assert not problems, (shapes[-1], problems)

    for round_number in range(rounds):
        org.advance(timedelta(minutes=7))
        done = random_changes(org, rng, 30, weights=SHAPE_WEIGHTS, step=timedelta(seconds=11))
        org.advance(timedelta(seconds=30))
        kind, tables = shape_of(rng, round_number)
        shapes.append(f"round {round_number}: {kind} {tables or ''} after {done}")
        destination = lost[round_number] if caplog is not None else None
        said = ""
        if destination is not None:
            pipeline, said = _change_destination(destination, pipeline, rng, snapshots,
                                                 round_number, run, shapes, caplog)
            kind, tables = "all", None
        if destination is None:  # Close changed since the last run: no drift, verify says
            # (tables read in full every run: only since the last run, which may not have
            # read them: README "Verifying the warehouse")
            drift = {table: found for table, found in _drift(fake, pipeline).items()
                     if BY_TABLE[table].incremental != "every_run"}
            assert not drift, (shapes[-1], drift)
        exports = _exports(fake)
        run(tables, **({"sync_mode": "full"} if kind == "full subset" else {}))
        if destination == "fresh working directory":  # continued from the destination's state
            assert _exports(fake) == exports, shapes[-1]
        if said:
            assert said in caplog.text, shapes[-1]
        if round_number + 2 < rounds and lost[round_number + 2] == "restored":
            snapshots[round_number] = dest.Snapshot(pipeline)
        if any(change.split()[0] in DEFINITION_CHANGES for change in done):
            shapes.append(f"round {round_number}: replay of the window after {done}")
            run(None)
    shapes.append("final run of every table")
    run(None)
    assert not _drift(fake, pipeline, since_last_run=True)
    # what field_changes and the versions say is what Close's events said (full reads between
    # runs leave events unread: their rows are checked where they are, not looked for)
    problems = event_mismatches(org, pipeline, since, HISTORY_TABLES, VERSIONED, complete=False)
    assert not problems, problems[:5]
    return shapes


def _change_destination(shape: str, pipeline: dlt.Pipeline, rng: random.Random,
                        snapshots: dict[int, dest.Snapshot], round_number: int, run: Any,
                        shapes: list[str], caplog: pytest.LogCaptureFixture
                        ) -> tuple[dlt.Pipeline, str]:
    """Change the destination behind the pipeline's back: the pipeline the round runs, and
    the line its run must log."""
    caplog.clear()
    said = DESTINATION_SHAPES[shape]
    if shape == "database lost":
        done = rng.choice((dest.delete_database, dest.drop_dataset))(pipeline)
    elif shape == "table dropped":
        present = set(dest.dataset_tables(pipeline))
        entry = rng.choice([entry for entry in CATALOG if set(owned_tables(entry)) <= present])
        done = dest.drop_table(pipeline, rng.choice(owned_tables(entry)))
        said = "not in the destination" if entry.incremental != "every_run" else \
            "created again"
    elif shape == "restored":
        done = snapshots[max(n for n in snapshots if n <= round_number - 2)].restore(pipeline)
    elif shape == "other dataset":  # `--dataset other` first, with the same working directory
        shapes[-1] += " (into dataset other first)"
        run(None, on=dest.same_pipeline_elsewhere(pipeline, dataset="other"))
        assert "holds no data of this pipeline" in caplog.text, shapes[-1]
        caplog.clear()
        done = "back to dataset close"
    else:
        pipeline = dest.same_pipeline_elsewhere(pipeline, fresh=True)
        done = "new working directory"
    shapes[-1] += f" ({done})"
    return pipeline, said


def _drift(fake: FakeClose, pipeline: dlt.Pipeline, since_last_run: bool = False
           ) -> dict[str, object]:
    """What `close-sync verify --level ids` finds (with `since_last_run`, changes since the
    last run too)."""
    with CloseClient(fake.api_key, fake.base_url) as client:
        report = verify(pipeline, client, "ids")
    return {result.table: (result.drift, result.examples, result.since_last_run)
            for result in report.tables
            if result.verdict == DIFFERS or (since_last_run and result.since_last_run)}


def _exports(fake: FakeClose) -> int:
    return sum(1 for r in fake.requests if r.endpoint == "/export/lead/")


# Each destination once and each way of deleting once: the four pairs cost CI 4 minutes, and
# the delete modes share every run shape's code path on both destinations.
@pytest.mark.parametrize(("kind", "deletes"), [("duckdb", "soft"), ("postgres", "hard")])
def test_random_run_shapes_keep_every_table_equal_to_close(request, tmp_path, kind, deletes,
                                                           caplog):
    org = generate_org(seed=81, leads=12)
    lag = timedelta(minutes=10 if deletes == "soft" else 0)
    with FakeClose(org, date_skew=-lag) as fake:
        pipeline = new_pipeline(tmp_path, warehouse=warehouse(request, kind))
        sync(fake, tmp_path, pipeline=pipeline, deletes=deletes, history=VERSIONED)
        shapes = run_rounds(org, fake, tmp_path, 81, 6, pipeline, soft=deletes == "soft",
                            caplog=caplog)
    assert any("subset" in shape for shape in shapes)
    assert any("replay" in shape for shape in shapes)
    for shape in ("dropped", "restored", "dataset other", "new working directory"):
        assert any(shape in done for done in shapes), shape


def test_a_server_that_ignores_undocumented_filters_and_shifts_pages(tmp_path, caplog):
    """`is_archived` on SMS templates is ignored (both variants list every template), so are
    `date_created__gte` on activities and `lead_id` on contacts; every page repeats the
    previous page's last objects; the `Date` header runs 10 minutes ahead of the events. Full
    loads through the lists and the export, then rounds of run shapes: never a key twice,
    every table equal."""
    org = generate_org(seed=82, leads=14)
    templates = len(org.all("sms_template"))
    with FakeClose(org, undocumented_filters="ignore", page_overlap=2,
                   page_caps={"/activity/note/": 5, "/contact/": 4},
                   date_skew=timedelta(minutes=10)) as fake:
        pipeline = sync(fake, tmp_path, full_load="lists", max_skip=40, history=VERSIONED)
        assert rows(pipeline, "SELECT count(*) FROM close.sms_templates") == [(templates,)]
        assert not duplicate_keys(pipeline)
        assert not every_table_mismatches(org, pipeline)
        assert "the filter is ignored here" in caplog.text
        assert "more than once" in caplog.text
        run_rounds(org, fake, tmp_path, 82, 3, pipeline)
        sync(fake, tmp_path, pipeline=pipeline, full_refresh=True,  # the export this time
             history=VERSIONED)
    assert not every_table_mismatches(org, pipeline)


def test_a_subset_run_reads_the_log_once_and_writes_only_its_tables(tmp_path):
    org = generate_org(seed=83, leads=10)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path)
        before = dict(rows(pipeline, "SELECT id, display_name FROM close.leads"))
        org.advance(timedelta(minutes=10))
        random_changes(org, random.Random(83), 40, step=timedelta(seconds=5))
        org.advance(timedelta(seconds=30))
        first = len(fake.requests)
        sync(fake, tmp_path, pipeline=pipeline, resources=["opportunities", "calls"])
        requests = fake.requests[first:]
        assert not any(r.endpoint == "/export/lead/" for r in requests)
        windows = [r for r in requests if r.endpoint == "/event/"
                   and "date_updated__gte" in r.params]
        assert len({r.params.get("date_updated__gte") for r in windows}) == 1
        assert not every_table_mismatches(org, pipeline, tables=["opportunities", "calls"])
        assert dict(rows(pipeline, "SELECT id, display_name FROM close.leads")) == before
        marks = pipeline.state["sources"]["close"]["tables"]
        assert marks["calls"]["watermark"] != marks["leads"]["watermark"]
        sync(fake, tmp_path, pipeline=pipeline)  # every table: leads catch up from their own
    assert not every_table_mismatches(org, pipeline)


def test_tables_first_selected_or_paused_too_long_are_loaded_by_themselves(tmp_path, caplog):
    org = generate_org(seed=84, leads=8)
    rng = random.Random(84)

    def changes() -> None:
        org.advance(timedelta(minutes=10))
        random_changes(org, rng, 20, step=timedelta(seconds=5))
        org.advance(timedelta(seconds=30))

    def export_jobs() -> int:
        return sum(1 for r in fake.requests if r.endpoint == "/export/lead/")

    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, resources=["leads"])
        changes()
        sync(fake, tmp_path, pipeline=pipeline, resources=["leads", "notes"])
        assert export_jobs() == 2  # notes, first selected: read in full, leads from the log
        assert not every_table_mismatches(org, pipeline, tables=["leads", "notes"])
        org.advance(timedelta(days=20))
        changes()
        sync(fake, tmp_path, pipeline=pipeline, resources=["leads"])
        org.advance(timedelta(days=10))  # notes last synced 30 days ago, leads 10
        changes()
        sync(fake, tmp_path, pipeline=pipeline, resources=["leads", "notes"])
        assert export_jobs() == 3
        assert "notes was last synced" in caplog.text and "leads was last" not in caplog.text
        assert not every_table_mismatches(org, pipeline, tables=["leads", "notes"])
