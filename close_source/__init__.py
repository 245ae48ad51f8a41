"""close_source: a dlt source for Close CRM, generated from one declarative catalog.

    import dlt
    from close_source import close_source

    pipeline = dlt.pipeline("close_crm", destination="duckdb", dataset_name="close")
    # the key from SOURCES__CLOSE__API_KEY or .dlt/secrets.toml
    pipeline.run(close_source(), loader_file_format="parquet")
    pipeline.run(close_source().with_resources("leads", "calls"), loader_file_format="parquet")

Data flows one way: catalog -> client -> plan -> read path (export | lists | Event Log) ->
shaping -> Arrow -> dlt. Every table is a resource named after it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from close_source import state as st
from close_source.catalog import BY_TABLE, CATALOG, unknown_tables
from close_source.client import DEFAULT_BASE_URL, CloseClient
from close_source.custom_columns import NAMING_MODES, STATE_KEY, CustomColumns
from close_source.custom_fields import fetch_definitions
from close_source.errors import ConfigError
from close_source.export import exported_tables
from close_source.incremental import event_log_resources
from close_source.lists import ReadContext
from close_source.plan import Plan, make_plan, read_in_full
from close_source.renames import read_references, renamed_since
from close_source.resources import ExportOptions, export_resources, list_resource
from close_source.warehouse import Warehouse

__all__ = ["close_source", "DEFAULT_BASE_URL"]

FULL_LOAD_METHODS = ("export", "lists")
# auto: incremental where each table's watermark allows it; full: a full load (soft-deleted
# rows kept); refresh: a full load from scratch (`--full-refresh`: the tables are dropped first)
SYNC_MODES = ("auto", "full", "refresh")
DELETE_MODES = ("hard", "soft")
ADMIN_ROLE = "admin"  # the predefined role's id [003:3657]; its name is "Admin" [003:4189]
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
    """Every Close object type (or the `tables` named), each a resource named after its table.

    Each table continues from its own Event Log watermark when it has one (younger than 29
    days); otherwise it is read in full: leads, contacts, opportunities and activities through
    one Export API job (`full_load="lists"` pages their list endpoints instead; `export_file`
    loads a file kept by a backup), everything else from list endpoints. The `GET /me/`
    preflight fails fast, before any extraction, on a bad key or an unreachable API.
    Resources are parallelized: Close rate-limits per endpoint group, so independent endpoints
    are read at the same time (`[extract] workers`).
    """
    selected = list(tables or [entry.table for entry in CATALOG])
    _check_settings(selected, full_load, backup_dir, sync_mode, deletes, custom_field_columns)
    client = CloseClient(api_key, base_url, timeout=timeout, max_attempts=max_attempts)
    me = client.get("me/")
    warehouse = Warehouse.of_current_pipeline()
    source_state = dlt.current.source_state()
    st.migrate(source_state, warehouse.tables())
    ctx = ReadContext(client=client, max_skip=max_skip, me=me, started_at=client.server_time,
                      soft_deletes=deletes == "soft",
                      keep_deleted=deletes == "soft" and sync_mode != "refresh",
                      warehouse=warehouse)
    ctx.custom = CustomColumns(
        custom_field_columns,  # type: ignore[arg-type]
        source_state.get(STATE_KEY),
        lambda: fetch_definitions(client, ctx.max_skip),
    )
    plan = make_plan(selected, st.watermarks(source_state),
                     now=ctx.started_at or datetime.now(UTC), full_read=sync_mode != "auto"
                     or bool(export_file or backup_dir), full_load=full_load,
                     exported=exported_tables(), stale=ctx.custom.stale_tables)
    ctx.references = read_references(ctx, selected, also=("roles",))
    _follow_renames(ctx, plan, source_state)
    _say_if_not_admin(ctx)

    resources: list[DltResource] = []
    if from_export := plan.reading("export"):
        options = ExportOptions(fallback=export_fallback and not export_file,
                                timeout=export_timeout, poll_initial=export_poll_interval,
                                backup_dir=backup_dir, export_file=export_file)
        resources += export_resources(ctx, from_export, options)
    if plan.reading("events"):
        resources += event_log_resources(ctx, plan)
    resources += [list_resource(ctx, BY_TABLE[table]) for table in plan.reading("lists")]
    return resources


def _check_settings(selected: list[str], full_load: str, backup_dir: str | None,
                    sync_mode: str, deletes: str, custom_field_columns: str) -> None:
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


def _follow_renames(ctx: ReadContext, plan: Plan, source_state: Any) -> None:
    """Per table read from the Event Log: the users, statuses, ... renamed since it last
    synced. Their rows are read again by id, or the table in full when that costs fewer
    requests (one request per row in the worst case, when Close ignores `id__in`)."""
    assert ctx.references is not None
    for table in plan.reading("events"):
        entry = BY_TABLE.get(table)
        if entry is None or not entry.copies:
            continue
        renamed = renamed_since(st.names_seen(source_state, table),
                                ctx.references.digests_for(table))
        if not renamed:
            continue
        rows = sum(ctx.warehouse.count(table, copy.key, sorted(renamed[copy.source]))
                   for copy in entry.copies if copy.source in renamed)
        total = ctx.warehouse.count(table)
        if rows > 100 and rows > total / entry.page_size:
            read_in_full(plan, table, f"{rows} rows name renamed objects")
        else:
            plan.renames[table] = renamed


def _say_if_not_admin(ctx: ReadContext) -> None:
    """Events older than an hour carry no data for non-admin keys [003:8106]: their objects
    are read by id, which costs requests. Said once, when the key's role is known."""
    assert ctx.references is not None
    roles = {str(role.get("id")): role for role in ctx.references.objects.get("roles", [])}
    memberships = [m for m in ctx.me.get("memberships") or [] if isinstance(m, dict)]
    role_ids = {str(m.get("role_id")) for m in memberships if m.get("role_id")}
    if not role_ids or not all(r in roles or r == ADMIN_ROLE for r in role_ids):
        return  # not known
    if any(r == ADMIN_ROLE or roles[r].get("name") == "Admin" for r in role_ids):
        return
    log.info("this API key is not an admin's: Event Log entries older than an hour carry no "
             "data for it, so those objects are read by id (more requests); an admin's key "
             "syncs with fewer")
