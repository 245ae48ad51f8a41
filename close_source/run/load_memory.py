"""The memory of DuckDB's loading connection: sized from what each load loads, spilling to
disk where it can, and doubled should DuckDB still run out.

A run must stay within a few hundred MB at any organisation size, so DuckDB (which would take
80% of RAM) gets a limit. What it needs to load a table grows with the table's columns (a
block per column being appended) and with the row groups of its parquet files (one is read at
a time): a table of 400 custom fields needs several times what a table of 20 does (bench/).
So each load, when it starts, reads the footers of the files it is about to load and sizes the
limit from them (`sized_mb`: 64 MB at least); a first run is sized like any other. DuckDB may
also spill to a directory in the pipeline's working directory, without keeping insertion
order, which lets it out of most shortages. A load that still runs out is finished again
(`resume.py`: committed tables stay) with twice the memory, up to half of the machine's, with
a line saying so. Only a DuckDB destination made by `close_source` (`duckdb_destination`) is
sized; any other keeps its own settings.

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
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dlt
import pyarrow as pa
import pyarrow.parquet as pq
from dlt.pipeline.exceptions import PipelineStepFailed

from close_source.errors import exception_chain
from close_source.run import load_step, resume

log = logging.getLogger("close_source.progress")

T = TypeVar("T")

FLOOR_MB = 64  # what every load gets at least (the loading connection's own needs)
# What DuckDB needs to insert a parquet file, spilling what it can (bench/first_load.py
# --calibrate: the least memory_limit that inserted each file a first load of 2,000 and 20,000
# leads wrote, with 400 custom fields on leads or none, and those files repeated up to 300,000
# rows): per column, 0.2 MB and 0.03 MB per 1,000 rows, up to 0.8 MB (what it keeps of a
# column grows with the rows of the row group it fills: 97 MB for 428 columns of 2,000 rows,
# 339 MB for 48,000; 26-33 MB for 49 columns of 20,000 to 300,000 rows); half the file's
# largest row group (one is read at a time); and a quarter more, for the rest of a load.
COLUMN_MB, COLUMN_MB_PER_1000_ROWS, COLUMN_MB_MAX = 0.2, 0.03, 0.8
ROW_GROUP_SHARE = 0.5
MARGIN = 1.25
# freed memory DuckDB keeps cached (its default: 128 MB); measured: the load step's peak RSS
# 5-20 MB lower at 20,000 leads, no slower (bench/first_load.py)
ALLOCATOR_FLUSH = "16MB"
STATEMENT_BYTES = 2**20  # dlt's max_query_length: statements of half of it
OUT_OF_MEMORY = ("Out of Memory Error", "could not allocate block", "failed to pin block")


def ceiling_mb() -> int:
    """Half of the machine's memory: what a load may take at most."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4096
    return max(FLOOR_MB, total // 2 // 2**20)


@dataclass(frozen=True)
class LoadFile:
    """A parquet file a load job inserts: what DuckDB's memory for it grows with."""

    table: str
    columns: int
    rows: int
    row_group_mb: float  # its largest row group, uncompressed

    @property
    def needs_mb(self) -> float:
        per_column = min(COLUMN_MB_MAX, COLUMN_MB + COLUMN_MB_PER_1000_ROWS * self.rows / 1000)
        return MARGIN * (per_column * self.columns + ROW_GROUP_SHARE * self.row_group_mb)


def files_to_load(pipeline: dlt.Pipeline) -> list[LoadFile]:
    """The parquet files of every load job not done yet, largest need first."""
    found = []
    for load_id in pipeline.list_normalized_load_packages():
        jobs = pipeline.get_load_package_info(load_id).jobs.get("new_jobs", [])
        for job in jobs:
            if job.job_file_info.file_format != "parquet":
                continue
            try:
                metadata = pq.read_metadata(job.file_path)
            except (OSError, pa.ArrowException):  # dlt's load will say what is wrong with it
                continue
            largest = max((metadata.row_group(i).total_byte_size
                           for i in range(metadata.num_row_groups)), default=0)
            found.append(LoadFile(job.job_file_info.table_name, metadata.num_columns,
                                  metadata.num_rows, largest / 2**20))
    return sorted(found, key=lambda file: file.needs_mb, reverse=True)


def load_workers(pipeline: dlt.Pipeline) -> int:
    """Load jobs at once: one into DuckDB, whose jobs share one database (`load_step.py`): two
    were no faster (bench/first_load.py: 2.5-2.6 s either way at 20,000 leads) and need
    memory for two; two into any other destination (`environment.RunDefaults`)."""
    destination = pipeline.destination
    return 1 if destination is not None and \
        destination.destination_type.endswith(".duckdb") else 2


def sized_mb(files: list[LoadFile]) -> int:
    """What loading `files` one at a time asks for: the largest need, the floor at least, up
    to the ceiling."""
    largest = max((file.needs_mb for file in files), default=0.0)
    return min(ceiling_mb(), max(FLOOR_MB, math.ceil(largest)))


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


def spill_settings(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """DuckDB settings that let a load spill to disk where it would run out of memory, into
    the pipeline's working directory, up to a quarter of the disk's free space (its default:
    90% of the disk); that give freed memory back sooner; and DuckDB's own advice for imports
    that run out of memory, not keeping insertion order (it made no difference to the least
    memory a file needs at the loading connection's one thread: bench/first_load.py)."""
    spill = Path(pipeline.working_dir) / load_step.SPILL_DIRECTORY
    free = shutil.disk_usage(pipeline.working_dir).free
    return {"preserve_insertion_order": False, "temp_directory": str(spill),
            "max_temp_directory_size": f"{max(free // 4, 2**20) // 2**20}MB",
            "allocator_flush_threshold": ALLOCATOR_FLUSH}


@dataclass
class Sizing:
    """The limits of a run's loads: the least one gets (raised when a load ran out) and the
    last one's, with the widest file it loaded."""

    least_mb: int = 0
    limit_mb: int | None = None
    widest: int = 0


@contextmanager
def load_settings(pipeline: dlt.Pipeline, sizing: Sizing) -> Iterator[dict[str, Any]]:
    """For a load: memory sized from what it loads, on every connection the load opens; yields
    the spill settings, for the load's database (`load_step.each_load`)."""
    config = _global_config(pipeline)
    if config is None:
        yield {}
        return
    files = files_to_load(pipeline)
    sizing.widest = max((file.columns for file in files), default=0)
    sizing.limit_mb = max(sizing.least_mb, sized_mb(files))
    set_mb(pipeline, sizing.limit_mb)
    log.info("DuckDB loads with %d MB (%d files, the widest of %d columns)", sizing.limit_mb,
             len(files), sizing.widest)
    yield spill_settings(pipeline)


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
    """Run `step` (a run, or `pipeline.load`), each load in it with the memory sized from what
    it loads and on one held connection (`load_step.py`); a load that still runs out of memory
    is finished again with twice as much, as long as there is more to give."""
    bound_statements(pipeline)
    sizing = Sizing()
    with load_step.each_load(pipeline, lambda: load_settings(pipeline, sizing)):
        while True:
            try:
                return step()
            except PipelineStepFailed as failed:
                limit, ceiling = sizing.limit_mb, ceiling_mb()
                if limit is None or failed.step != "load" or not out_of_memory(failed) \
                        or limit >= ceiling:
                    raise
                sizing.least_mb = min(ceiling, 2 * limit)
                log.warning("DuckDB ran out of its %d MB while loading (the widest table has %s "
                            "columns); loading again with %d MB", limit, sizing.widest,
                            sizing.least_mb)
                for load_id in pipeline.list_normalized_load_packages():
                    resume.restart(pipeline, load_id, first_load)
                step = pipeline.load  # type: ignore[assignment] - the data is extracted
