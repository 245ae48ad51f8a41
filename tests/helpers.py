"""Helpers for tests: pipelines into throwaway DuckDB files, synced from a fake Close."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt

from close_source import close_source
from close_source.fake import FakeClose
from close_source.sync import duckdb_destination, make_pipeline, run_sync


def new_pipeline(workdir: Path, name: str = "test_close") -> dlt.Pipeline:
    destination = duckdb_destination(workdir / f"{name}.duckdb")
    return make_pipeline(destination, pipeline_name=name,
                         pipelines_dir=str(workdir / "pipelines"), progress=False)


def sync(fake: FakeClose, workdir: Path, *, resources: list[str] | None = None,
         full_refresh: bool = False, pipeline: dlt.Pipeline | None = None,
         **source_args: Any) -> dlt.Pipeline:
    """One `close-sync run` against the fake, as the CLI does it."""
    pipeline = pipeline or new_pipeline(workdir)
    source_args.setdefault("export_poll_interval", 0.01)
    source = close_source(api_key=fake.api_key, base_url=fake.base_url, tables=resources,
                          **source_args)
    run_sync(pipeline, source, full_refresh=full_refresh)
    return pipeline


def rows(pipeline: dlt.Pipeline, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL against the pipeline's dataset (`{t}` style names are dataset-qualified)."""
    with pipeline.sql_client() as client:
        return [tuple(row) for row in client.execute_sql(sql)]


def ids(pipeline: dlt.Pipeline, table: str, column: str = "id") -> list[str]:
    return [row[0] for row in rows(pipeline, f"SELECT {column} FROM {table}")]
