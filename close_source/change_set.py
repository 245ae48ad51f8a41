"""One Event Log window -> the final state of every object it touched -> merge rows.

Per object the window's last event decides: a delete removes the row (a dlt hard delete, its
child rows too) or, with soft deletes, keeps it with `_deleted_at`; any other action upserts the
event's `data`, or the object read by id when `data` is missing (non-admin keys and events older
than an hour [003:8139-8140]), a 404 meaning deleted. Then what Close changes without events:

- rows of a deleted or merged-away lead that no event covered (Created activities have no
  events; merges move children) are read by id: moved ones are updated, gone ones removed;
- a lead's `date_updated` moves when its contacts, opportunities, tasks or activities change,
  with no `lead.updated` [003:8174-8175]: leads updated since the window began are read again;
- names copied into other rows (`lead_name`, `contact_name`, `status_label`) follow a rename
  without events on those rows: the rows naming a renamed object are read again;
- Created activities are never edited and have no events: those created since the window began
  are read.

Each object ends with exactly one row (or one delete) per load: dlt's delete-insert merge keeps
an arbitrary copy of duplicated keys, and a child table would get both copies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from close_source.arrow_tables import ArrowBatcher
from close_source.catalog import BY_TABLE, CATALOG, Entry
from close_source.errors import ApiError
from close_source.event_log import Event, latest_per_object
from close_source.lists import ReadContext, fetch_by_ids, read_windows_since, search_walk
from close_source.shaping import DELETED_AT, TOMBSTONE, child_table, shape
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

# Tables of objects that belong to a lead and go with it when it is deleted or merged.
CHILDREN_OF_LEADS = tuple(e for e in CATALOG if e.incremental != "refresh" and e.table != "leads")
# A rename shows in other rows: (renamed table) -> [(table to re-read, column naming it)].
RELABELS: dict[str, tuple[tuple[str, str], ...]] = {
    "leads": (("opportunities", "lead_id"), ("tasks", "lead_id")),
    "contacts": (("tasks", "contact_id"),),
    "lead_statuses": (("leads", "status_id"),),
    "opportunity_statuses": (("opportunities", "status_id"),),
}
# Event Log types read only for the renames they announce (their tables are refreshed).
RELABEL_EVENT_TYPES = ("status.lead", "status.opportunity")
RENAMING_FIELDS = frozenset({"name", "display_name", "label"})

Key = tuple[str, str]


def route(object_type: str) -> Entry | None:
    """The catalog entry an event's `object_type` belongs to (`task.lead` -> tasks)."""
    for entry in CATALOG:
        for pattern in entry.event_object_types:
            if pattern == object_type or (pattern.endswith(".*") and
                                          object_type.startswith(pattern[:-1])):
                return entry
    return None


