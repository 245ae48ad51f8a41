"""The working set of one Event Log window: its events and the final state of every object it
touched, in memory while the window is small and in a scratch file on disk once it is large.

A weekend of bulk edits is 100,000+ events, and held as Python objects a window of that size
costs gigabytes. Here events and states live in SQLite: in memory up to `memory_rows` rows,
then copied (SQLite's backup) into a file in the pipeline's working directory, where the same
queries go on. Memory stays flat whatever the window's size, and every query is indexed or one
ordered pass, so time grows with the events.

SQLite, not DuckDB: the change set upserts and looks up objects one at a time as re-reads
arrive, which a row store does in microseconds and a column store does not.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from close_source.read.event_log import Event, ObjectChange
from close_source.read.privacy import NO_PRIVACY, Privacy

log = logging.getLogger(__name__)

MEMORY_ROWS = 5_000  # events + object states kept in memory (~25 MB) before the window spills
SCRATCH_PREFIX = "close-window-"
CHUNK = 1_000  # rows fetched from SQLite at a time

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

Key = tuple[str, str]

SCHEMA = """
CREATE TABLE events (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, object_type TEXT NOT NULL,
    object_id TEXT NOT NULL, action TEXT NOT NULL, updated INTEGER NOT NULL,
    raw BLOB NOT NULL, pos INTEGER, latest INTEGER NOT NULL DEFAULT 0);
CREATE TABLE states (
    ord INTEGER PRIMARY KEY, tbl TEXT NOT NULL, id TEXT NOT NULL, state BLOB,
    deleted_at INTEGER, read_again INTEGER NOT NULL DEFAULT 0, lead_id TEXT,
    UNIQUE (tbl, id));
CREATE INDEX states_lead ON states (tbl, lead_id);
"""
# Oldest first; within one microsecond a delete goes last (nothing can follow it), then the
# API's order reversed (newest first is correct per object).
ORDER = "updated, action = 'deleted', seq DESC"
ORDER_DESC = "updated DESC, action = 'deleted' DESC, seq"
# After the window is read: each event's place in that order, and whether it is its object's
# last (the one that decides); every later read pages through `pos`.
ORDER_EVENTS = f"""
UPDATE events SET pos = ranked.pos, latest = (ranked.n = 1 AND events.object_id != '')
FROM (SELECT rowid AS r, row_number() OVER (ORDER BY {ORDER}) AS pos,
             row_number() OVER (PARTITION BY object_type, object_id ORDER BY {ORDER_DESC}) AS n
      FROM events) AS ranked
