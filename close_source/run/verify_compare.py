"""One table's keys in Close against its rows in the warehouse, compared in a scratch DuckDB
file: memory stays flat whatever the table's size (DuckDB spills past its limit), and the
destination is only read, never written.

A difference is drift, or a change Close made after the last run (`since`: objects updated or
created after it, or touched by an event after it; rows of a lead an event deleted or merged
after it), which the next sync applies and which is reported apart.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from close_source.read.close_keys import CloseKey
from close_source.timestamps import to_utc

BATCH_ROWS = 10_000  # rows handed to DuckDB at a time (a batch of Python objects: ~5 MB)
EXAMPLES = 5  # keys named per kind of difference
HEAL_BY_ID_MAX = 10_000  # beyond this many differences a table is healed by a full read
SCRATCH_MEMORY = "64MB"  # as the loading connection's (pipeline.py); DuckDB spills past it
TIMESTAMP = pa.timestamp("us", tz="UTC")
KINDS = ("missing", "extra", "stale")


@dataclass
class Comparison:
    """What differs in one table: drift per kind, changes since the last run apart."""

    close_objects: int = 0
    warehouse_rows: int = 0
    drift: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    since_last_run: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)
    # keys to read again by id (missing, stale, duplicated, extra), at most HEAL_BY_ID_MAX + 1
    to_heal: list[str] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        return any(self.drift.values())


class Scratch:
    """A DuckDB file beside the pipeline's working files, removed when closed."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / "verify-scratch.duckdb"
        self.path.unlink(missing_ok=True)
        self._db = duckdb.connect(str(self.path), config={
            "memory_limit": SCRATCH_MEMORY, "threads": 1,
            "temp_directory": str(self.path.with_suffix(".tmp"))})
        # past 2 s a query draws a progress bar on stdout, into `verify --json`'s document
        self._db.execute("SET enable_progress_bar_print = false")

    def close(self) -> None:
        self._db.close()
        self.path.unlink(missing_ok=True)
        Path(f"{self.path}.wal").unlink(missing_ok=True)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def compare(self, close_pages: Iterable[list[CloseKey]],
                stored_pages: Iterable[list[tuple[Any, ...]]], since: datetime | None,
                touched: Collection[str] = (), touched_leads: Collection[str] = ()
                ) -> Comparison:
        """`stored_pages`: (key, date_updated, lead_id) rows of the warehouse's live rows."""
        db = self._db
        db.execute("CREATE OR REPLACE TABLE close_side (key VARCHAR, updated TIMESTAMPTZ, "
                   "created TIMESTAMPTZ, lead_id VARCHAR)")
        db.execute("CREATE OR REPLACE TABLE stored (key VARCHAR, updated TIMESTAMPTZ, "
                   "lead_id VARCHAR)")
        db.execute("CREATE OR REPLACE TABLE touched (key VARCHAR)")
        db.execute("CREATE OR REPLACE TABLE touched_leads (key VARCHAR)")
        self._append("close_side", _close_batches(close_pages))
        self._append("stored", _stored_batches(stored_pages))
        self._append("touched", _key_batches(touched))
        self._append("touched_leads", _key_batches(touched_leads))
        return self._differences(since)

    def _append(self, table: str, batches: Iterator[pa.Table]) -> None:
        for batch in batches:
            self._db.register("batch", batch)
            self._db.execute(f"INSERT INTO {table} SELECT * FROM batch")  # noqa: S608
            self._db.unregister("batch")

    def _differences(self, since: datetime | None) -> Comparison:
        """Counted in SQL; only the keys named (examples, ids to heal) come back, in key
        order. Each step is one aggregate or one join into a table, which DuckDB spills past
        its limit; one query of them all kept every side in memory at once (and failed at
        64 MB on a table of millions of differences)."""
        db = self._db
        for sql in DIFFERENCES:
            db.execute(sql, [since] * sql.count("?"))
        found = Comparison()
        found.close_objects = _one(db, "SELECT count(*) FROM c")
        found.warehouse_rows = _one(db, "SELECT count(*) FROM stored")
        for kind, recent, count in db.execute(
                "SELECT kind, recent, count(*) FROM differences GROUP BY ALL").fetchall():
            if recent:
                found.since_last_run += count
            else:
                found.drift[kind] += count
        for kind in sorted(KINDS):  # as the keys to heal: extra, missing, stale
            found.examples.update({kind: [row[0] for row in db.execute(
                "SELECT key FROM differences WHERE kind = ? AND NOT recent ORDER BY key LIMIT ?",
                [kind, EXAMPLES]).fetchall()]} if found.drift[kind] else {})
        found.to_heal = [row[0] for row in db.execute(
            "SELECT key FROM differences WHERE NOT recent ORDER BY kind, key LIMIT ?",
            [HEAL_BY_ID_MAX + 1]).fetchall()]
        return found


