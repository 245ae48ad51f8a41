"""Pipeline wiring: destination, dataset, loader format, and reading back what landed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.extract.source import DltSource

PIPELINE_NAME = "close_crm"
DATASET_NAME = "close"

progress_log = logging.getLogger("close_sync.progress")


def destination_for(name: Any, pipeline_name: str) -> Any:
    """DuckDB by default: `<pipeline>.duckdb` in the working directory.

    The file is named after the pipeline, not the dataset: a DuckDB file named like its dataset
    makes `close.leads` ambiguous (Binder Error: Ambiguous reference to catalog or schema).
    """
    if name is None or name in ("", "duckdb"):
        return dlt.destinations.duckdb(str(Path.cwd() / f"{pipeline_name}.duckdb"))
    return name


def loader_file_format(pipeline: dlt.Pipeline) -> str | None:
    """Parquet into DuckDB: ~20x faster and far less memory than dlt's default insert_values."""
    if pipeline.destination is not None and pipeline.destination.destination_name == "duckdb":
        return "parquet"
    return None


def make_pipeline(
    destination: Any = None,
    dataset_name: str = DATASET_NAME,
    pipeline_name: str = PIPELINE_NAME,
    pipelines_dir: str | None = None,
    progress: bool = True,
) -> dlt.Pipeline:
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
    """Extract, normalize and load; `full_refresh` drops the selected tables and reloads them."""
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