WHERE events.rowid = ranked.r;
CREATE INDEX events_pos ON events (pos);
"""


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def moment_of(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + value * MICROSECOND


class WindowStore:
    """Events (deduplicated by id, the latest copy kept) and per-object final states of one
    window; thread-safe (the Event Log may be read by several threads). `close` deletes the
    scratch file. What it is given it keeps as `privacy` leaves it: nothing excluded is ever
    written to the scratch file."""

    def __init__(self, directory: str | os.PathLike[str] | None = None,
                 memory_rows: int = MEMORY_ROWS, privacy: Privacy = NO_PRIVACY) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.memory_rows = memory_rows
        self.privacy = privacy
        self.path: Path | None = None
        self._rows = 0
        self._lock = threading.RLock()
        self._db = self._connect(":memory:")
        self._db.executescript(SCHEMA)

    # ---- the scratch database ---------------------------------------------------------------

    @staticmethod
    def _connect(where: str) -> sqlite3.Connection:
        db = sqlite3.connect(where, check_same_thread=False, isolation_level=None)
        # a scratch file: no journal, no fsync; a run that dies leaves it to the next run
        db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
                         "PRAGMA cache_size = -16384; PRAGMA temp_store = FILE;")
        return db

    @property
    def spilled(self) -> bool:
        return self.path is not None

    def _grew(self, rows: int) -> None:
        self._rows += rows
        if self.path is None and self._rows > self.memory_rows:
            self._spill()

    def _spill(self) -> None:
        directory = self.directory or Path.cwd()
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{SCRATCH_PREFIX}{uuid.uuid4().hex}.sqlite"
        disk = self._connect(str(self.path))
        self._db.backup(disk)
        self._db.close()
        self._db = disk
        log.info("the Event Log window passed %d events and object states: kept on disk in "
                 "%s from now on", self.memory_rows, self.path)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self.path is not None:
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> WindowStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- events -------------------------------------------------------------------------

    def add_events(self, events: Sequence[tuple[int, Event]]) -> None:
        """(order in the API's answer, event); of two copies of one event the one updated
        last is kept, with the order of the copy seen last."""
        rows = [(event.id, order, event.object_type, event.object_id, event.action,
                 micros(event.date_updated),
                 orjson.dumps(self.privacy.event(event.object_type, dict(event.raw)), default=str))
                for order, event in events]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO events (id, seq, object_type, object_id, action, updated, raw) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "seq = excluded.seq, object_type = iif(excluded.updated > updated, "
                "excluded.object_type, object_type), object_id = iif(excluded.updated > "
                "updated, excluded.object_id, object_id), action = iif(excluded.updated > "
                "updated, excluded.action, action), raw = iif(excluded.updated > updated, "
                "excluded.raw, raw), updated = max(updated, excluded.updated)", rows)
            self._db.execute("COMMIT")
            self._grew(len(rows))

    def events_read(self) -> None:
        """The window is read: order its events (every later read pages through them)."""
        with self._lock:
            self._db.executescript(ORDER_EVENTS)

    def event_count(self) -> int:
        return self._one("SELECT count(*) FROM events") or 0

    def newest(self) -> datetime | None:
        return moment_of(self._one("SELECT max(updated) FROM events"))

    def events(self, *, since: datetime | None = None, object_type: str | None = None,
               action: str | None = None, latest: bool = False) -> Iterator[Event]:
        """The window's events, oldest first (optionally only some: `latest`, each object's
        last event, the one that decides its final state)."""
        where, params = _where(since=since, object_type=object_type, action=action,
                               latest=1 if latest else None)
        for raw in self._paged("pos", "raw", "events", where, params):
            event = Event.parse(orjson.loads(raw))
            if event is not None:
                yield event

    def latest_per_object(self) -> Iterator[ObjectChange]:
        """Per (object_type, object_id), the window's last event decides; in that order."""
        for event in self.events(latest=True):
            yield ObjectChange(event.object_type, event.object_id, event.action == "deleted",
                               event)

    # ---- object states ------------------------------------------------------------------

    def put(self, key: Key, state: dict[str, Any], read_again: bool = False) -> None:
        """The object's final state (so far), as an event showed it or as read by id."""
        self.put_many([(key, state)], read_again)

    def put_many(self, states: Iterable[tuple[Key, dict[str, Any]]],
                 read_again: bool = False) -> None:
        rows = [(table, object_id, orjson.dumps(self.privacy.object(table, state), default=str),
                 int(read_again), _text(state.get("lead_id")))
                for (table, object_id), state in states]
        self._write("INSERT INTO states (tbl, id, state, read_again, lead_id) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tbl, id) DO UPDATE SET "
                    "state = excluded.state, lead_id = excluded.lead_id, "
                    "read_again = max(read_again, excluded.read_again)", rows)

    def put_if_absent(self, states: Iterable[tuple[Key, dict[str, Any]]]) -> None:
        rows = [(table, object_id, orjson.dumps(self.privacy.object(table, state), default=str),
                 _text(state.get("lead_id"))) for (table, object_id), state in states]
        self._write("INSERT OR IGNORE INTO states (tbl, id, state, lead_id) VALUES (?, ?, ?, ?)",
                    rows)

    def delete(self, key: Key, when: datetime | None, read_again: bool = False) -> None:
        """The object is gone (`when`: the delete's time, for soft deletes)."""
        self._write("INSERT INTO states (tbl, id, state, deleted_at, read_again) "
                    "VALUES (?, ?, NULL, ?, ?) ON CONFLICT (tbl, id) DO UPDATE SET "
                    "state = NULL, lead_id = NULL, deleted_at = excluded.deleted_at, "
                    "read_again = max(read_again, excluded.read_again)",
                    [(key[0], key[1], None if when is None else micros(when), int(read_again))])

    def get(self, key: Key) -> tuple[bool, dict[str, Any] | None]:
        """(known, state): state None for a deleted object."""
        rows = self._select("SELECT state FROM states WHERE tbl = ? AND id = ?", key)
        for (state,) in rows:
            return True, None if state is None else orjson.loads(state)
        return False, None

    def unknown(self, table: str, object_ids: Iterable[str]) -> list[str]:
        """Of these ids, those with no state (nor delete) in the window."""
        return self._missing(table, object_ids, "")

    def unsettled(self, table: str, object_ids: Iterable[str]) -> list[str]:
        """Of these ids, those not read by id yet and not known as deleted."""
        return self._missing(table, object_ids, " AND (read_again OR state IS NULL)")

    def _missing(self, table: str, object_ids: Iterable[str], settled: str) -> list[str]:
        wanted = list(dict.fromkeys(object_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            found.update(row[0] for row in self._select(
                f"SELECT id FROM states WHERE tbl = ? AND id IN ({', '.join('?' * len(chunk))})"
                f"{settled}", (table, *chunk)))
        return [object_id for object_id in wanted if object_id not in found]

    def naming(self, table: str, column: str, values: Iterable[str]) -> list[str]:
        """Ids of the table's live states whose `column` is one of `values`."""
        values = list(dict.fromkeys(values))
        if column == "lead_id":
            select = "SELECT id FROM states WHERE tbl = ? AND lead_id IN ({})"
            first: tuple[Any, ...] = (table,)
        else:
            select = ("SELECT id FROM states WHERE tbl = ? AND state IS NOT NULL "
                      "AND json_extract(state, ?) IN ({})")
            first = (table, '$."' + column.replace('"', '\\"') + '"')
        found: list[str] = []
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            found += [row[0] for row in self._select(select.format(", ".join("?" * len(chunk))),
                                                     (*first, *chunk))]
        return found

    def states(self) -> Iterator[tuple[Key, dict[str, Any] | None]]:
        """Every (key, final state or None when deleted), in first-seen order."""
        for table, object_id, state in self._paged("ord", "tbl, id, state", "states", "", ()):
            yield (table, object_id), None if state is None else orjson.loads(state)

    def deleted_at(self, key: Key) -> datetime | None:
        return moment_of(self._one("SELECT deleted_at FROM states WHERE tbl = ? AND id = ?",
                                   key))

    # ---- plumbing -----------------------------------------------------------------------

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(sql, rows)
            self._db.execute("COMMIT")
            self._grew(len(rows))

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return row[0] if row else None

    def _select(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _paged(self, key: str, columns: str, table: str, where: str,
               params: tuple[Any, ...]) -> Iterator[Any]:
        """Rows in `key` order, a chunk at a time, each chunk its own query: writes (and a
        spill to disk) may happen between two chunks."""
        last = 0
        condition = f"{where} AND {key} > ?" if where else f" WHERE {key} > ?"
        sql = f"SELECT {key}, {columns} FROM {table}{condition} ORDER BY {key} LIMIT {CHUNK}"
        while True:
            chunk = self._select(sql, (*params, last))
            for row in chunk:
                yield row[1] if len(row) == 2 else row[1:]
            if len(chunk) < CHUNK:
                return
            last = chunk[-1][0]


def _where(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    clauses, params = [], []
    for name, value in filters.items():
        if value is None:
            continue
        if name == "since":
            clauses.append("updated >= ?")
            params.append(micros(value))
        else:
            clauses.append(f"{name} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
