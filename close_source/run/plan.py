"""What a run does with each selected table: a full read (the export or its list endpoint) or
the Event Log from the table's own watermark; decided once, before anything is read.

- Tables without usable events (users, statuses, templates, ...) are read in full every run.
- A table read from the Event Log before, within the last 29 days, continues from its own
  watermark; any other (first selected, paused too long, gone from the destination,
  `--full-refresh`, a backup or restore) is read in full by itself, through the export when it
  is in it.
- A custom field change that alters stored values without events (a field deleted, retyped,
  its choices renamed) re-reads the tables of that object type in full.
- A rename of an object many rows name (a user) re-reads those rows; when there are more of
  them than a full read of the table costs in requests, the table is read in full instead.
- `heal` (`close-sync verify --heal`): the ids of a table that continues from its watermark
  are read again by id after its window (`read/change_set.py`); a table healed whole (None)
  is read in full, as is a table read in full anyway (every run, first load, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from close_source.catalog import BY_TABLE, CATALOG, OPTIONAL_TABLES
from close_source.read.references import References, renamed_since
from close_source.read.warehouse import Warehouse
from close_source.run import state as st
from close_source.run.state import Watermark

log = logging.getLogger(__name__)

How = Literal["export", "lists", "events"]
HEALING = "verify --heal"  # why a table healed whole is read in full


@dataclass(frozen=True)
class TablePlan:
    table: str
    how: How
    since: datetime | None = None  # events: apply what was updated at or after this
    reason: str = ""


@dataclass
class Plan:
    """The run's decision per table, and what the Event Log part of it needs."""

    tables: dict[str, TablePlan] = field(default_factory=dict)
    # no-event renames to follow now: table -> {source table: ids renamed since it last synced}
    renames: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    # objects to read again by id after the window, whatever its events say: table -> ids
    reread: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def reading(self, how: How) -> list[str]:
        return [t for t, p in self.tables.items() if p.how == how]

    @property
    def window_start(self) -> datetime | None:
        """Where the one Event Log read of the run starts: the oldest table window."""
        starts = [p.since for p in self.tables.values() if p.how == "events" and p.since]
        return min(starts) if starts else None


def incremental_tables() -> list[str]:
    """Tables kept current from the Event Log (or by date) rather than read in full."""
    return [entry.table for entry in CATALOG if entry.incremental != "every_run"]


def make_plan(selected: Iterable[str], marks: Mapping[str, Watermark], *, now: datetime,
              full_read: bool, full_load: str, exported: set[str], stale: set[str],
              missing: Mapping[str, str] | None = None,
              heal: Mapping[str, Sequence[str] | None] | None = None) -> Plan:
    """`full_read`: every table is read in full (`--full-refresh`, a backup or restore);
    `missing`: tables the destination lacks although their watermark says loaded -> why;
    `heal`: tables whose rows differ from Close -> the ids to read again, or None (all)."""
    missing, heal = missing or {}, heal or {}
    plan = Plan()
    for table in selected:
        if table in OPTIONAL_TABLES:
            mark = marks.get(table)
            plan.tables[table] = TablePlan(table, "events", mark.window_start if mark else None)
            continue
        entry = BY_TABLE[table]
        full = TablePlan(table, "export" if full_load == "export" and table in exported
                         else "lists")
        mark = marks.get(table)
        if entry.incremental == "every_run":
            plan.tables[table] = _full(TablePlan(table, "lists"), HEALING) if table in heal \
                else TablePlan(table, "lists")
        elif full_read:
            plan.tables[table] = full
        elif mark is None:
            plan.tables[table] = _full(full, "first load of this table")
        elif table in missing:
            plan.tables[table] = _full(full, missing[table])
        elif mark.too_old(now):
            log.warning("%s was last synced from the Event Log up to %s, more than 29 days "
                        "ago: Close keeps 30 days of events, so it is reloaded in full",
                        table, mark.read_until.isoformat())
            plan.tables[table] = _full(full, "more than 29 days since its last sync")
        elif table in stale:
            log.info("%s: custom field definitions changed how stored values look; re-reading "
                     "the table in full", table)
            plan.tables[table] = TablePlan(table, "lists", reason="custom fields changed")
        elif table in heal and heal[table] is None:
            plan.tables[table] = _full(full, HEALING)
        else:
            plan.tables[table] = TablePlan(table, "events", mark.window_start)
            if ids := heal.get(table):
                plan.reread[table] = tuple(ids)
    start = plan.window_start
    for table, table_plan in plan.tables.items():  # the raw log from the run's own window
        if table_plan.how == "events" and table_plan.since is None:
            plan.tables[table] = TablePlan(table, "events", start or now)
    return plan


def describe(plan: Plan) -> str:
    """The plan in one line: how many tables are read which way, and why."""
    ways: dict[str, int] = {}
    for table_plan in plan.tables.values():
        if table_plan.how == "events":
            way = f"from the Event Log (window from {plan.window_start:%Y-%m-%d %H:%M:%S})" \
                if plan.window_start else "from the Event Log"
        else:
            reason = table_plan.reason or ("every run" if BY_TABLE.get(table_plan.table) and
                                           BY_TABLE[table_plan.table].incremental == "every_run"
                                           else "")
            way = f"read in full ({reason})" if reason else "read in full"
        ways[way] = ways.get(way, 0) + 1
    return f"{len(plan.tables)} tables: " + ", ".join(f"{n} {way}" for way, n in ways.items())


def _full(plan: TablePlan, reason: str) -> TablePlan:
    log.info("%s: %s", plan.table, reason if reason.startswith("not in the destination")
             else f"full read ({reason})")
    return TablePlan(plan.table, plan.how, reason=reason)


def read_in_full(plan: Plan, table: str, reason: str) -> None:
    """Replace an Event Log table's plan by a full read of its list endpoint."""
    log.info("%s: full read (%s)", table, reason)
    plan.tables[table] = TablePlan(table, "lists", reason=reason)
    plan.renames.pop(table, None)
    plan.reread.pop(table, None)


def follow_renames(plan: Plan, references: References, warehouse: Warehouse,
                   source_state: Mapping[str, Any]) -> None:
    """Per table read from the Event Log: the users, statuses, ... renamed since it last
    synced. Their rows are read again by id, or the table in full when that costs fewer
    requests (one request per row in the worst case, when Close ignores `id__in`)."""
    for table in plan.reading("events"):
        entry = BY_TABLE.get(table)
        if entry is None or not entry.copies:
            continue
        renamed = renamed_since(st.names_seen(source_state, table),
                                references.digests_for(table))
        if not renamed:
            continue
        rows = sum(warehouse.count(table, key, sorted(renamed[source]))
                   for key, source in {(copy.key, copy.source) for copy in entry.copies
                                       if copy.source in renamed})
        total = warehouse.count(table)
        if rows > 100 and rows > total / entry.page_size:
            read_in_full(plan, table, f"{rows} rows name renamed objects")
        else:
            plan.renames[table] = renamed
