"""One Event Log window -> the final state of every object it touched (None: deleted).

Each table applies only the events at or after its own window start (`windows`): runs of
different table subsets interleave, and an event is applied to each table once it is new to
that table. Per object the window's last event decides: a delete removes the row (a dlt hard
delete, its child rows too) or, with soft deletes, keeps it with `_deleted_at`; any other
action upserts the event's `data`, or the object read by id when `data` is missing (non-admin keys
and events older than an hour: Close API: Event Log, Event format) or stale, a 404 meaning deleted.
Objects the run is asked to read again (`reread`: `close-sync verify --heal` found their rows
differing from Close) are read by id the same way, after the events, unless an event's read already
did: a missing row comes back, a stale one is updated, a gone one is deleted.

An event's `data` is a snapshot from when it happened. It is not used (the object is read as
Close shows it now) when something it depends on changed later: a custom field definition of
its object type (a deleted field's values are never written back, a retyped field's are in its
new column), or a name it copies (docs/reading-close.md, "Copied names").

Then what Close changes without events:

- rows of a deleted or merged-away lead that no event covered (Created activities have no
  events; merges move children) are read by id: moved ones are updated, gone ones removed,
  whichever tables this run reads from the Event Log and whatever else it reads in full;
- a lead's `date_updated` moves when its contacts, opportunities, tasks or activities change, with
  no `lead.updated` (Close API: Event Log, List of events): leads updated since the window began
  are read again;
- names copied into other rows follow a rename without events on those rows: the rows naming
  a renamed lead or contact (from the window's events) or user, status, pipeline, sequence or
  template (`read/references.py`) are read again;
- Created activities are never edited and have no events: those created since the window began
  are read.

Each object ends with exactly one state, so one row (or one delete) per load: dlt's
delete-insert merge keeps an arbitrary copy of duplicated keys, and a child table would get both
copies. The rows are made from these states by the run (`run/incremental.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from close_source.api.search import search_walk
from close_source.catalog import BY_TABLE, CATALOG, Entry, copies_of, route
from close_source.errors import ApiError
from close_source.read.by_id import fetch_by_ids
from close_source.read.context import ReadContext
from close_source.read.event_log import Event
from close_source.read.references import References
from close_source.read.warehouse import Warehouse
from close_source.read.window_store import Key, WindowStore
from close_source.read.windows import read_windows_since
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

# Tables of objects that belong to a lead and go with it when it is deleted or merged.
CHILDREN_OF_LEADS = tuple(e for e in CATALOG if e.incremental != "every_run" and e.table != "leads")
# Named objects whose renames the Event Log announces (the others: `read/references.py`).
EVENT_SOURCES = tuple(e.table for e in CATALOG if e.name_fields and e.incremental == "events")

# `renamed_at` key: when the table was last read in full (the copies of every name as of then)
FULL_READ = "*"
READ_AGAIN_CHUNK = 1_000  # objects read by id held at a time before they go to the store


class ChangeSet:
    """The final state of each object of one window, keyed by (table, id), kept in a
    `WindowStore` (None = deleted).

    `renames`: per table, the users, statuses, ... renamed since it last synced (their rows
    are read again); `renamed_at`: per table, when recent renames were seen (`source:id`),
    so that older snapshots naming them are not trusted, and when the table was last read in
    full (`FULL_READ`): a snapshot older than that read may name anything by an older name;
    `references`: the small named tables as Close shows them now (a snapshot copying another
    value of theirs is stale, even renamed back since); `reread`: per table, ids to read again
    by id whatever the window's events say (`verify --heal`).
    """

    def __init__(self, read: ReadContext, warehouse: Warehouse, store: WindowStore,
                 windows: Mapping[str, datetime], started_at: datetime | None,
                 values_changed_after: Callable[[str, datetime], bool],
                 renames: Mapping[str, Mapping[str, set[str]]] | None = None,
                 renamed_at: Mapping[str, Mapping[str, datetime]] | None = None,
                 references: References | None = None,
                 reread: Mapping[str, Collection[str]] | None = None) -> None:
        """`values_changed_after(table, moment)`: whether Close changed the table's custom
        field values without events after `moment` (its snapshots are then stale)."""
        self.read, self.warehouse, self.store = read, warehouse, store
        self.windows = dict(windows)
        self.started_at = started_at
        self._values_changed_after = values_changed_after
        self.renames = renames or {}
        self.renamed_at = renamed_at or {}
        self.references = references or References()
        self.reread = reread or {}
        self._unknown: set[str] = set()
        self._no_id_filter: set[str] = set()  # endpoints seen ignoring `id__in` in this run

    def applies(self, table: str, moment: datetime) -> bool:
        """Whether an event of this moment is new to `table` (read from the log this run)."""
        since = self.windows.get(table)
        return since is not None and moment >= since

    # ---- collecting ---------------------------------------------------------------------

    def collect(self) -> None:
        """Every event of the window (in the store, read and ordered)."""
        missing: dict[str, list[str]] = {}
        gone_leads: dict[str, datetime] = {}
        for change in self.store.latest_per_object():
            entry = self._entry(change.object_type)
            if entry is None:
                continue
            event = change.event
            if entry.table == "leads" and change.deleted:
                gone_leads[change.object_id] = event.date_updated
            if not self.applies(entry.table, event.date_updated):
                continue
            key = (entry.table, change.object_id)
            if change.deleted:
                self._delete(key, event.date_updated)
            elif event.data is not None and event.action != "merged" and \
                    self._fresh(entry, event.data, event.date_updated):
                self.store.put(key, dict(event.data))
            else:
                missing.setdefault(entry.table, []).append(change.object_id)
        for table, object_ids in missing.items():
            self._read_again(BY_TABLE[table], object_ids)
        self._asked_again()
        self._rows_of_gone_leads(gone_leads)
        self._touched_leads(set(gone_leads))
        self._relabelled()
        self._created_since()

    def _entry(self, object_type: str) -> Entry | None:
        entry = route(object_type)
        if entry is None and object_type not in self._unknown:
            self._unknown.add(object_type)
            log.info("Event Log: %r events are not synced; skipped", object_type)
        return entry

    def _fresh(self, entry: Entry, data: Mapping[str, Any], moment: datetime) -> bool:
        """Whether a snapshot taken at `moment` still shows the object as Close would now."""
        if entry.custom_field_type and self._values_changed_after(entry.table, moment):
            return False
        for copy in entry.copies:
            named = self.references.get(copy.source, data.get(copy.key)) if copy.field else None
            if named is not None and copy.column in data and \
                    data[copy.column] != named.get(copy.field):
                return False
        renamed = self.renamed_at.get(entry.table)
        if renamed and entry.copies:
            full_read = renamed.get(FULL_READ)
            if full_read is not None and full_read >= moment:
                return False
            for copy in entry.copies:
                when = renamed.get(f"{copy.source}:{data.get(copy.key)}")
                if when is not None and when >= moment:
                    return False
        return True

    def _delete(self, key: Key, when: datetime | None, read_again: bool = False) -> None:
        self.store.delete(key, when or self.started_at or min(self.windows.values()),
                          read_again)

    def _read_again(self, entry: Entry, object_ids: Iterable[str]) -> None:
        """By id, as Close shows the objects now (batched, a few batches held at a time); a
        404 means deleted."""
        todo = self.store.unsettled(entry.table, object_ids)
        for start in range(0, len(todo), READ_AGAIN_CHUNK):
            fetched = fetch_by_ids(self.read, entry, todo[start:start + READ_AGAIN_CHUNK],
                                   id_filter=entry.path not in self._no_id_filter)
            if not fetched.id_filter:
                self._no_id_filter.add(entry.path)
            found = []
            for object_id, obj in fetched.found.items():
                if obj is None:
                    self._delete((entry.table, object_id), None, read_again=True)
                else:
                    found.append(((entry.table, object_id), obj))
            self.store.put_many(found, read_again=True)

    def _asked_again(self) -> None:
        """The objects `reread` names, of the tables this window applies to: read once (an
        event's read by id or its delete settled the others)."""
        for table, object_ids in sorted(self.reread.items()):
            if table not in self.windows:
                continue
            todo = self.store.unsettled(table, object_ids)
            settled = len(set(object_ids)) - len(todo)
            log.info("%s: %d objects read again by id (verify --heal)%s", table, len(todo),
                     f"; {settled} already settled by the window's events" if settled else "")
            self._read_again(BY_TABLE[table], todo)

    def _naming(self, table: str, column: str, values: Iterable[str]) -> list[str]:
        """Ids of the table's rows, stored or in this window's states, whose `column` names
        one of `values`."""
        values = list(dict.fromkeys(values))
        if not values:
            return []
        return self.warehouse.ids_where(table, column, values) + \
            self.store.naming(table, column, values)

    def _rows_of_gone_leads(self, gone_leads: Mapping[str, datetime]) -> None:
        """Whatever still names a deleted or merged-away lead, in the warehouse or in this
        window's states, is read again: it is gone, or it moved to another lead."""
        for entry in CHILDREN_OF_LEADS:
            gone = [lead for lead, moment in gone_leads.items()
                    if self.applies(entry.table, moment)]
            if not gone:
                continue
            stored = self.warehouse.ids_where(entry.table, "lead_id", gone)
            stragglers = self.store.unknown(entry.table, stored) + \
                self.store.naming(entry.table, "lead_id", gone)
            if stragglers:
                log.info("%s: %d rows of deleted or merged leads checked by id",
                         entry.table, len(set(stragglers)))
                self._read_again(entry, stragglers)

    def _touched_leads(self, gone: set[str]) -> None:
        """Leads whose `date_updated` moved with no event of their own: those updated since
        the window began, by a search on `date_updated`; if Close refuses the search, the
        leads whose children changed later than the lead's own last event, by id."""
        since = self.windows.get("leads")
        if since is None:
            return
        leads = BY_TABLE["leads"]
        try:
            for page in search_walk(self.read.client, leads, set(), date_field="date_updated",
                                    since=since):
                newer = []
                for obj in page:
                    key = ("leads", str(obj["id"]))
                    known, state = self.store.get(key)
                    if not known or (state is not None and _newer(obj, state)):
                        newer.append((key, obj))
                self.store.put_many(newer)
            return
        except ApiError as exc:
            log.info("leads updated since %s could not be searched (%s); reading the leads "
                     "whose children changed by id", since, exc)
        lead_seen: dict[str, datetime] = {}
        child_seen: dict[str, datetime] = {}
        for event in self.store.events(since=since):
            entry = route(event.object_type)
            if entry is None:
                continue
            if entry.table == "leads":
                lead_seen[event.object_id] = event.date_updated
            elif event.lead_id and entry.incremental == "events":
                child_seen[event.lead_id] = max(event.date_updated,
                                                child_seen.get(event.lead_id, event.date_updated))
        self._read_again(leads, [lead_id for lead_id, moment in child_seen.items()
                                 if lead_id not in gone
                                 and lead_seen.get(lead_id, moment) <= moment])

    def _relabelled(self) -> None:
        """Rows naming a renamed object are read again: leads and contacts renamed in the
        window (every rename counts, not only objects' last events), and the small named
        tables renamed since each table last synced."""
        naming: dict[tuple[str, str], set[str]] = {}
        for event in self.store.events(action="updated"):
            entry = route(event.object_type)
            if entry is None or entry.table not in EVENT_SOURCES or not _renamed(event, entry):
                continue
            for dependent, copy in copies_of(entry.table):
                if self.applies(dependent.table, event.date_updated) and \
                        self.warehouse.has_column(dependent.table, copy.column):
                    naming.setdefault((dependent.table, copy.key), set()).add(event.object_id)
        for table, sources in self.renames.items():
            if table not in self.windows:
                continue
            for copy in BY_TABLE[table].copies:
                if sources.get(copy.source) and self.warehouse.has_column(table, copy.column):
                    naming.setdefault((table, copy.key), set()).update(sources[copy.source])
        for (table, column), values in sorted(naming.items()):
            object_ids = self._naming(table, column, values)
            if object_ids:
                log.info("%s: %d rows read again after a rename", table, len(set(object_ids)))
                self._read_again(BY_TABLE[table], object_ids)

    def _created_since(self) -> None:
        for table, since in sorted(self.windows.items()):
            entry = BY_TABLE.get(table)
            if entry is None or entry.incremental != "created_since":
                continue
            for page in read_windows_since(self.read, entry, since):
                self.store.put_if_absent(((table, str(obj["id"])), obj) for obj in page)


def _newer(found: dict[str, Any], known: dict[str, Any] | None) -> bool:
    """The searched copy is newer than the event's (compared as Close's ISO texts, UTC)."""
    if known is None:
        return False  # deleted in the window: the delete stands
    mine, theirs = to_utc(found.get("date_updated")), to_utc(known.get("date_updated"))
    return mine is not None and (theirs is None or mine > theirs)


def _renamed(event: Event, entry: Entry) -> bool:
    changed = event.raw.get("changed_fields")
    if not isinstance(changed, list):
        return True  # not said: assume the worst
    return bool(set(entry.name_fields) & set(changed))
