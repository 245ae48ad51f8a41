"""Event Log windows larger than memory: past `window_memory_rows` a window's events and object
states spill to a scratch file on disk, and the tables come out the same as when it fits."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from close_fake import FakeClose, generate_org
from close_fake.churn import random_changes
from close_source.catalog import CATALOG, EVENTS_TABLE
from close_source.pipeline import run_sync
from close_source.source import close_source
from close_source.user_errors import user_error_message
from tests.helpers import new_pipeline, rows, sync
from tests.invariant import duplicate_keys, every_table_mismatches


def table_contents(pipeline: dlt.Pipeline) -> dict[str, list[tuple[Any, ...]]]:
    """Every data table's rows without dlt's bookkeeping columns, sorted (custom field changes
    without when they were seen: each pipeline's own run time)."""
    contents = {}
    schema = pipeline.default_schema
    for table in sorted(schema.data_table_names()):
        columns = sorted(name for name in schema.tables[table]["columns"]
                         if not name.startswith("_dlt") and name != "seen_at")
        try:
            found = rows(pipeline, f"SELECT {', '.join(columns)} FROM close.{table}")
        except Exception:  # noqa: BLE001 - declared, never created: no rows
            found = []
        contents[table] = sorted(found, key=repr)
    return contents


EVERY_TABLE = [entry.table for entry in CATALOG] + [EVENTS_TABLE]


def test_a_window_that_spills_to_disk_gives_the_same_tables(tmp_path: Path, caplog):
    """Strict reading (per object type and action, several threads writing the window)."""
    org = generate_org(seed=71, leads=15)
    rng = random.Random(71)
    with FakeClose(org) as fake:
        spilled = new_pipeline(tmp_path, "spilled")
        in_memory = new_pipeline(tmp_path, "in_memory")
        for pipeline in (spilled, in_memory):
            sync(fake, tmp_path, pipeline=pipeline, resources=EVERY_TABLE)
        for _ in range(2):
            org.advance(timedelta(minutes=7))
            random_changes(org, rng, 40, step=timedelta(seconds=11))
            org.advance(timedelta(seconds=30))
            for pipeline, memory_rows in ((spilled, 10), (in_memory, 1_000_000)):
                caplog.clear()
                with caplog.at_level(logging.INFO, logger="close_source"):
                    sync(fake, tmp_path, pipeline=pipeline, resources=EVERY_TABLE,
                         window_memory_rows=memory_rows)
                assert ("kept on disk" in caplog.text) == (pipeline is spilled)
            for pipeline in (spilled, in_memory):
                assert not every_table_mismatches(org, pipeline)
                assert not duplicate_keys(pipeline)
            assert table_contents(spilled) == table_contents(in_memory)
            assert not list(Path(spilled.working_dir).glob("close-window-*"))


def test_a_source_run_by_another_pipeline_than_it_was_planned_with_stops(tmp_path: Path,
                                                                         small_fake):
    """A source reads the watermarks of the pipeline active when it is created: run by
    another, it would apply the wrong windows to the wrong tables (found by the test above,
    with two pipelines in one process)."""
    first, second = new_pipeline(tmp_path, "first"), new_pipeline(tmp_path, "second")
    for pipeline in (first, second):
        sync(small_fake, tmp_path, pipeline=pipeline)
    second.activate()
    source = close_source(api_key=small_fake.api_key, base_url=small_fake.base_url)
    with pytest.raises(PipelineStepFailed) as failed:
        run_sync(first, source)
    assert user_error_message(failed.value) == (
        "close_source() was created while pipeline 'second' was active, but pipeline 'first' "
        "runs it: create the source after the pipeline, or call pipeline.activate() first")
