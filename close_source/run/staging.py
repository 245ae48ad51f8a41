"""The staging dataset (`<dataset>_staging`): dlt's scratch space during a load, not left
beside the real tables for readers to find.

dlt loads merges and `insert-from-staging` replaces into staging tables and, once a load is
complete, empties them (`truncate_staging_dataset`), but keeps them: 42 empty tables in a
`close_staging` schema. After a run whose every load package was loaded it is dropped; the
next load that needs it has dlt create it again (its tables, its `_dlt_version`), as on the
first run. A package not loaded in full keeps it: finishing that load (`resume.py`) reads the
rows its jobs staged.
"""

from __future__ import annotations

import logging

import dlt
from dlt.common.destination.exceptions import SqlClientNotAvailable

log = logging.getLogger("close_source.progress")

# where dropping it is tested; on BigQuery, a dataset and ~40 tables made again on every run
# would be ~40 metadata operations per run against its rate limits, untested
DROPPED_AFTER_LOAD = ("duckdb", "postgres")


def drop(pipeline: dlt.Pipeline) -> None:
    """Drop the staging dataset if it exists. Before a refresh it must go: dlt drops the
    refreshed tables in staging too, then deletes the schema's rows from the staging
    dataset's `_dlt_version`, which it had not created there (DuckDB: "Table with name
    _dlt_version does not exist"; every `--full-refresh` after a first load failed, and so
    did every run after it)."""
    try:
        sql_client = pipeline.sql_client()
    except SqlClientNotAvailable:
        return  # a destination without SQL has no staging dataset
    with sql_client as client, client.with_staging_dataset():
        if client.has_dataset():
            client.drop_dataset()


def drop_after_load(pipeline: dlt.Pipeline) -> None:
    """After a successful run: nothing is left to load, so nothing needs the staging tables."""
    destination = pipeline.destination
    if destination is None or pipeline.has_pending_data:
        return
    if destination.destination_type.rsplit(".", 1)[-1] in DROPPED_AFTER_LOAD:
        drop(pipeline)