# Each key once per kind: a key stored twice is a row too many (`extra`); stale compares only
# where both sides have a `date_updated`. `recent`: changed after the last run (`since`).
DIFFERENCES = (
    "CREATE OR REPLACE TEMP TABLE c AS SELECT key, max(updated) AS updated,"
    " max(created) AS created, max(lead_id) AS lead_id FROM close_side GROUP BY key",
    "CREATE OR REPLACE TEMP TABLE s AS SELECT key, max(updated) AS updated,"
    " max(lead_id) AS lead_id, count(*) AS copies FROM stored GROUP BY key",
    """CREATE OR REPLACE TEMP TABLE differences AS
SELECT 'missing' AS kind, c.key, coalesce(c.updated > ?::TIMESTAMPTZ
       OR c.created > ?::TIMESTAMPTZ OR c.key IN (SELECT key FROM touched), false) AS recent
FROM c ANTI JOIN s ON c.key = s.key
UNION ALL
SELECT 'extra', s.key, coalesce(s.key IN (SELECT key FROM touched)
       OR s.lead_id IN (SELECT key FROM touched_leads), false)
FROM s ANTI JOIN c ON c.key = s.key
UNION ALL
SELECT 'extra', s.key, false FROM s SEMI JOIN c ON c.key = s.key WHERE s.copies > 1
UNION ALL
SELECT 'stale', c.key, coalesce(c.updated > ?::TIMESTAMPTZ OR c.key IN (SELECT key FROM touched),
       false)
FROM c JOIN s ON c.key = s.key
WHERE c.updated IS NOT NULL AND s.updated IS NOT NULL AND c.updated <> s.updated""",
)


def _one(db: duckdb.DuckDBPyConnection, sql: str) -> int:
    rows = db.execute(sql).fetchall()
    return int(rows[0][0]) if rows else 0


def _close_batches(pages: Iterable[list[CloseKey]]) -> Iterator[pa.Table]:
    keys: list[str] = []
    updated: list[datetime | None] = []
    created: list[datetime | None] = []
    leads: list[str | None] = []
    for page in pages:
        for item in page:
            keys.append(item.key)
            updated.append(item.date_updated)
            created.append(item.date_created)
            leads.append(item.lead_id)
        if len(keys) >= BATCH_ROWS:
            yield _table(keys, updated, created, leads)
            keys, updated, created, leads = [], [], [], []
    if keys:
        yield _table(keys, updated, created, leads)


def _stored_batches(pages: Iterable[list[tuple[Any, ...]]]) -> Iterator[pa.Table]:
    for page in pages:
        if page:
            yield pa.table({
                "key": pa.array([str(row[0]) for row in page], pa.string()),
                "updated": pa.array([_moment(row[1]) for row in page], TIMESTAMP),
                "lead_id": pa.array([None if row[2] is None else str(row[2]) for row in page],
                                    pa.string())})


def _moment(value: Any) -> datetime | None:
    """A stored `date_updated`: a timestamp, or text where a destination kept it so."""
    return value if isinstance(value, datetime) or value is None else to_utc(value)


def _key_batches(keys: Collection[str]) -> Iterator[pa.Table]:
    if keys:
        yield pa.table({"key": pa.array(list(keys), pa.string())})


def _table(keys: list[str], updated: list[datetime | None], created: list[datetime | None],
           leads: list[str | None]) -> pa.Table:
    return pa.table({"key": pa.array(keys, pa.string()), "updated": pa.array(updated, TIMESTAMP),
                     "created": pa.array(created, TIMESTAMP),
                     "lead_id": pa.array(leads, pa.string())})
