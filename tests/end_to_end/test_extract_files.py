"""The extract starts a table's next parquet file every `EXTRACT_FILE_ROWS` rows (a parquet
writer keeps every row group's metadata until its file closes): a table written in several
files loads whole and once, into DuckDB and into PostgreSQL."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from close_fake import FakeClose, generate_org
from close_source.run import environment
from close_source.shape import batcher
from tests.conftest import WAREHOUSES, warehouse
from tests.helpers import new_pipeline, rows, sync
from tests.invariant import every_table_mismatches


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_a_table_written_in_several_files_loads_whole(request, tmp_path: Path, monkeypatch,
                                                      kind: str):
    monkeypatch.setattr(batcher.HELD, "limit", 0)  # an item a batch (of 1,000 rows at most)
    monkeypatch.setattr(environment, "EXTRACT_FILE_ROWS", 1_000)
    org = generate_org(seed=11, leads=1_100, activities_per_lead=1)
    pipeline = new_pipeline(tmp_path, warehouse=warehouse(request, kind))
    with FakeClose(org) as fake:
        sync(fake, tmp_path, pipeline=pipeline)

    load_id = rows(pipeline, "SELECT max(load_id) FROM close._dlt_loads")[0][0]
    jobs = pipeline.get_load_package_info(load_id).jobs["completed_jobs"]
    files = Counter(job.job_file_info.table_name for job in jobs)
    assert files["contacts"] >= 2 and files["contacts__emails"] >= 2, files  # 2,200 rows each
    assert every_table_mismatches(org, pipeline) == {}
