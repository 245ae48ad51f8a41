"""The memory of DuckDB's loading connection: small, sized to the widest tables, and doubled
when DuckDB runs out.

A run must stay within a few hundred MB at any organisation size, so the loading connection
gets 64 MB (DuckDB would take 80% of RAM). But what DuckDB needs to load a table grows with
its columns: a block per column and the rows of one insert (bench/, measured: a table of 400
custom fields needs ~200 MB at 3,000 leads and more at 15,000), and Close organisations can
have hundreds of custom fields on one object type. So the limit starts at 0.75 MB per column
of the widest table the schema knows (64 MB at least), and when DuckDB still runs out, the
load is finished again (`resume.py`: committed tables stay) with twice the memory, up to half
of the machine's, with a line saying so. Only a DuckDB destination made by `close_source`
(`duckdb_destination`) is sized; any other keeps its own settings.

PostgreSQL loads INSERT statements that dlt cuts from the load files at half its maximum query
length, 32 MB: each statement is held as text several times over (read, joined, encoded) by
every load worker, and the allocator keeps what they freed: the load step took 290 MB over
the extract's peak at 20,000 leads and 450 MB at 100,000 (bench/). Statements of half a MB
keep it within ~60 MB, and load no slower.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from close_source.errors import exception_chain
from close_source.run import resume

log = logging.getLogger("close_source.progress")

T = TypeVar("T")

FLOOR_MB = 64
MB_PER_COLUMN = 0.75
STATEMENT_BYTES = 2**20  # dlt's max_query_length: statements of half of it
OUT_OF_MEMORY = ("Out of Memory Error", "could not allocate block", "failed to pin block")


def ceiling_mb() -> int:
    """Half of the machine's memory: what a load may take at most."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4096
    return max(FLOOR_MB, total // 2 // 2**20)


def widest_table(pipeline: dlt.Pipeline) -> int:
    """Columns of the widest table the pipeline's schema knows (0 before the first run)."""
    try:
        schema = pipeline.default_schema
    except Exception:  # noqa: BLE001 - no schema yet
        return 0
    return max((len(schema.tables[name].get("columns", {}))
                for name in schema.data_table_names()), default=0)


def sized_mb(pipeline: dlt.Pipeline) -> int:
    """The limit the widest table asks for."""
    return min(ceiling_mb(), max(FLOOR_MB, math.ceil(MB_PER_COLUMN * widest_table(pipeline))))


def _global_config(pipeline: dlt.Pipeline) -> dict[str, Any] | None:
    """The loading connection's settings, if close_source made the destination."""
    destination = pipeline.destination
    if destination is None or not destination.destination_type.endswith(".duckdb"):
        return None
    credentials = destination.config_params.get("credentials")
    config = credentials.get("global_config") if isinstance(credentials, dict) else None
    return config if isinstance(config, dict) and "memory_limit" in config else None


def current_mb(pipeline: dlt.Pipeline) -> int | None:
    config = _global_config(pipeline)
    if config is None:
        return None
    return int(str(config["memory_limit"]).removesuffix("MB"))


def set_mb(pipeline: dlt.Pipeline, megabytes: int) -> None:
    """Takes effect with the next connection a load opens."""
    config = _global_config(pipeline)
    if config is not None:
        config["memory_limit"] = f"{megabytes}MB"


def out_of_memory(exc: BaseException) -> bool:
    """DuckDB could not get the memory it needed, anywhere in the exception's chain."""
    return any(text in str(current) for current in exception_chain(exc) for text in OUT_OF_MEMORY)


def bound_statements(pipeline: dlt.Pipeline) -> None:
    """INSERT statements of a few MB on destinations that load them (PostgreSQL), unless the
    destination was given its own maximum query length."""
    destination = pipeline.destination
    if destination is not None and destination.destination_type.endswith(".postgres"):
        destination.caps_params.setdefault("max_query_length", STATEMENT_BYTES)


def with_room(pipeline: dlt.Pipeline, step: Callable[[], T], first_load: bool) -> T:
    """Run `step` (a run or a load) with the sized limit; a load that runs out of memory is
    finished again with twice as much, as long as there is more to give."""
    bound_statements(pipeline)
    if current_mb(pipeline) is None:
        return step()
    limit = sized_mb(pipeline)
    set_mb(pipeline, limit)
    while True:
        try:
            return step()
        except PipelineStepFailed as failed:
            ceiling = ceiling_mb()
            if failed.step != "load" or not out_of_memory(failed) or limit >= ceiling:
                raise
            bigger = min(ceiling, max(2 * limit, sized_mb(pipeline)))
            log.warning("DuckDB ran out of its %d MB while loading (the widest table has %s "
                        "columns); loading again with %d MB", limit, widest_table(pipeline), bigger)
            limit = bigger
            set_mb(pipeline, limit)
            for load_id in pipeline.list_normalized_load_packages():
                resume.restart(pipeline, load_id, first_load)
            step = pipeline.load  # type: ignore[assignment] - the data is extracted
