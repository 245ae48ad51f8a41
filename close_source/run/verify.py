"""`close-sync verify`: each table compared with Close, cheaply, read only.

- `counts`: Close's own total where its list gives one (leads, opportunities: one request
  each) against the warehouse's rows; tables read in full every run are small and are compared
  key by key (a few requests); the others are reported as not counted, never guessed.
- `ids`: every object's key and `date_updated`, read through the sync's read paths with the
  narrowest `_fields`, compared with the warehouse's rows in a scratch DuckDB file
  (`verify_compare.py`): memory does not grow with the table.

What Close changed after the last run is no drift: the destination's state says how far each
table got (its Event Log watermark, or the last run's time for tables read every run), and the
Event Log since then says which objects were created, changed, deleted or merged. Those are
reported apart, as changed since the last run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
from dlt.common.configuration import with_config

from close_source.api.client import DEFAULT_BASE_URL, CloseClient
from close_source.catalog import BY_TABLE, CATALOG, Entry
from close_source.errors import AccessDenied, ConfigError
from close_source.progress import Progress
from close_source.read.change_set import route
from close_source.read.close_keys import (
    TOTALS,
    CloseKey,
    close_keys,
    close_total,
    definition_key,
)
from close_source.read.context import ReadContext
from close_source.read.custom_fields import OBJECT_TYPES
from close_source.read.event_log import Event, read_window
from close_source.read.warehouse import Stored, Warehouse
from close_source.records import DELETED_AT
from close_source.run import state as st
from close_source.run.destination import read_destination
from close_source.run.verify_compare import HEAL_BY_ID_MAX, KINDS, Comparison, Scratch
from close_source.settings import SECTION, check_setting

log = logging.getLogger(__name__)

LEVELS = ("counts", "ids")
EXACT, DIFFERS, CHANGED, NOT_COUNTED, UNREADABLE = (
    "exact", "differs", "changed since the last run", "not counted", "not readable")
# rows that stand for an object Close has: soft-deleted rows and deleted definitions do not
LIVE = {DELETED_AT: "null", "is_deleted": "not_true"}


@dataclass
class TableResult:
    table: str
    compared: str  # "ids", "count", or "" (not counted)
    warehouse_rows: int
    close_objects: int | None
    drift: dict[str, int | None]
    since_last_run: int
    examples: dict[str, list[str]] = field(default_factory=dict)
    # ids to read again when healing; None: the table is read again in full
    to_heal: list[str] | None = None
    unreadable: str = ""  # why this key may not read the table (the sync skips it too)

    @property
    def verdict(self) -> str:
        if self.unreadable:
            return UNREADABLE
        if not self.compared:
            return NOT_COUNTED
        if any(self.drift.values()):
            return DIFFERS
        return CHANGED if self.since_last_run else EXACT


@dataclass
class Report:
    level: str
    dataset: str
    destination: str
    tables: list[TableResult]
    close_time: datetime  # Close's clock when verify began
    read_until: datetime | None  # how far the last run read Close (None: never synced)
    max_age: timedelta | None
    requests: int = 0
    seconds: float = 0.0
    healed: dict[str, str] = field(default_factory=dict)
    # a run stopped before loading what it read: the next run loads it first
    pending: bool = False

    @property
    def age(self) -> timedelta | None:
        return None if self.read_until is None else self.close_time - self.read_until

    @property
    def too_old(self) -> bool:
        if self.max_age is None:
            return False
        return self.age is None or self.age > self.max_age

    @property
    def differing(self) -> list[TableResult]:
        return [result for result in self.tables if result.verdict == DIFFERS]

    @property
    def exit_code(self) -> int:
        return 1 if self.differing or self.too_old else 0


@with_config(sections=SECTION)
def close_client(api_key: str = dlt.secrets.value, base_url: str = DEFAULT_BASE_URL,
                 timeout: float = 60.0, max_attempts: int = 8,
                 rate_limit_share: float = 1.0) -> CloseClient:
    """A client configured as the source's (`[sources.close]`, `SOURCES__CLOSE__*`)."""
    for name, value in (("timeout", timeout), ("max_attempts", max_attempts),
                        ("rate_limit_share", rate_limit_share)):
        check_setting(name, value)
    return CloseClient(api_key, base_url, timeout=float(timeout), max_attempts=int(max_attempts),
                       rate_limit_share=float(rate_limit_share))


