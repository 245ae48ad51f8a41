"""Dagster materializes the Close tables through `close-sync run`'s run path.

Every asset against the fake Close: the tables are exact. Then a subset, after changes in the
organisation: only those tables are read, from the Event Log, and each selected asset reports a
materialization (a missing result does not fail a Dagster run, so it is counted here).
"""

from __future__ import annotations

import logging
import random
import runpy
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from close_fake import FakeClose, generate_org, random_changes
from close_source.catalog import BY_TABLE, CATALOG
from close_source.run import state as st
from close_source.stages import SUMMARY_LOGGER
from tests.helpers import new_pipeline, rows
from tests.invariant import every_table_mismatches
from tests.oracle import expected_objects

dg = pytest.importorskip("dagster", reason="the `dagster` extra (dev.py installs it)")
close_dagster = pytest.importorskip("close_source.dagster")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dagster"
ALL = {close_dagster.asset_key(entry.table) for entry in CATALOG}
SUBSET = ["leads", "tasks"]


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """The fake org, its server, the assets, their working directory and the requests made
    when they were defined, after every asset was materialized once."""
    workdir = tmp_path_factory.mktemp("dagster")
    org = generate_org(seed=57, leads=14)
    summaries = Summaries()
    summary_log = logging.getLogger(SUMMARY_LOGGER)
    summary_log.addHandler(summaries)
    try:
        with FakeClose(org) as fake:
            assets = assets_into(workdir, fake)
            defined = len(fake.requests)
            instance = dg.DagsterInstance.ephemeral()
            result = dg.materialize([assets], instance=instance)
            summary_log.removeHandler(summaries)
            lines = [entry.user_message for entry in instance.all_logs(result.run_id)
                     if entry.step_key == "close_sync" and not entry.is_dagster_event]
            yield org, fake, assets, workdir, result, defined, (summaries.numbers, lines)
    finally:
        summary_log.removeHandler(summaries)


