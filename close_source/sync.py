"""Pipeline wiring: destination, dataset, loader format, and reading back what landed."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.pipeline import LoadInfo
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.extract.source import DltSource

from close_source.run_lock import run_lock

PIPELINE_NAME = "close_crm"
DATASET_NAME = "close"

progress_log = logging.getLogger("close_sync.progress")


# The loading connection only: DuckDB defaults to 80% of RAM, and memory must not grow with the
# organisation (bench/). Queries on the file afterwards are not limited.
DUCKDB_LOAD_CONFIG = {"memory_limit": "128MB", "threads": 1}


def duckdb_destination(path: str | Path) -> Any:
    credentials = DuckDbCredentials(str(path), global_config=dict(DUCKDB_LOAD_CONFIG))
    return dlt.destinations.duckdb(credentials)


def destination_for(name: Any, pipeline_name: str) -> Any:
    """DuckDB by default: `<pipeline>.duckdb` in the working directory.

    The file is named after the pipeline, not the dataset: a DuckDB file named like its dataset
    makes `close.leads` ambiguous (Binder Error: Ambiguous reference to catalog or schema).
    """
    if name is None or name in ("", "duckdb"):
        return duckdb_destination(Path.cwd() / f"{pipeline_name}.duckdb")
    return name


# Loader file format per destination type; others get dlt's default for them.
LOADER_FILE_FORMATS = {
    # ~20x faster and far less memory than dlt's default insert_values (bench/)
    "duckdb": "parquet",
    # Not csv, although COPY is faster: dlt loads csv with FORCE_NULL on every nullable column,
    # so an empty string Close sent would land as NULL (a test caught it). Postgres has no
    # parquet loader. Merges key on the primary/merge keys the Arrow hints declare.
    "postgres": "insert_values",
    # BigQuery's batch loads of JSON-typed columns accept CSV, Avro or JSON, not parquet, and
    # our multi-value custom fields and lists are JSON columns.
    "bigquery": "jsonl",
}


def loader_file_format(pipeline: dlt.Pipeline) -> str | None:
    if pipeline.destination is None:
        return None
    return LOADER_FILE_FORMATS.get(pipeline.destination.destination_type.rsplit(".", 1)[-1])


def make_pipeline(
    destination: Any = None,
    dataset_name: str = DATASET_NAME,
    pipeline_name: str = PIPELINE_NAME,
    pipelines_dir: str | None = None,
    progress: bool = True,
) -> dlt.Pipeline:
    # Arrow's default allocator keeps freed memory; the system one gives it back (bench/)
    pa.set_memory_pool(pa.system_memory_pool())
    os.environ.setdefault("LOAD__WORKERS", "2")  # parallel load jobs multiply memory, not speed
    collector: Any = (
        dlt.progress.log(log_period=5.0, logger=progress_log, dump_system_stats=False)
        if progress else None
    )
    kwargs: dict[str, Any] = {"progress": collector} if collector else {}
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=destination_for(destination, pipeline_name),
        dataset_name=dataset_name,
        pipelines_dir=pipelines_dir,
        **kwargs,
    )


def run_sync(pipeline: dlt.Pipeline, source: DltSource, full_refresh: bool = False) -> LoadInfo:
    """Extract, normalize and load under the run lock; `full_refresh` drops the selected
    tables and reloads them.

    A run that died after extracting left a load package behind (its state, the Event Log
    watermark among it, is already the pipeline's): it is loaded first, then this run reads on.
    dlt alone would load it and skip this run's data.
    """
    with run_lock(pipeline):
        if pipeline.has_pending_data:
            progress_log.warning("an earlier run stopped before its data was loaded; loading "
                                 "it first")
            pipeline.normalize()
            pipeline.load()
        return pipeline.run(
            source,
            loader_file_format=loader_file_format(pipeline),  # type: ignore[arg-type]
            refresh="drop_resources" if full_refresh else None,
        )


def table_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Row count of every data table the pipeline's schema knows, children included."""
    schema = pipeline.default_schema
    tables = sorted(schema.data_table_names())
    counts: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in tables:
            name = client.make_qualified_table_name(table)
            try:
                rows = client.execute_sql(f"SELECT count(*) FROM {name}")
            except DatabaseUndefinedRelation:  # declared in the schema, not created yet
                continue
            counts[table] = int(rows[0][0]) if rows else 0
    return counts
