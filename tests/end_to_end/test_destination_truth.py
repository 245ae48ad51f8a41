"""The destination is the truth about what is loaded: a load package an earlier run left is
loaded only into the destination state it was made for, a dropped table never leaves the
pipeline failing, and `close-sync status` tells what the destination holds. (The randomized
invariant in test_run_shapes.py changes the destination between runs in every other way.)"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from pathlib import Path

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake.churn import random_changes
from close_source.pipeline import (
    PIPELINE_NAME,
    duckdb_destination,
    loader_file_format,
    make_pipeline,
)
from close_source.source import close_source
from tests import destinations as dest
from tests.cli_runs import KEY, close_sync, run_to_the_end
from tests.conftest import WAREHOUSES, warehouse
from tests.helpers import rows, sync
from tests.invariant import every_table_mismatches


def changes(org: FakeOrg, seed: int) -> None:
    org.advance(timedelta(minutes=10))
    random_changes(org, random.Random(seed), 25, step=timedelta(seconds=5))
    org.advance(timedelta(seconds=30))


def leave_a_package(fake: FakeClose, pipeline: dlt.Pipeline) -> None:
    """What a run killed after extracting leaves: a normalized, unloaded package."""
    pipeline.activate()
    source = close_source(api_key=fake.api_key, base_url=fake.base_url)
    pipeline.extract(source, loader_file_format=loader_file_format(pipeline))
    pipeline.normalize()
    assert pipeline.has_pending_data


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_a_package_made_for_a_lost_destination_is_dropped(request, tmp_path, kind, caplog):
    org = generate_org(seed=91, leads=10)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, warehouse=warehouse(request, kind))
        changes(org, 91)
        leave_a_package(fake, pipeline)
        dest.delete_database(pipeline)  # the package holds only the window's changes
        sync(fake, tmp_path, pipeline=pipeline)
    assert "was made for another state of" in caplog.text
    assert "holds no data of this pipeline" in caplog.text
    assert not pipeline.has_pending_data
    assert not every_table_mismatches(org, pipeline)


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_a_dropped_table_never_leaves_the_pipeline_failing(request, tmp_path, kind, caplog):
    """Before: the package merging into the dropped table failed, and every later run tried
    it again (`relation "close.leads" does not exist`), `--full-refresh` included."""
    org = generate_org(seed=92, leads=10)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, warehouse=warehouse(request, kind))
        changes(org, 92)
        leave_a_package(fake, pipeline)
        caplog.set_level(logging.INFO, logger="close_source")
        dest.drop_table(pipeline, "leads")
        dest.drop_table(pipeline, "users")  # replaced every run: created again at once
        sync(fake, tmp_path, pipeline=pipeline)
        assert "leads: not in the destination" in caplog.text
        assert not every_table_mismatches(org, pipeline)
        changes(org, 93)
        sync(fake, tmp_path, pipeline=pipeline)  # and incremental again after
    assert not every_table_mismatches(org, pipeline)
    assert rows(pipeline, "SELECT count(*) FROM close.leads") == [(len(org.all("lead")),)]


def test_status_tells_what_the_destination_holds(tmp_path):
    org = generate_org(seed=94, leads=6)
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, None)
        fresh = tmp_path / "elsewhere"  # another working directory, the same DuckDB file
        fresh.mkdir()
        env = {"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "close_crm.duckdb")}
        status = close_sync(["status"], fresh, **env)
        assert status.returncode == 0, status.stderr
        assert "the next run continues from the state" in status.stdout
        assert "  leads  " in status.stdout and "Next run: a full load" not in status.stdout
        requests = len(fake.requests)
        run_to_the_end(fresh, fake, None, **env)  # continues incrementally: no export
        assert not any(r.endpoint == "/export/lead/" for r in fake.requests[requests:])
        assert "restored it from" in (fresh / "run.log").read_text()
        assert not every_table_mismatches(org, _pipeline_at(fresh, tmp_path))
        (tmp_path / "close_crm.duckdb").unlink()
        status = close_sync(["status"], tmp_path)
    assert status.returncode == 0, status.stderr
    assert "holds no data of this pipeline" in status.stdout
    assert "Next run: a full load" in status.stdout


def _pipeline_at(workdir: Path, database_dir: Path) -> dlt.Pipeline:
    """The CLI's pipeline in `workdir`, loading the DuckDB file in `database_dir`."""
    return make_pipeline(duckdb_destination(database_dir / f"{PIPELINE_NAME}.duckdb"),
                         progress=False, pipelines_dir=str(workdir / "dlt_data" / "pipelines"))