@with_config(sections=SECTION)
def configured_max_skip(max_skip: int = 250_000) -> int:
    return int(max_skip)


def verify(pipeline: dlt.Pipeline, client: CloseClient, level: str,
           tables: Sequence[str] = (), max_age: timedelta | None = None,
           destination: str = "") -> Report:
    """Every table (those the destination holds or its state claims, or `tables`) compared
    with Close. The caller holds the run lock."""
    started = time.monotonic()
    sent = client.requests_sent
    stored = read_destination(pipeline)
    state = stored.source_state(st.SOURCE) or {}
    st.migrate(state, list(stored.tables))
    warehouse = Warehouse.of_pipeline(pipeline, stored)
    chosen = list(tables) or default_tables(state, stored)
    read = ReadContext(client=client, max_skip=configured_max_skip(), me=client.get("me/"))
    sinces = {table: since_of(state, table) for table in chosen}
    by_keys = [table for table in chosen
               if level == "ids" or BY_TABLE[table].incremental == "every_run"]
    # the Event Log of the tables compared (where Close refuses a date-only window, it is
    # read per object type and action: a few requests per type)
    events = EventsSince.read(client, {table: sinces[table] for table in chosen
                                       if table in by_keys or table in TOTALS})
    close_time = client.server_time or datetime.now(UTC)
    results = []
    with Scratch(pipeline.working_dir) as scratch:
        for table in chosen:
            entry = BY_TABLE[table]
            try:
                if table in by_keys:
                    results.append(_by_keys(read, entry, warehouse, scratch, sinces[table],
                                            events))
                else:
                    results.append(_by_count(read, entry, warehouse, events))
            except AccessDenied as denied:  # as the sync, which skips it, saying so
                log.warning("%s: this API key may not read /%s (%s)", table,
                            entry.path.strip("/"), denied.status)
                results.append(TableResult(table, "", warehouse.count(table, live=LIVE), None,
                                           dict.fromkeys(KINDS), 0,
                                           unreadable=f"{denied.status} from Close"))
    marks = [mark.read_until for table in chosen
             if (mark := st.watermark(state, table)) is not None]
    last_run = st.run_close_time(state)
    read_until = min(marks) if marks else (datetime.fromisoformat(last_run) if last_run else None)
    return Report(level, pipeline.dataset_name, destination, results, close_time, read_until,
                  max_age, client.requests_sent - sent, time.monotonic() - started,
                  pending=pipeline.has_pending_data)


def default_tables(state: Mapping[str, Any], stored: Stored) -> list[str]:
    """The catalog tables the destination holds or its state says were loaded; every table
    when it holds none (nothing loaded is no proof of anything: every table then differs)."""
    claimed = set(st.watermarks(state))
    held = [entry.table for entry in CATALOG
            if entry.table in stored.tables or entry.table in claimed]
    return held or [entry.table for entry in CATALOG]


def since_of(state: Mapping[str, Any], table: str) -> datetime | None:
    """After when Close's changes may not be in the table yet: its watermark (the newest event
    the last run applied; the next run re-reads 5 minutes before it, for events that became
    visible late: those few are reported as drift, rather than drift hidden by the overlap),
    or, for a table read in full every run, when the last run began."""
    mark = st.watermark(state, table)
    if mark is not None:
        return mark.newest_event
    last_run = st.run_close_time(state)
    if not last_run:
        return None
    # Close's time was the later of its `Date` header and its newest event: objects are
    # dated on the events' clock, which may run behind the header
    began = datetime.fromisoformat(last_run)
    applied = [mark.newest_event for mark in st.watermarks(state).values()]
    return min(began, max(applied)) if applied else began


