"""dlt resources: one per table, named after it, fed by the run's shared reads; and what a
full read of a table records in the state when it is done."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from close_source.catalog import BY_TABLE, history_table, owned_tables
from close_source.errors import ConfigError
from close_source.read.change_set import FULL_READ
from close_source.run import state as st
from close_source.run.context import RunContext
from close_source.run.plan import incremental_tables
from close_source.running import running_pipeline

log = logging.getLogger(__name__)


def check_pipeline(ctx: RunContext) -> None:
    """The pipeline extracting is the one the source was planned with: a source reads the
    watermarks and the dataset of the pipeline active when it is created, and run by another
    it would apply the wrong windows to the wrong tables. Then the run's ids go into the state
    it commits (every resource begins here)."""
    running = running_pipeline()
    if running is None:  # not extracting in a pipeline (unit tests)
        return
    if ctx.run_id:
        st.save_run(dlt.current.source_state(), ctx.run_id, ctx.parent_run_id, ctx.started_at,
                    ctx.settings.history)
        st.save_privacy(dlt.current.source_state(), ctx.read.privacy.marker())
    if running.working_dir != ctx.planned_for:
        planned = Path(ctx.planned_for).name if ctx.planned_for else "none"
        raise ConfigError(
            f"close_source() was created while pipeline {planned!r} was active, but pipeline "
            f"{running.pipeline_name!r} runs it: create the source after the pipeline, or call "
            f"pipeline.activate() first")


def selected_among(tables: Iterable[str], reader: str) -> list[str]:
    """The tables whose resources the running source selected (all, outside a run, or when
    the shared read itself was selected)."""
    tables = list(tables)
    try:
        chosen = set(dlt.current.source().selected_resources)
    except Exception:  # noqa: BLE001 - not extracting inside a source: everything
        return tables
    if reader in chosen:
        return tables
    return [table for table in tables if table in chosen]


def table_resources(reader: DltResource, tables: Iterable[str]) -> list[DltResource]:
    """A transformer per table, passing on the reader's items that belong to it."""
    return [_table_resource(reader, table) for table in tables]


def _table_resource(reader: DltResource, table: str) -> DltResource:
    entry = BY_TABLE.get(table)
    owned = {*owned_tables(entry), *entry.written_with, history_table(table)} if entry \
        else {table}

    def pick(item: Any, meta: Any = None) -> Iterator[Any]:
        if _table_of(meta) in owned:
            yield item

    return dlt.transformer(pick, data_from=reader, name=table)


def _table_of(meta: Any) -> str | None:
    hints = getattr(meta, "hints", None)
    if isinstance(hints, dict):
        return hints.get("table_name")
    return getattr(meta, "table_name", None)


def finish_full_read(ctx: RunContext, tables: list[str], t0: datetime | None,
                     exact: bool = False) -> None:
    """After a full read: the Event Log tables continue from T0, their names and custom
    columns are those of now. Without a T0 (a restored file without its manifest) the tables
    are read in full again by the next run."""
    source_state = dlt.current.source_state()
    followed = [table for table in tables if table in incremental_tables()]
    if t0 is None:
        st.forget(source_state, followed)
    else:
        mark = st.Watermark.at(t0, exact, ctx.events_from)
        for table in followed:
            # the re-scan before T0 replays snapshots older than this read: they may name
            # anything by a name renamed since (read by id instead)
            st.save_renamed_at(source_state, table, {FULL_READ: t0}, mark.window_start)
        st.save_watermark(source_state, followed, mark)
        save_names(ctx, followed)
    st.save_custom_columns(source_state, ctx.custom.mode, ctx.custom.frozen(tables))


def save_names(ctx: RunContext, tables: Iterable[str]) -> None:
    """The names the tables' rows copy, as synced now (renames are found against them)."""
    if ctx.references is None:
        return
    source_state = dlt.current.source_state()
    for table in tables:
        if table in BY_TABLE and BY_TABLE[table].copies:
            st.save_names(source_state, table, ctx.references.digests_for(table))
