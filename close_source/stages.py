"""One line per stage of a run (plan, extract, normalize, load, settle) and what the run's
summary adds up: the lines a scheduler's log keeps when nobody watched the run.

The stages log on `close_source.stage`, the summary on `close_source.summary`: a log setup
keeps those and the warnings, and drops the details (`close_source.*` at INFO) unless asked.
A record's `close` attribute holds its numbers for a JSON log.

What a line cannot see where it is logged comes in by a `note` (the Event Log window read, the
export's size, the tables rebuilt after a load): logged as a detail where it happens, then
told once more by the next stage line. `TALLY` counts what only lower stages see: requests
to Close, rows of deleted objects, delete markers among the rows written.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

STAGE_LOGGER = "close_source.stage"
SUMMARY_LOGGER = "close_source.summary"
MAX_NOTES = 20  # a run that is not logged by stages (dlt's own pipeline) keeps no more

stage_log = logging.getLogger(STAGE_LOGGER)


class Tally:
    """Counts of one run, from any thread; `reset` when a run begins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0  # sent to Close: retries and export downloads included
            self.deleted = 0  # rows of objects deleted in Close, removed or marked deleted
            # per table, delete markers: rows dlt receives that delete rows, not write them
            self.tombstones: dict[str, int] = {}
            self.tables: list[str] = []  # the tables the run planned
            self.rows: dict[str, int] = {}  # per table: rows normalized, every package loaded
            self.notes: list[str] = []

    def request(self) -> None:
        with self._lock:
            self.requests += 1

    def count_deleted(self, rows: int) -> None:
        with self._lock:
            self.deleted += rows

    def tombstone(self, table: str) -> None:
        with self._lock:
            self.tombstones[table] = self.tombstones.get(table, 0) + 1

    def normalized(self, rows: dict[str, int]) -> None:
        with self._lock:
            for table, count in rows.items():
                self.rows[table] = self.rows.get(table, 0) + count

    def note(self, text: str) -> None:
        with self._lock:
            self.notes = [*self.notes, text][-MAX_NOTES:]

    def take_notes(self) -> list[str]:
        with self._lock:
            notes, self.notes = self.notes, []
        return notes


TALLY = Tally()


def note(logger: logging.Logger, message: str, *args: object) -> None:
    """A detail now (INFO on `logger`), and a part of the next stage line."""
    logger.info(message, *args)
    TALLY.note(message % args if args else message)


def stage(name: str, text: str, **numbers: Any) -> None:
    """The stage's one line: `name: text; notes`."""
    notes = TALLY.take_notes()
    line = f"{name}: {text}" + (f"; {'; '.join(notes)}" if notes else "")
    stage_log.info("%s", line, extra={"close": {"stage": name, **numbers,
                                                **({"notes": notes} if notes else {})}})


def planned(tables: Iterable[str], text: str) -> None:
    """The plan's line; its tables are the run's (the summary's Event Log watermark)."""
    TALLY.tables = list(tables)
    stage("plan", text, tables=len(TALLY.tables))
