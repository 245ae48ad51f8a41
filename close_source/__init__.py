"""close_source: a dlt source for Close CRM, generated from one declarative catalog.

    from close_source import close_source
    pipeline.run(close_source())  # api_key from SOURCES__CLOSE__API_KEY or .dlt/secrets.toml

Data flows one way: catalog -> client -> read path (export | lists) -> shaping -> Arrow -> dlt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dlt
from dlt.extract.resource import DltResource

from close_source.catalog import BY_TABLE, CATALOG, unknown_tables
from close_source.client import DEFAULT_BASE_URL, CloseClient
from close_source.custom_columns import NAMING_MODES, STATE_KEY, CustomColumns
from close_source.custom_fields import fetch_definitions
from close_source.errors import ConfigError
from close_source.export import exported_tables
from close_source.incremental import (
    EVENTS_TABLE,
    Watermark,
    covers_every_event_table,
    incremental_resources,
)
from close_source.incremental import STATE_KEY as EVENTS_STATE_KEY
from close_source.lists import ReadContext
from close_source.resources import ExportOptions, export_resource, list_resource
from close_source.warehouse import Warehouse

__all__ = ["close_source", "DEFAULT_BASE_URL"]

FULL_LOAD_METHODS = ("export", "lists")
# auto: incremental when a watermark allows it; full: a full load (soft-deleted rows kept);
# refresh: a full load from scratch (`--full-refresh`: the tables are dropped first)
SYNC_MODES = ("auto", "full", "refresh")
DELETE_MODES = ("hard", "soft")
log = logging.getLogger(__name__)


@dlt.source(name="close", section="close")
def close_source(
    api_key: str = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    tables: Sequence[str] | None = None,
    full_load: str = "export",
    export_fallback: bool = True,
    export_timeout: float = 6 * 3600.0,
    export_poll_interval: float = 1.0,
    backup_dir: str | None = None,
    export_file: str | None = None,
    max_skip: int = 250_000,
    timeout: float = 60.0,
    max_attempts: int = 8,
    custom_field_columns: str = "name",
    sync_mode: str = "auto",
    deletes: str = "hard",
) -> list[DltResource]:
    """Every Close object type (or the `tables` named), merged on its primary key.

    A full load reads leads, contacts, opportunities and activities through one Export API job
    (`full_load="lists"` pages their list endpoints instead; `export_file` loads a file kept by
    a backup); everything else comes from list endpoints in the same run. The `GET /me/`
    preflight fails fast, before any extraction, on a bad key or an unreachable API. Resources
    are parallelized: Close rate-limits per endpoint group, so independent endpoints are read at
    the same time (`[extract] workers`).
    """
    selected = list(tables or [entry.table for entry in CATALOG])
    if unknown := unknown_tables(selected):
        known = ", ".join(entry.table for entry in CATALOG)
        raise ConfigError(f"unknown resource(s): {', '.join(unknown)}; known: {known}")
    if full_load not in FULL_LOAD_METHODS:
        raise ConfigError(f"full_load must be one of {FULL_LOAD_METHODS}, not {full_load!r}")
    if backup_dir and full_load != "export":
        raise ConfigError("a backup needs the export: full_load must be 'export'")
    if sync_mode not in SYNC_MODES:
        raise ConfigError(f"sync_mode must be one of {SYNC_MODES}, not {sync_mode!r}")
    if deletes not in DELETE_MODES:
        raise ConfigError(f"deletes must be one of {DELETE_MODES}, not {deletes!r}")
    if custom_field_columns not in NAMING_MODES:
        raise ConfigError(f"custom_field_columns must be one of {NAMING_MODES}, "
                          f"not {custom_field_columns!r}")

    client = CloseClient(api_key, base_url, timeout=timeout, max_attempts=max_attempts)
    me = client.get("me/")
    ctx = ReadContext(client=client, max_skip=max_skip, me=me, started_at=client.server_time,
                      soft_deletes=deletes == "soft",
                      keep_deleted=deletes == "soft" and sync_mode != "refresh",
                      warehouse=Warehouse.of_current_pipeline())
    ctx.custom = CustomColumns(
        custom_field_columns,  # type: ignore[arg-type]
        dlt.current.source_state().get(STATE_KEY),
        lambda: fetch_definitions(client, ctx.max_skip),
    )
    watermark = _incremental_watermark(ctx, selected, sync_mode, export_file or backup_dir)
    if watermark is not None:
        return incremental_resources(ctx, selected, watermark)
    if covers_every_event_table(selected) and not export_file:
        ctx.full_load_watermark = ctx.started_at
    selected = [t for t in selected if t != EVENTS_TABLE]  # raw events: incremental runs only
    from_export = [t for t in selected if t in exported_tables()] if full_load == "export" else []
    options = ExportOptions(fallback=export_fallback and not export_file, timeout=export_timeout,
                            poll_initial=export_poll_interval, backup_dir=backup_dir,
                            export_file=export_file)
    resources = [export_resource(ctx, from_export, options)] if from_export else []
    resources += [list_resource(ctx, BY_TABLE[t]) for t in selected if t not in from_export]
    return resources


def _incremental_watermark(ctx: ReadContext, selected: list[str], sync_mode: str,
                           export_wanted: str | None) -> Watermark | None:
    """Where to read the Event Log from, or None when this run must be a full load (asked
    for, a backup or restore, some tables only, no watermark yet, or one too old)."""
    if sync_mode != "auto" or export_wanted or not covers_every_event_table(selected):
        return None
    state = dlt.current.source_state()
    watermark = Watermark.from_state(state.get(EVENTS_STATE_KEY))
    if watermark is None:
        return None  # first run: a full load, which records its T0 as the watermark
    now = ctx.started_at or watermark.read_until
    if watermark.too_old(now):
        log.warning("the last incremental run read the Event Log up to %s, more than 29 days "
                    "ago: Close keeps 30 days of events, so this run is a full reload",
                    watermark.read_until.isoformat())
        return None
    return watermark
