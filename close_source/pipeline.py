"""Pipeline wiring: destination, dataset, loader format, and reading back what landed."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.extract.source import DltSource

from close_source.collector import RunCollector
from close_source.run import (
    comments,
    history_kept,
    history_settle,
    kept_export,
    load_memory,
    postgres_copy,
    postgres_keys,
    resume,
    stage_history,
    staging,
)
from close_source.run import state as st
from close_source.run.environment import run_environment
from close_source.run.lock import run_lock
from close_source.stages import stage

PIPELINE_NAME = "close_crm"
DATASET_NAME = "close"
SOURCE_NAME = st.SOURCE  # the @dlt.source name: its state is `sources.close`

progress_log = logging.getLogger("close_source.progress")


# The loading connection only: DuckDB defaults to 80% of RAM, and memory must not grow with the
# organisation. A load adds about the limit to what the extract left (bench/): 64 MB keeps the
# whole run under 400 MB at any size for ~10% more load time than 128 MB. Wide tables (many
# custom fields) need more: `run/load_memory.py` sizes each load from the files it loads.
# Queries on the file afterwards are not limited.
DUCKDB_LOAD_CONFIG = {"memory_limit": "64MB", "threads": 1}


def duckdb_destination(path: str | os.PathLike[str] | None = None) -> Any:
    """DuckDB at `path`; without one, where dlt's configuration says
    (`DESTINATION__DUCKDB__CREDENTIALS`, `[destination.duckdb] credentials`), by default
    `<pipeline name>.duckdb` in the working directory.

    Credentials given as a mapping hold only the loading connection's settings: dlt takes the
    database from its configuration for the fields the mapping leaves out. The file is named
    after the pipeline, not the dataset: a DuckDB file named like its dataset makes
    `close.leads` ambiguous (Binder Error: Ambiguous reference to catalog or schema).
    """
    credentials: dict[str, Any] = {"global_config": dict(DUCKDB_LOAD_CONFIG),
                                   # past 2 s a query draws a progress bar on stdout (into
                                   # `close-sync verify --json`'s document)
                                   "local_config": {"enable_progress_bar_print": False}}
    if path is not None:
        credentials["database"] = str(path)
    return dlt.destinations.duckdb(credentials=credentials, supports_transactions=True)


# dlt 1.31 leaves `supports_transactions` unset for DuckDB and PostgreSQL, so a SQL job runs in a
# transaction only when its text holds CREATE, ALTER or DROP (as `date_created` does). A child
# table's replace (DELETE all, then INSERT from staging) ran in autocommit: a reader could see it
# empty, and a run killed between the two left it empty (test_atomic_replace, about 1 run in 10).
TRANSACTIONAL = ("duckdb", "postgres")


def destination_for(name: Any) -> Any:
    """DuckDB by default; any other dlt destination by name or factory. DuckDB and PostgreSQL
    run every SQL job of a load in a transaction."""
    if name is None or name in ("", "duckdb"):
        return duckdb_destination()
    destination = Destination.from_reference(name) if isinstance(name, str) else name
    destination = postgres_copy.with_copy(destination)  # COPY, "" kept apart from NULL
    if isinstance(destination, Destination) and \
            destination.destination_type.rsplit(".", 1)[-1] in TRANSACTIONAL:
        destination.caps_params["supports_transactions"] = True
    return destination


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
    # COPY of the CSV files pyarrow writes, by our job (`run/postgres_copy.py`): dlt's keeps
    # no "" apart from NULL, and insert_values makes SQL text of every row in Python (bench/).
    # Not parquet: dlt loads it through ADBC (a driver we do not install), into json columns.
    "postgres": "csv",
    # BigQuery's batch loads of JSON-typed columns accept CSV, Avro or JSON, not parquet, and
    # our multi-value custom fields and lists are JSON columns.
    "bigquery": "jsonl",
}


def loader_file_format(pipeline: dlt.Pipeline) -> str | None:
    if pipeline.destination is None:
        return None
    kind = pipeline.destination.destination_type.rsplit(".", 1)[-1]
    if kind == "postgres" and not postgres_copy.copies(pipeline.destination):
        return "insert_values"  # dlt's own CSV job would load "" as NULL
    return LOADER_FILE_FORMATS.get(kind)


def make_pipeline(
    destination: Any = None,
    dataset_name: str = DATASET_NAME,
    pipeline_name: str = PIPELINE_NAME,
    pipelines_dir: str | None = None,
    progress: bool = True,
) -> dlt.Pipeline:
    """`progress`: a stage line per step (`collector.py`), dlt's counters on a live display."""
    kwargs: dict[str, Any] = {"progress": RunCollector()} if progress else {}
    with postgres_copy.quiet_type_change():
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
    watermark among it, is already the pipeline's): it is finished first (`run/resume.py`),
    then this run reads on. dlt alone would load it and skip this run's data.

    The source made the working directory's state its destination's when it was created
    (`run/destination.py`); dlt's own restore is skipped: finding the dataset gone, it would
    delete the whole working directory, the run lock and a kept export among it.
    """
    copy_csv = loader_file_format(pipeline) == "csv"
    with run_lock(pipeline), _without_dlt_restore(pipeline):
        resume.remove_leftovers(pipeline)
        marker = resume.first_load_marker(pipeline)
        settling = history_settle.Settling.begin(pipeline)
        if pipeline.has_pending_data:
            settling.everything()  # what the earlier run loaded was never settled
            progress_log.warning("an earlier run stopped before its data was loaded; loading "
                                 "it first")
            with run_environment(marker.exists(), load_memory.load_workers(pipeline),
                                 copy_csv):
                pipeline.normalize()
                for load_id in pipeline.list_normalized_load_packages():
                    resume.restart(pipeline, load_id, first_load=marker.exists())
                    if resume.is_refresh(pipeline, load_id):
                        staging.drop(pipeline)
                load_memory.with_room(pipeline, lambda: pipeline.load(),
                                      first_load=marker.exists())
            marker.unlink(missing_ok=True)
            _discard_loaded_export(pipeline)
        first_load = not _dataset_exists(pipeline)
        with run_environment(first_load, load_memory.load_workers(pipeline), copy_csv):
            if first_load:  # the package is finished as it was begun, should this run die
                marker.touch()
            else:
                marker.unlink(missing_ok=True)
                if full_refresh:
                    staging.drop(pipeline)
                    history_kept.on_refresh(pipeline)
            info = load_memory.with_room(pipeline, lambda: pipeline.run(
                source,
                loader_file_format=loader_file_format(pipeline),  # type: ignore[arg-type]
                refresh="drop_resources" if full_refresh else None,
            ), first_load)
        settle_started = time.monotonic()
        settling.loaded(info)
        marker.unlink(missing_ok=True)
        _discard_loaded_export(pipeline)
        staging.drop_after_load(pipeline)
        postgres_keys.ensure(pipeline)
        settling.settle(SOURCE_NAME)
        stage_history.ensure(pipeline)
        comments.ensure(pipeline)  # last: stage tables rebuilt above lose their columns' comments
        seconds = time.monotonic() - settle_started
        stage("settle", f"done in {seconds:.1f}s", seconds=round(seconds, 3))
        return info


@contextmanager
def _without_dlt_restore(pipeline: dlt.Pipeline) -> Iterator[None]:
    """dlt restores the state once per pipeline object, in its first `run`; marked as done
    (its `restore_from_destination` setting would also stop it saving the state there)."""
    pipeline._state_restored = True  # noqa: SLF001 - dlt's own flag for "synced already"
    yield


def _discard_loaded_export(pipeline: dlt.Pipeline) -> None:
    """The export file a committed full load used is kept no longer (`kept_export.py`)."""
    source_state = pipeline.state.get("sources", {}).get(SOURCE_NAME, {})
    kept_export.discard_loaded(Path(pipeline.working_dir) / kept_export.DIRECTORY,
                               st.loaded_export_id(source_state))


def table_counts(pipeline: dlt.Pipeline, tables: Iterable[str] | None = None) -> dict[str, int]:
    """Row count of every data table the pipeline's schema knows (or of `tables`), children
    included."""
    if tables is None:
        tables = pipeline.default_schema.data_table_names() \
            if pipeline.default_schema_name is not None else []
    tables = sorted(tables)
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
