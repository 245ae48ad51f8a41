"""`custom_field_changes`: what changed in the custom field definitions since the destination's
`custom_fields` was last written, recorded by each run that syncs `custom_fields`.

The rows come from the `custom_fields` resource, so they commit with that table and the source
state, and only when it is synced. What the destination held is read when the resource runs,
after a load an earlier run left unfinished was finished: that run's changes are not recorded
twice. A change the destination already records (the same field, kind and version of the
definition: `shape/definition_changes.py`) is not recorded again, and a load package loaded
again merges onto its own rows.

A restore records changes only into a dataset without `custom_fields` (every field `added`,
seen at the backup's time): into one that has them, it goes back in time, and the next run
records what changed in Close since the backup. `--full-refresh` keeps the changes, as it keeps
every history table (`run/history_kept.py`): they are what a reload cannot bring back.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.common.schema.typing import LOADS_TABLE_NAME
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from close_source.catalog import CUSTOM_FIELD_CHANGES_TABLE
from close_source.run import state as st
from close_source.run.context import RunContext
from close_source.run.postgres_copy import rows_file_format
from close_source.shape.arrow_tables import on_bigquery
from close_source.shape.definition_changes import (
    CHANGES,
    TEXT_COLUMNS,
    alters_meaning,
    compared,
    describe,
)
from close_source.shape.descriptions import described, table_hints
from close_source.stages import note

log = logging.getLogger("close_source.progress")

DEFINITIONS_TABLE = "custom_fields"
LOAD_ID = "_dlt_load_id"
SHOWN = 20  # changes `close-sync status` lists


def definition_changes(ctx: RunContext, rows: list[Mapping[str, Any]]) -> Iterator[object]:
    """The change rows from what the destination's `custom_fields` holds to `rows`, this run's;
    a warning for each change of what a column holds."""
    dropped = _dropped_by_this_load()
    # read as this run extracts: a refresh drops `custom_fields` only when its load begins
    before = ctx.warehouse.whole_table(DEFINITIONS_TABLE)
    if before and ctx.settings.restore_from:
        log.info("custom fields: a restore records no changes into a dataset that already "
                 "holds custom_fields; the next run records those made since the backup")
        return
    changes = compared(before, rows, seen_at=ctx.started_at or datetime.now(UTC),
                       no_version=f"after run {ctx.parent_run_id}", unread=ctx.custom.unread)
    recorded = set() if CUSTOM_FIELD_CHANGES_TABLE in dropped else \
        set(ctx.warehouse.all_ids(CUSTOM_FIELD_CHANGES_TABLE, key="change_id"))
    changes = [change for change in changes if change["change_id"] not in recorded]
    if not changes:
        return
    for change in changes:
        if alters_meaning(change):
            log.warning("%s", describe(change))
    counts = Counter(change["change"] for change in changes)
    note(log, "custom fields: %s, recorded in %s", ", ".join(
        f"{counts[kind]} {kind}" for kind in CHANGES if counts[kind]), CUSTOM_FIELD_CHANGES_TABLE)
    yield dlt.mark.with_hints(changes, _hints(), create_table_variant=True)


def _dropped_by_this_load() -> set[str]:
    """Tables the load of this run drops or empties first (`--full-refresh`): what they hold
    is gone when its rows arrive, so this run's definitions are a first sight."""
    try:
        package = dlt.current.load_package_state()["state"]
    except Exception:  # noqa: BLE001 - not extracting in a pipeline (unit tests)
        return set()
    return {table["name"] for key in ("dropped_tables", "truncated_tables")
            for table in package.get(key) or []}


def _hints() -> Any:
    columns: dict[str, Any] = {
        "change_id": {"name": "change_id", "data_type": "text", "nullable": False,
                      "primary_key": True},
        "seen_at": {"name": "seen_at", "data_type": "timestamp", "timezone": True},
        **{name: {"name": name, "data_type": "text"} for name in TEXT_COLUMNS}}
    return dlt.mark.make_hints(
        table_name=CUSTOM_FIELD_CHANGES_TABLE, primary_key="change_id",
        columns=described(CUSTOM_FIELD_CHANGES_TABLE, columns),
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        file_format=rows_file_format(),
        additional_table_hints=table_hints(CUSTOM_FIELD_CHANGES_TABLE, on_bigquery()))


def last_run_lines(pipeline: dlt.Pipeline, tables: Collection[str]) -> list[str]:
    """`close-sync status`: the changes the dataset's newest load recorded (the last run's);
    none when it recorded none."""
    if CUSTOM_FIELD_CHANGES_TABLE not in tables:
        return []
    with pipeline.sql_client() as client:
        load_id = client.escape_column_name(LOAD_ID)
        selected = ", ".join(client.escape_column_name(name)
                             for name in ("seen_at", *TEXT_COLUMNS))
        try:
            loads = client.make_qualified_table_name(LOADS_TABLE_NAME)
            (last,), = client.execute_sql(f"SELECT max(load_id) FROM {loads} "
                                          "WHERE status = 0 AND schema_name = %s", st.SOURCE)
            found = client.execute_sql(
                f"SELECT {selected} FROM "
                f"{client.make_qualified_table_name(CUSTOM_FIELD_CHANGES_TABLE)} "
                f"WHERE {load_id} = %s", last)
        except DatabaseUndefinedRelation:
            return []
    rows = [dict(zip(("seen_at", *TEXT_COLUMNS), row, strict=True)) for row in found or []]
    if not rows:
        return []
    rows.sort(key=lambda row: (row["object_type"], row["new_name"] or row["old_name"] or "",
                               CHANGES.index(row["change"])))
    lines = [f"\nCustom field changes the last run found (seen {rows[0]['seen_at']}, Close's "
             "clock):"]
    lines += [f"  {describe(row)}" for row in rows[:SHOWN]]
    if len(rows) > SHOWN:
        lines.append(f"  and {len(rows) - SHOWN} more: SELECT * FROM "
                     f"{pipeline.dataset_name}.{CUSTOM_FIELD_CHANGES_TABLE}")
    return lines
