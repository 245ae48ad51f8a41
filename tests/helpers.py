"""Helpers for tests: pipelines into throwaway DuckDB files, synced from a fake Close."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt

from close_fake import FakeClose
from close_source import sync as run_path
from close_source.pipeline import duckdb_destination, make_pipeline
from tests.pg_server import PostgresServer


@dataclass(frozen=True)
class Warehouse:
    """Where a test pipeline loads: a DuckDB file, or a fresh database on the test server."""

    kind: str = "duckdb"
    server: PostgresServer | None = None

    def destination(self, workdir: Path, name: str) -> Any:
        if self.kind == "postgres" and self.server is not None:
            return dlt.destinations.postgres(self.server.new_database())
        return duckdb_destination(workdir / f"{name}.duckdb")


def new_pipeline(workdir: Path, name: str = "test_close",
                 warehouse: Warehouse | None = None) -> dlt.Pipeline:
    destination = (warehouse or Warehouse()).destination(workdir, name)
    return make_pipeline(destination, pipeline_name=name,
                         pipelines_dir=str(workdir / "pipelines"), progress=False)


def sync(fake: FakeClose, workdir: Path, *, resources: list[str] | None = None,
         full_refresh: bool = False, pipeline: dlt.Pipeline | None = None,
         warehouse: Warehouse | None = None, **source_args: Any) -> dlt.Pipeline:
    """One `close-sync run` against the fake, through the CLI's own run path."""
    pipeline = pipeline or new_pipeline(workdir, warehouse=warehouse)
    source_args.setdefault("export_poll_interval", 0.01)
    run_path.sync(pipeline, resources, full_refresh, api_key=fake.api_key,
                  base_url=fake.base_url, **source_args)
    return pipeline


_OPEN: dict[int, Any] = {}  # pipelines with a connection kept open by `one_connection`


@contextmanager
def one_connection(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Queries of the block share one connection (opening one costs ~40 ms)."""
    if id(pipeline) in _OPEN:
        yield
        return
    with pipeline.sql_client() as client:
        _OPEN[id(pipeline)] = client
        try:
            yield
        finally:
            del _OPEN[id(pipeline)]


@contextmanager
def sql_client(pipeline: dlt.Pipeline) -> Iterator[Any]:
    """The open connection of `one_connection`, else a new one."""
    if id(pipeline) in _OPEN:
        yield _OPEN[id(pipeline)]
        return
    with pipeline.sql_client() as client:
        yield client


def rows(pipeline: dlt.Pipeline, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL against the pipeline's dataset (`{t}` style names are dataset-qualified)."""
    with sql_client(pipeline) as client:
        return [tuple(row) for row in client.execute_sql(sql)]


def ids(pipeline: dlt.Pipeline, table: str, column: str = "id") -> list[str]:
    return [row[0] for row in rows(pipeline, f"SELECT {column} FROM {table}")]


def as_json(value: Any) -> Any:
    """A JSON column's value: DuckDB returns its text, PostgreSQL (jsonb) the decoded value."""
    return json.loads(value) if isinstance(value, str) else value
