"""Pipeline wiring: destination, dataset, loader format, and reading back what landed."""

from __future__ import annotations

import logging
import os
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.common.schema.utils import get_write_disposition
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.extract.source import DltSource

from close_source.run.environment import run_environment
from close_source.run.lock import run_lock

PIPELINE_NAME = "close_crm"
DATASET_NAME = "close"

progress_log = logging.getLogger("close_source.progress")


# The loading connection only: DuckDB defaults to 80% of RAM, and memory must not grow with the
# organisation (bench/). Queries on the file afterwards are not limited.
DUCKDB_LOAD_CONFIG = {"memory_limit": "128MB", "threads": 1}


def duckdb_destination(path: str | os.PathLike[str] | None = None) -> Any:
    """DuckDB at `path`; without one, where dlt's configuration says
    (`DESTINATION__DUCKDB__CREDENTIALS`, `[destination.duckdb] credentials`), by default
    `<pipeline name>.duckdb` in the working directory.

    Credentials given as a mapping hold only the loading connection's settings: dlt takes the
    database from its configuration for the fields the mapping leaves out. The file is named
    after the pipeline, not the dataset: a DuckDB file named like its dataset makes
    `close.leads` ambiguous (Binder Error: Ambiguous reference to catalog or schema).
    """
    credentials: dict[str, Any] = {"global_config": dict(DUCKDB_LOAD_CONFIG)}
    if path is not None:
        credentials["database"] = str(path)
    return dlt.destinations.duckdb(credentials=credentials)


def destination_for(name: Any) -> Any:
    """DuckDB by default; any other dlt destination by name or factory."""
    if name is None or name in ("", "duckdb"):
        return duckdb_destination()
    return name


def _dataset_exists(pipeline: dlt.Pipeline) -> bool:
    """Whether the destination holds the dataset; True when that cannot be told (the safe
    answer: atomic replaces)."""
    try:
        with pipeline.sql_client() as client:
            return bool(client.has_dataset())
    except Exception:  # noqa: BLE001 - no answer is "assume it exists"; the run reports errors
        return True


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
    collector: Any = (
        dlt.progress.log(log_period=5.0, logger=progress_log, dump_system_stats=False)
        if progress else None
    )
    kwargs: dict[str, Any] = {"progress": collector} if collector else {}
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=destination_for(destination),
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
    with run_lock(pipeline), run_environment(first_load=not _dataset_exists(pipeline)):
        if pipeline.has_pending_data:
            progress_log.warning("an earlier run stopped before its data was loaded; loading "
                                 "it first")
            pipeline.normalize()
            for load_id in pipeline.list_normalized_load_packages():
                restart_partial_load(pipeline, load_id)
            pipeline.load()
        return pipeline.run(
            source,
            loader_file_format=loader_file_format(pipeline),  # type: ignore[arg-type]
            refresh="drop_resources" if full_refresh else None,
        )


def restart_partial_load(pipeline: dlt.Pipeline, load_id: str) -> bool:
    """Make the load of a package that an earlier run began load it again from the start, so
    nothing is loaded twice; True if it had begun.

    dlt records a job's completion in the package after the destination committed it; a run
    that died (or hit a full disk) in between leaves the job in `started_jobs`, and the next
    load runs it again. It does not re-initialise the package either (staging tables are
    truncated only when its schema update is applied), so the rows land twice in staging and
    from there in the table. Here every job of a replaced or merged table goes back to
    `new_jobs`, their follow-up SQL jobs are dropped (dlt creates them again when a table chain
    completes), and the schema update is restored so dlt initialises the package again:
    staging tables emptied, truncate-and-insert tables truncated. Re-running the follow-ups is
    idempotent: a replace swaps in the staging rows, a delete-insert merge deletes their keys
    first. Append jobs (dlt's state row) are left to dlt.
    """
    packages = pipeline._get_load_storage().normalized_packages  # noqa: SLF001 - dlt's own
    if packages.get_schema_update_file(load_id) is not None or packages.has_abort_flag(load_id):
        return False  # never initialised: dlt loads it from the start anyway
    tables = packages.load_schema(load_id).tables
    moved = 0
    for state, job in packages.list_all_jobs_with_states(load_id):
        name = job.file_name()
        if job.file_format == "sql":
            packages.storage.delete(packages.get_job_file_path(load_id, state, name))
        elif state != "new_jobs" and job.table_name in tables and \
                get_write_disposition(tables, job.table_name) in ("replace", "merge"):
            packages.storage.atomic_rename(packages.get_job_file_path(load_id, state, name),
                                           packages.get_job_file_path(load_id, "new_jobs", name))
            moved += 1
        else:
            continue
        packages.clear_pending_transition(load_id, name)
    packages.save_schema_updates(load_id, packages.get_load_package_info(load_id).schema_update)
    progress_log.warning("load package %s was partly loaded: loading its %d started or "
                         "finished jobs again from a fresh staging dataset", load_id, moved)
    return True


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