class ChangeSet:
    """The final state of each object of one window, keyed by (table, id); None = deleted."""

    def __init__(self, ctx: ReadContext, tables: set[str], window_start: datetime) -> None:
        self.ctx, self.tables, self.window_start = ctx, tables, window_start
        self.final: dict[Key, dict[str, Any] | None] = {}
        self.deleted_at: dict[Key, datetime] = {}
        self.read_again: set[Key] = set()
        self._unknown: set[str] = set()

    # ---- collecting ---------------------------------------------------------------------

    def collect(self, events: list[Event]) -> None:
        """Every event of the window, oldest first."""
        changes = latest_per_object(events)
        missing: dict[str, list[str]] = {}
        gone_leads: list[str] = []
        for change in changes:
            entry = self._entry(change.object_type)
            if entry is None or entry.table not in self.tables:
                continue
            key = (entry.table, change.object_id)
            event = change.event
            if change.deleted:
                self._delete(key, event.date_updated)
                if entry.table == "leads":
                    gone_leads.append(change.object_id)
            elif event.data is not None and event.action != "merged":
                self.final[key] = dict(event.data)
            else:
                missing.setdefault(entry.table, []).append(change.object_id)
        for table, object_ids in missing.items():
            self._read_again(BY_TABLE[table], object_ids)
        self._rows_of_gone_leads(gone_leads)
        self._touched_leads(events, set(gone_leads))
        self._relabelled(events)
        self._created_since()

    def _entry(self, object_type: str) -> Entry | None:
        entry = route(object_type)
        if entry is None and object_type not in self._unknown:
            self._unknown.add(object_type)
            log.info("Event Log: %r events are not synced; skipped", object_type)
        return entry

    def _delete(self, key: Key, when: datetime | None) -> None:
        self.final[key] = None
        self.deleted_at[key] = when or self.ctx.started_at or self.window_start

    def _read_again(self, entry: Entry, object_ids: Iterable[str]) -> None:
        """By id, as Close shows the objects now (batched); a 404 means deleted."""
        todo = []
        for object_id in dict.fromkeys(object_ids):
            key = (entry.table, object_id)
            if key not in self.read_again and not (key in self.final and self.final[key] is None):
                todo.append(object_id)
        if not todo:
            return
        for object_id, obj in fetch_by_ids(self.ctx, entry, todo).items():
            key = (entry.table, object_id)
            self.read_again.add(key)
            if obj is None:
                self._delete(key, None)
            else:
                self.final[key] = obj

    def _rows_of_gone_leads(self, gone_leads: list[str]) -> None:
        """Whatever still names a deleted or merged-away lead, in the warehouse or in this
        window's states, is read again: it is gone, or it moved to another lead."""
        if not gone_leads:
            return
        gone = set(gone_leads)
        for entry in CHILDREN_OF_LEADS:
            if entry.table not in self.tables:
                continue
            stragglers = [object_id for object_id in
                          self.ctx.warehouse.ids_where(entry.table, "lead_id", gone_leads)
                          if (entry.table, object_id) not in self.final]
            stragglers += [object_id for (table, object_id), obj in self.final.items()
                           if table == entry.table and obj is not None
                           and obj.get("lead_id") in gone]
            if stragglers:
                log.info("%s: %d rows of deleted or merged leads checked by id",
                         entry.table, len(stragglers))
                self._read_again(entry, stragglers)

    def _touched_leads(self, events: list[Event], gone: set[str]) -> None:
        """Leads whose `date_updated` moved with no event of their own: those updated since
        the window began, by a search on `date_updated`; if Close refuses the search, the
        leads whose children changed later than the lead's own last event, by id."""
        if "leads" not in self.tables:
            return
        leads = BY_TABLE["leads"]
        try:
            for page in search_walk(self.ctx.client, leads, set(), date_field="date_updated",
                                    since=self.window_start):
                for obj in page:
                    key = ("leads", str(obj["id"]))
                    if key not in self.final or _newer(obj, self.final[key]):
                        self.final[key] = obj
            return
        except ApiError as exc:
            log.info("leads updated since %s could not be searched (%s); reading the leads "
                     "whose children changed by id", self.window_start, exc)
        lead_seen: dict[str, datetime] = {}
        child_seen: dict[str, datetime] = {}
        for event in events:
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

    def _relabelled(self, events: list[Event]) -> None:
        """Every rename of the window counts, not only objects' last events."""
        renamed: dict[tuple[str, str], list[str]] = {}
        for event in events:
            entry = route(event.object_type)
            if entry is None or event.action != "updated" or not _renamed(event):
                continue
            for table, column in RELABELS.get(entry.table, ()):
                renamed.setdefault((table, column), []).append(event.object_id)
        for (table, column), values in renamed.items():
            if table not in self.tables:
                continue
            wanted = set(values)
            object_ids = self.ctx.warehouse.ids_where(table, column, values)
            object_ids += [object_id for (t, object_id), obj in self.final.items()
                           if t == table and obj is not None and obj.get(column) in wanted]
            if object_ids:
                log.info("%s: %d rows read again after a rename", table, len(set(object_ids)))
                self._read_again(BY_TABLE[table], object_ids)

    def _created_since(self) -> None:
        for table in sorted(self.tables):
            entry = BY_TABLE[table]
            if entry.incremental != "created_since":
                continue
            for page in read_windows_since(self.ctx, entry, self.window_start):
                for obj in page:
                    self.final.setdefault((table, str(obj["id"])), obj)

    # ---- rows ---------------------------------------------------------------------------

    def rows(self, batcher: ArrowBatcher) -> Iterator[object]:
        deleted: dict[str, list[str]] = {}
        for (table, object_id), obj in self.final.items():
            entry = BY_TABLE[table]
            if obj is None:
                deleted.setdefault(table, []).append(object_id)
                continue
            for shaped_table, row in shape(entry, obj, self.ctx.custom):
                yield from batcher.add(shaped_table, row)
        for table, object_ids in deleted.items():
            if self.ctx.soft_deletes:
                yield from self._soft_deleted(batcher, table, object_ids)
            else:
                yield from _hard_deleted(batcher, BY_TABLE[table], object_ids)

    def _soft_deleted(self, batcher: ArrowBatcher, table: str,
                      object_ids: list[str]) -> Iterator[object]:
        """The rows stay as they were, with `_deleted_at`; objects never loaded stay absent."""
        for row in self.ctx.warehouse.rows_where(table, "id", object_ids):
            if row.get(DELETED_AT) is None:
                row[DELETED_AT] = self.deleted_at[(table, str(row["id"]))]
                yield from batcher.add(table, row)


def _hard_deleted(batcher: ArrowBatcher, entry: Entry,
                  object_ids: list[str]) -> Iterator[object]:
    for object_id in object_ids:
        yield from batcher.add(entry.table, {entry.primary_key[0]: object_id, TOMBSTONE: True})
        for list_name in entry.child_lists:
            yield from batcher.add(child_table(entry, list_name), {
                entry.child_key or "parent_id": object_id, TOMBSTONE: True})


def _newer(found: dict[str, Any], known: dict[str, Any] | None) -> bool:
    """The searched copy is newer than the event's (compared as Close's ISO texts, UTC)."""
    if known is None:
        return False  # deleted in the window: the delete stands
    mine, theirs = to_utc(found.get("date_updated")), to_utc(known.get("date_updated"))
    return mine is not None and (theirs is None or mine > theirs)


def _renamed(event: Event) -> bool:
    changed = event.raw.get("changed_fields")
    if not isinstance(changed, list):
        return True  # not said: assume the worst
    return bool(RENAMING_FIELDS & set(changed))
