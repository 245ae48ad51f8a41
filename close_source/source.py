"""The dlt source: settings checked, the run planned per table, one resource per table.

Each table continues from its own Event Log watermark or is read in full; `__init__.py` shows
how to run it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import dlt
from dlt.extract.resource import DltResource

from close_source.api.client import DEFAULT_BASE_URL, CloseClient
from close_source.catalog import BY_TABLE, history_table
from close_source.pipeline import SOURCE_NAME
from close_source.read.context import ReadContext
from close_source.read.export import exported_tables
from close_source.read.privacy import Privacy, pii_hasher
from close_source.read.references import References, read_references_soon
from close_source.read.window_store import MEMORY_ROWS
from close_source.run import state as st
from close_source.run.context import RunContext, pipeline_directory
from close_source.run.destination import check_destination
from close_source.run.full_load import ExportOptions, export_resources, list_resource
from close_source.run.history import field_changes_table
from close_source.run.incremental import event_log_resources
from close_source.run.origin import from_backup, from_close
from close_source.run.plan import describe, follow_renames, make_plan
from close_source.run.privacy_changes import check_privacy
from close_source.settings import Settings
from close_source.shape.custom_columns import CustomColumns
from close_source.stages import planned

# the predefined role's id (Close API: Memberships); its name is "Admin" (Close API: Roles)
ADMIN_ROLE = "admin"


log = logging.getLogger(__name__)


@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME)
def close_source(
    api_key: str | None = dlt.secrets.value,
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
    rate_limit_share: float = 1.0,
    custom_field_columns: str = "name",
    sync_mode: str = "auto",
    deletes: str = "hard",
    window_memory_rows: int = MEMORY_ROWS,
    restore_from: str | None = None,
    field_changes: bool = True,
    history: Sequence[str] | None = None,
    heal: Mapping[str, Sequence[str] | None] | None = None,
    schema_contract: str | dict[str, str] | None = None,
    exclude_columns: Mapping[str, Sequence[str]] | str | None = None,
    pii: str = "none",
    pii_key: str | None = dlt.secrets.value,
) -> list[DltResource]:
    """Every Close object type (or the `tables` named), each a resource named after its table.

    Each table continues from its own Event Log watermark when it has one (younger than 29
    days); otherwise it is read in full: leads, contacts, opportunities and activities through
    one Export API job (`full_load="lists"` pages their list endpoints instead; `export_file`
    loads a file kept by a backup), everything else from list endpoints. The `GET /me/`
    preflight fails fast, before any extraction, on a bad key or an unreachable API.
    `backup_dir` keeps what the full load reads in a backup; `restore_from` loads every table
    of one, offline: no key, no request to Close.
    `heal` (`close-sync verify --heal`): per table among those synced, the ids whose rows
    differ from Close, read again by id after the table's Event Log window (a 404 deletes the
    row), or None: the table is read in full (as is a table read in full anyway).
    `schema_contract`: dlt's, for every table ("freeze", or {"columns": "freeze"}, ...).
    `exclude_columns` ({"contacts": ["emails"]}) keeps fields out of everything the run writes;
    `pii="hash"` replaces email addresses and phone numbers with HMAC-SHA256 hashes keyed with
    `pii_key` (docs/configuration.md, "Personal data").
    Resources are parallelized: Close rate-limits per endpoint group, so independent endpoints
    are read at the same time (`[extract] workers`); `rate_limit_share` below 1 leaves the rest
    of each group's limit to the organisation's other integrations.
    """
    settings = Settings.checked(
        tables, base_url=base_url, full_load=full_load, export_fallback=export_fallback,
        export_timeout=export_timeout, export_poll_interval=export_poll_interval,
        backup_dir=backup_dir, export_file=export_file, max_skip=max_skip, timeout=timeout,
        max_attempts=max_attempts, rate_limit_share=rate_limit_share,
        custom_field_columns=custom_field_columns,
        sync_mode=sync_mode, deletes=deletes, window_memory_rows=window_memory_rows,
        restore_from=restore_from, field_changes=field_changes, history=history, heal=heal,
        schema_contract=schema_contract, exclude_columns=exclude_columns, pii=pii)
    hasher = pii_hasher(settings.pii, pii_key)
    if settings.restore_from:
        origin = from_backup(settings, tables)
    else:
        client = CloseClient(api_key or "", settings.base_url, timeout=settings.timeout,
                             max_attempts=settings.max_attempts,
                             rate_limit_share=settings.rate_limit_share)
        origin = from_close(client, settings)
    settings, started_at = origin.settings, origin.started_at
    privacy = Privacy(settings.exclude_columns, hasher, origin.definitions)
    read = replace(origin.read, privacy=privacy)
    if origin.backup is not None:
        origin.backup.privacy = privacy
    references_read = read_references_soon(read, list(settings.tables), also=("roles",))
    # the state continued from is the destination's own
    destination = check_destination(settings.tables, settings.history, privacy.dropped_tables)
    warehouse = destination.warehouse
    source_state = dlt.current.source_state()
    st.migrate(source_state, warehouse.tables())
    check_privacy(source_state, warehouse, privacy, origin.made_with)
    missing = dict(destination.missing)
    for table in settings.history:  # versions begin with a full read of their table
        if history_table(table) not in warehouse.tables():
            missing.setdefault(table, f"{history_table(table)} is not in the destination: its "
                                      f"versions begin with a full read")
    custom = CustomColumns(settings.custom_field_columns,
                           st.custom_columns(source_state, settings.custom_field_columns),
                           origin.definitions, privacy.keeps)
    plan = make_plan(settings.tables, st.watermarks(source_state),
                     now=started_at, full_read=settings.full_read,
                     full_load=settings.full_load, exported=exported_tables(),
                     stale=custom.stale_tables, missing=missing, heal=settings.heal)
    references = references_read.result()
    follow_renames(plan, references, warehouse, source_state)
    _say_if_not_admin(read, references)
    planned(plan.tables, describe(plan))
    ctx = RunContext(read=read, warehouse=warehouse, custom=custom, references=references,
                     started_at=started_at, settings=settings, backup=origin.backup,
                     planned_for=str(pipeline_directory() or "") or None,
                     run_id=destination.run.this, parent_run_id=destination.run.parent,
                     events_from=origin.events_from)

    resources: list[DltResource] = []
    if from_export := plan.reading("export"):
        options = ExportOptions(fallback=settings.export_fallback and not settings.export_file,
                                timeout=settings.export_timeout,
                                poll_initial=settings.export_poll_interval,
                                backup_dir=settings.backup_dir, export_file=settings.export_file)
        resources += export_resources(ctx, from_export, options)
    if plan.reading("events"):
        resources += event_log_resources(ctx, plan)
    elif settings.field_changes:
        resources.append(field_changes_table(ctx))
    resources += [list_resource(ctx, BY_TABLE[table]) for table in plan.reading("lists")]
    if settings.schema_contract is not None:  # each table's, its child tables inherit it
        for resource in resources:
            resource.apply_hints(schema_contract=settings.schema_contract)  # type: ignore[arg-type]
    return resources


def _say_if_not_admin(read: ReadContext, references: References) -> None:
    """Events older than an hour carry no data for non-admin keys (Close API: Event Log): their
    objects are read by id, which costs requests. Said once, when the key's role is known."""
    roles = {str(role.get("id")): role for role in references.objects.get("roles", [])}
    memberships = [m for m in read.me.get("memberships") or [] if isinstance(m, dict)]
    role_ids = {str(m.get("role_id")) for m in memberships if m.get("role_id")}
    if not role_ids or not all(r in roles or r == ADMIN_ROLE for r in role_ids):
        return  # not known
    if any(r == ADMIN_ROLE or roles[r].get("name") == "Admin" for r in role_ids):
        return
    log.info("this API key is not an admin's: Event Log entries older than an hour carry no "
             "data for it, so those objects are read by id (more requests); an admin's key "
             "syncs with fewer")
