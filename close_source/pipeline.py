"""Pipeline wiring: destination, dataset, loader format, and reading back what landed."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import DictionaryProvider
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.pipeline import LoadInfo
from dlt.common.schema.utils import get_write_disposition
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.extract.source import DltSource

from close_source.run.lock import run_lock

PIPELINE_NAME = "close_crm"
DATASET_NAME = "close"

progress_log = logging.getLogger("close_sync.progress")


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


class _Defaults(DictionaryProvider):
    """Our defaults for dlt settings, consulted after every other provider (environment,
    .dlt/*.toml), so a user's own setting wins.

    `insert-from-staging`: a table replaced in full is loaded into the staging dataset first
    and swapped in with one transaction (delete + insert), so readers see it as before or as
    after, never half-loaded; dlt's default, `truncate-and-insert`, empties it when the load
    begins. Merges go through staging on every SQL destination anyway. Staging tables are
    emptied once a load is complete, so they do not keep a second copy of the data.

    A first load (the dataset does not exist yet) has nothing to keep visible, and the copy
    from staging costs a quarter of its time (bench/): it loads the tables directly.
    """

    NAME = "close-sync defaults"

    def __init__(self) -> None:
        super().__init__()
        self._config_doc = {"destination": {}, "load": {"truncate_staging_dataset": True}}
        self.set_replace_strategy("insert-from-staging")

    def set_replace_strategy(self, strategy: str) -> None:
        self._config_doc["destination"] = {name: {"replace_strategy": strategy}
                                           for name in ("duckdb", "postgres")}

    @property
    def name(self) -> str:
        return self.NAME

    @property
    def supports_secrets(self) -> bool:
        return False


def _register_defaults() -> _Defaults:
    providers = Container()[PluggableRunContext].providers
    if _Defaults.NAME not in providers:
        dlt.config.register_provider(_Defaults())
    return providers[_Defaults.NAME]  # type: ignore[return-value]


@contextmanager
def _direct_replaces_if_first_load(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Replace tables without staging while the dataset does not exist (see `_Defaults`)."""
    first = not _dataset_exists(pipeline)
    defaults = _register_defaults()
    if first:
        defaults.set_replace_strategy("truncate-and-insert")
    try:
        yield
    finally:
        defaults.set_replace_strategy("insert-from-staging")


def _dataset_exists(pipeline: dlt.Pipeline) -> bool:
    """Whether the destination holds the dataset; True when that cannot be told (the safe
    answer: atomic replaces)."""
    try:
        with pipeline.sql_client() as client:
            return bool(client.has_dataset())
    except Exception:  # noqa: BLE001 - no answer is "assume it exists"; the run reports errors
        return True


def _import_lazy_modules() -> None:
    """Import in the main thread what the extract's worker threads would import on first use.

    dlt runs parallelized resources in a thread pool; the first `pa.array` in a worker imports
    pandas (pyarrow's pandas shim) and `pyarrow.pandas_compat`, date parsing `_strptime`, and a
    second thread meeting the half-imported module fails with "partially initialized module
    'pandas' has no attribute 'DataFrame'". Found by recording the imports made outside the
    main thread during a full sync (tests/test_lazy_imports.py).
    """
    import _strptime  # noqa: F401
    import zoneinfo  # noqa: F401

    with suppress(ImportError):
        import pandas  # noqa: F401
    pa.array([0])  # initialises pyarrow's pandas shim, importing pyarrow.pandas_compat


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
    _import_lazy_modules()
    _register_defaults()
    os.environ.setdefault("LOAD__WORKERS", "2")  # parallel load jobs multiply memory, not speed
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
    with run_lock(pipeline):
        if pipeline.has_pending_data:
            progress_log.warning("an earlier run stopped before its data was loaded; loading "
                                 "it first")
            pipeline.normalize()
            for load_id in pipeline.list_normalized_load_packages():
                restart_partial_load(pipeline, load_id)
            pipeline.load()
        with _direct_replaces_if_first_load(pipeline):
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
