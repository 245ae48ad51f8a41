"""dlt's load step into DuckDB, on one connection held for its whole length.

dlt 1.31 opens a connection to the DuckDB file for each load job and closes the database when
no job holds one: the close checkpoints the file, and the next job opens it again. DuckDB
shares one database instance among a process's connections to a file, so one connection held
for the step keeps the instance open: dlt's connections then come and go at no cost, and the
file is checkpointed once, before the held one closes (explicitly: DuckDB's close swallows a
failed checkpoint, a full disk among them). That checkpoint is the same work as the many, so
a full load is no faster (20,000 leads: 2.9-3.8 s of load step, then 2.1-2.4 s of checkpoint,
against 4.3-6.1 s for both: bench/first_load.py), but the opening and closing between jobs is
saved: a run with nothing to apply takes ~0.6 s less (2,000 leads: 2.0-2.9 s instead of
2.6-3.5 s, bench/run_overhead.py).
It is opened by dlt (`pipeline.sql_client()`), with the configuration dlt's own connections
have: DuckDB refuses a second connection to a file with a different one.

Held for the load step only, dlt's `pipeline.load` (which `pipeline.run` calls): during the
extract, which takes minutes, the file stays free (another process may read it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import dlt

log = logging.getLogger("close_source.run.load_step")

SPILL_DIRECTORY = "duckdb-spill"  # in the working directory: where a load's DuckDB may spill


@contextmanager
def each_load(pipeline: dlt.Pipeline,
              settings: Callable[[], AbstractContextManager[dict[str, Any]]]) -> Iterator[None]:
    """For the block, every load of `pipeline` (a `pipeline.run`'s, or `pipeline.load` called
    on its own) runs within `settings()`, as dlt's step, trace and all, on a connection held
    until the step ends. What `settings()` yields is set once on the database for the step
    (DuckDB settings dlt must not set again on each of its connections: `temp_directory`
    cannot change once DuckDB spilled)."""
    original = pipeline.load  # dlt's step, bound to the pipeline

    def load(*args: Any, **kwargs: Any) -> Any:
        with settings() as database_settings, held_connection(pipeline, database_settings):
            return original(*args, **kwargs)

    pipeline.load = load  # type: ignore[method-assign] - the instance's, for the block
    try:
        yield
    finally:
        del pipeline.load


@contextmanager
def held_connection(pipeline: dlt.Pipeline,
                    database_settings: dict[str, Any] | None = None) -> Iterator[None]:
    """A connection to a DuckDB destination for the block, with `database_settings` set on
    its database; none to any other destination, none before anything was extracted (nothing
    to load), and none when it cannot be opened: dlt's load then meets the same problem (a
    file another process has) and reports it."""
    destination = pipeline.destination
    if destination is None or not destination.destination_type.endswith(".duckdb") \
            or pipeline.default_schema_name is None:
        yield
        return
    try:
        client = pipeline.sql_client()
        client.open_connection()
    except Exception as error:  # noqa: BLE001 - said by dlt's load, in its step
        log.debug("loading without a held connection: %s", error)
        yield
        return
    try:
        for name, value in (database_settings or {}).items():
            client.execute_sql(f"SET GLOBAL {name} = ?", value)
        yield
        # what closing would do, but a failure is said (a full disk), not swallowed: the load
        # is committed to the write-ahead log, and the run stops as one killed after its load
        began = time.monotonic()
        client.execute_sql("CHECKPOINT")
        log.info("DuckDB checkpointed the load in %.1fs", time.monotonic() - began)
    finally:
        client.close_connection()
