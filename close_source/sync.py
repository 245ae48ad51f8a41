"""One sync, as every caller runs it: `close-sync run`, Dagster's assets, an Airflow task.

    from close_source.pipeline import make_pipeline
    from close_source.sync import sync

    sync(make_pipeline())                      # every table; the key from dlt's config
    sync(make_pipeline(), tables=["leads", "calls"])

What a bare `pipeline.run(close_source())` does not: the run lock is taken before the source is
created (creating it reads the pipeline's state and the warehouse to plan each table), a load an
earlier run left unfinished is finished first, replaces are atomic, and each table continues from
its own Event Log watermark (`pipeline.run_sync`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo

from close_source.pipeline import run_sync
from close_source.run.lock import run_lock
from close_source.source import close_source
from close_source.summary import summarised


def sync(pipeline: dlt.Pipeline, tables: Sequence[str] | None = None, full_refresh: bool = False,
         command: str = "run", **source_args: Any) -> LoadInfo:
    """Sync `tables` (every table when None) into `pipeline`; `full_refresh` drops them and loads
    them again. `source_args` are `close_source`'s (`api_key`, `full_load`, ...); what is left
    out comes from dlt's config (`[sources.close]`, `SOURCES__CLOSE__*`), as for `close-sync`.
    The run's summary line (logger `close_source.summary`) names it `command`."""
    pipeline.activate()  # the source plans with the active pipeline's state and dataset
    if tables:
        source_args["tables"] = list(tables)
    if full_refresh:
        source_args.setdefault("sync_mode", "refresh")
    # the source's creation inside: its preflight and plan are the run's requests too
    with summarised(pipeline, command), run_lock(pipeline):
        return run_sync(pipeline, close_source(**source_args), full_refresh=full_refresh)


def rows_loaded(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows the pipeline's last run wrote, per data table (children and history included)."""
    trace = pipeline.last_trace
    counts = trace.last_normalize_info.row_counts if trace and trace.last_normalize_info else {}
    return {table: count for table, count in counts.items() if not table.startswith("_dlt")}
