"""Shared fixtures: a fake Close over loopback, and the warehouses tests load into."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext

from close_fake import FakeClose, generate_org
from tests.helpers import Warehouse
from tests.pg_server import PostgresServer, find_bindir

# With Airflow installed (the `airflow` extra, for examples/airflow's test) dlt imports it in every
# process that reads its config, to offer Airflow Variables as secrets: ~3 s per `close-sync`
# process, a root log handler on stdout and a ~/airflow/airflow.db. The tests use none; subprocesses
# inherit this. (Set before any config is read: dlt reads its providers once per process.)
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")

# Sync tests run on each; `.ci/run` sets CLOSE_DLT_REQUIRE_POSTGRES so CI cannot skip Postgres.
WAREHOUSES = ("duckdb", "postgres")


@pytest.fixture
def small_fake() -> Iterator[FakeClose]:
    with FakeClose(generate_org(seed=11, leads=12)) as fake:
        yield fake


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (each pipeline gets a database)."""
    bindir = find_bindir()
    if bindir is None:
        message = ("PostgreSQL binaries (initdb, pg_ctl, postgres) not found: install "
                   "PostgreSQL or set CLOSE_DLT_PG_BIN")
        if os.environ.get("CLOSE_DLT_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bindir).start()
    yield server
    server.stop()


def warehouse(request: pytest.FixtureRequest, kind: str) -> Warehouse:
    """The warehouse a parametrized fixture asked for (starts Postgres only when needed)."""
    if kind == "postgres":
        return Warehouse("postgres", request.getfixturevalue("postgres_server"))
    return Warehouse("duckdb")


END_TO_END = os.path.join("tests", "end_to_end") + os.sep


@pytest.fixture(autouse=True)
def outside_any_pipeline(request: pytest.FixtureRequest) -> None:
    """A test outside tests/end_to_end runs outside a pipeline, as in a process of its own: dlt
    keeps the last pipeline run in a process active, and in a pytest worker that may be an
    end-to-end test's (DuckDB: descriptions go to comments, not hints)."""
    if END_TO_END not in str(request.path):
        context = Container()[PipelineContext]
        if context.is_active():
            context.deactivate()


# Modules holding the suite's longest tests (one to two minutes each, `--durations`), run first:
# in collection order they started late and finished alone, the other worker idle (~4 minutes
# of CI's wall). Whole modules move, so their module-scoped fixtures stay shared.
LONGEST_FIRST = ("test_run_shapes", "test_history", "test_heal_source", "test_large_windows",
                 "test_incremental", "test_atomic_replace")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whole syncs are the slow part of the suite: `python3 dev.py test --fast` leaves them
    out (`-m "not slow"`), CI and `python3 dev.py test` run everything."""
    for item in items:
        if END_TO_END in str(item.path):
            item.add_marker(pytest.mark.slow)
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: order kept