class Summaries(logging.Handler):
    """The summary lines' numbers, as a scheduler's log handler receives them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.numbers: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.numbers.append(record.close)


def assets_into(workdir, fake, **source_args):
    """The assets loading where `new_pipeline(workdir)` does: the same files and dataset."""
    pipeline = new_pipeline(workdir)
    source_args = {"api_key": fake.api_key, "export_poll_interval": 0.01, **source_args}
    return close_dagster.close_assets(
        destination=pipeline.destination, pipeline_name=pipeline.pipeline_name,
        pipelines_dir=pipeline.pipelines_dir, base_url=fake.base_url, **source_args)


def materialized(result) -> list:
    return [event.asset_key for event in result.get_asset_materialization_events()]


def test_defining_the_assets_reads_nothing_and_follows_the_catalog(synced):
    _, _, assets, _, _, requests_when_defined, _ = synced
    assert requests_when_defined == 0  # no /me/, no reference table: nothing before a run
    assert set(assets.keys) == ALL
    for entry in CATALOG:
        key = close_dagster.asset_key(entry.table)
        assert assets.group_names_by_key[key] == "close"
        upstream = {dep.asset_key for dep in assets.specs_by_key[key].deps}
        assert upstream == ({close_dagster.asset_key("leads")} if entry.belongs_to else set())


def test_every_asset_materializes_and_the_tables_are_exact(synced):
    org, fake, _, workdir, result, defined, (summaries, lines) = synced
    pipeline = new_pipeline(workdir)
    assert result.success
    assert sorted(materialized(result), key=str) == sorted(ALL, key=str)
    assert every_table_mismatches(org, pipeline) == {}
    # what the graph says hangs off a lead is what carries a lead_id: the catalog is right
    schema = pipeline.default_schema
    with_lead_id = {entry.table for entry in CATALOG
                    if "lead_id" in schema.tables.get(entry.table, {}).get("columns", {})}
    assert with_lead_id == {entry.table for entry in CATALOG if entry.belongs_to}
    leads = next(event.materialization.metadata for event in
                 result.get_asset_materialization_events()
                 if event.asset_key == close_dagster.asset_key("leads"))
    [(count,)] = rows(pipeline, "SELECT count(*) FROM close.leads")
    assert count == len(expected_objects(org, "leads")) == leads["dagster/row_count"].value
    assert leads["rows_loaded"].value >= count  # with the addresses and merges written with it
    assert "display_name" in {column.name for column in leads["dagster/column_schema"].schema
                              .columns}
    # the run's summary line, as `close-sync run` logs it, reached the run's loggers
    [summary] = summaries
    assert summary["command"] == "run" and summary["ok"] and summary["tables"]["leads"] == count
    assert summary["requests"] == len(fake.requests) - defined > 0
    # the run's own log in Dagster's event log: one line per stage and the summary, as cron's
    assert [line.split(":")[0] for line in lines] == [
        "plan", "extract", "normalize", "load", "settle", "summary"], lines


def test_a_subset_syncs_only_its_tables_from_the_event_log(synced):
    org, fake, assets, workdir, _, _, _ = synced
    marks_before = st.watermarks(new_pipeline(workdir).state["sources"]["close"])
    org.advance(timedelta(minutes=10))
    random_changes(org, random.Random(5), 25, step=timedelta(seconds=5))
    org.advance(timedelta(seconds=30))
    first = len(fake.requests)
    result = dg.materialize([assets], selection=[close_dagster.asset_key(t) for t in SUBSET])
    assert result.success
    assert materialized(result) == [close_dagster.asset_key(t) for t in SUBSET]  # upstream first
    requests = fake.requests[first:]
    endpoints = {request.endpoint or "" for request in requests}
    assert "/event/" in endpoints  # incremental: the Event Log window
    assert not any(endpoint.startswith("/export/") for endpoint in endpoints)  # no full read
    for entry in CATALOG:  # no other table's endpoint was read
        if entry.table not in SUBSET and entry.read in ("windows", "keyset"):
            assert f"/{entry.path}" not in endpoints, entry.table
    pipeline = new_pipeline(workdir)
    marks = st.watermarks(pipeline.state["sources"]["close"])
    assert {table for table in marks if marks[table] != marks_before[table]} == set(SUBSET)
    assert every_table_mismatches(org, pipeline, tables=SUBSET) == {}
    assert every_table_mismatches(org, pipeline, tables=["calls"]) != {}  # not synced: stale
    assert {BY_TABLE[t].incremental for t in SUBSET} == {"events"}


def test_a_user_error_fails_the_run_with_its_one_line(tmp_path):
    with FakeClose(generate_org(seed=58, leads=2)) as fake:
        assets = assets_into(tmp_path, fake, api_key="not-the-key")
        result = dg.materialize([assets], raise_on_error=False)
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "SOURCES__CLOSE__API_KEY" in message and "401" in message
    assert "not-the-key" not in message


def test_the_example_project_loads_with_its_hourly_schedule(monkeypatch, tmp_path):
    monkeypatch.setenv("CLOSE_PIPELINES_DIR", str(tmp_path / "pipelines"))
    defs = runpy.run_path(str(EXAMPLE / "definitions.py"))["defs"]
    dg.Definitions.validate_loadable(defs)
    schedule = defs.resolve_schedule_def("close_hourly")
    assert schedule.cron_schedule == "7 * * * *"
    assert defs.resolve_job_def(schedule.job_name).asset_layer.selected_asset_keys == ALL
    assets = defs.resolve_assets_def(close_dagster.asset_key("leads"))
    assert assets.op.pool == "close_sync"
    instance = yaml.safe_load((EXAMPLE / "dagster.yaml").read_text())
    assert instance["concurrency"]["pools"]["default_limit"] == 1  # one run of the pipeline
    assert "python_logs" not in instance  # the assets log their lines themselves