@dataclass
class EventsSince:
    """Per table, the objects the Event Log says changed after the table's `since`."""

    touched: dict[str, set[str]] = field(default_factory=dict)
    created: dict[str, set[str]] = field(default_factory=dict)
    deleted: dict[str, set[str]] = field(default_factory=dict)
    gone_leads: dict[str, datetime] = field(default_factory=dict)  # deleted or merged away

    @classmethod
    def read(cls, client: CloseClient, sinces: Mapping[str, datetime | None]) -> EventsSince:
        found = cls()
        starts = [since for since in sinces.values() if since is not None]
        types = {kind for table in sinces for kind in BY_TABLE[table].event_object_types}
        if not starts:
            return found

        def sink(page: list[tuple[int, Event]]) -> None:
            for _, event in page:
                found.add(event, sinces)

        read_window(client, min(starts), sorted(types | {"lead"}), sink)
        return found

    def add(self, event: Event, sinces: Mapping[str, datetime | None],
            ) -> None:
        """Events after a table's `since` (the read starts at the earliest)."""
        entry = route(event.object_type)
        # a merge removes its source lead, whether or not a `deleted` event says so
        source = event.meta.get("merge_source_lead_id") if event.action == "merged" else None
        gone = [str(source)] if source else []
        gone += [event.object_id] if event.action == "deleted" else []
        if entry is not None and entry.table == "leads":
            self.gone_leads.update(dict.fromkeys(gone, event.date_updated))
        since = sinces.get(entry.table) if entry is not None else None
        if entry is None or since is None or event.date_updated <= since:
            return
        self.touched.setdefault(entry.table, set()).update([*_keys(event), *gone])
        self.deleted.setdefault(entry.table, set()).update(gone)
        if event.action == "created":
            self.created.setdefault(entry.table, set()).add(event.object_id)

    def leads_gone_after(self, since: datetime | None) -> set[str]:
        """Leads deleted or merged away after `since`: their rows are the next sync's."""
        return {lead for lead, when in self.gone_leads.items()
                if since is None or when > since}

    def net(self, table: str) -> tuple[int, int]:
        """(objects created and still there, objects there before and deleted) since."""
        created, deleted = self.created.get(table, set()), self.deleted.get(table, set())
        return len(created - deleted), len(deleted - created)


def _keys(event: Event) -> list[str]:
    """The keys of the rows an event touches: a custom field's are `object_type:id`, for
    each object type a shared field may apply to."""
    if not event.object_type.startswith("custom_fields."):
        return [event.object_id]
    kind = event.object_type.partition(".")[2]
    kinds = OBJECT_TYPES if kind == "shared" else (kind,)
    return [definition_key(each, event.object_id) for each in kinds]


def _by_keys(read: ReadContext, entry: Entry, warehouse: Warehouse, scratch: Scratch,
             since: datetime | None, events: EventsSince) -> TableResult:
    stored = warehouse.keyed_pages(entry.table, entry.primary_key, ("date_updated", "lead_id"),
                                   live=LIVE)
    progress = Progress(f"verify {entry.table}: keys read from Close",
                        warehouse.count(entry.table, live=LIVE) or None, unit="objects")

    def counted(pages: Iterator[list[CloseKey]]) -> Iterator[list[CloseKey]]:
        for page in pages:
            progress.advance(len(page))
            yield page

    found: Comparison = scratch.compare(counted(close_keys(read, entry)), stored, since,
                                        events.touched.get(entry.table, set()),
                                        events.leads_gone_after(since))
    progress.finish()
    whole = (warehouse.columns(entry.table) is None or entry.incremental == "every_run"
             or len(found.to_heal) > HEAL_BY_ID_MAX)
    return TableResult(entry.table, "ids", found.warehouse_rows, found.close_objects,
                       dict(found.drift), found.since_last_run, found.examples,
                       None if whole else found.to_heal)


def _by_count(read: ReadContext, entry: Entry, warehouse: Warehouse,
              events: EventsSince) -> TableResult:
    rows = warehouse.count(entry.table, live=LIVE)
    total = close_total(read, entry)
    unknown: dict[str, int | None] = dict.fromkeys(KINDS)
    if total is None:
        return TableResult(entry.table, "", rows, None, unknown, 0)
    created, deleted = events.net(entry.table)
    expected = rows + created - deleted  # what the next sync makes of the table
    drift = {**unknown, "missing": max(total - expected, 0), "extra": max(expected - total, 0)}
    since = created + deleted if total != rows else 0
    return TableResult(entry.table, "count", rows, total, drift, since)


def tables_to_heal(report: Report) -> dict[str, list[str] | None]:
    """What `--heal` reads again: the differing tables' ids, or the whole table."""
    return {result.table: result.to_heal for result in report.differing}


def parse_age(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d` (a bare number: seconds)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    unit = units.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = -1
    if seconds <= 0:
        raise ConfigError(f"--max-age {text!r}: give a duration like 90s, 30m, 2h or 1d")
    return timedelta(seconds=seconds)
