"""A run's summary line: what a scheduler's log says last. Tables loaded, rows written and
deleted, requests to Close, the Event Log watermark, how long it took.

`summarised` wraps a run (the source's creation included: its preflight and plan are requests
too) and logs the line after it succeeded; a failed run ends with its error line instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt

from close_source.run import state as st
from close_source.stages import SUMMARY_LOGGER, TALLY

log = logging.getLogger(SUMMARY_LOGGER)


@dataclass(frozen=True)
class Summary:
    command: str
    seconds: float
    tables: dict[str, int]  # rows written per table the run's load touched
    rows_deleted: int  # rows of objects deleted in Close, removed (or marked, soft deletes)
    requests: int
    watermark: datetime | None  # the Event Log applied up to, for the run's tables
    destination: str
    dataset: str

    def line(self) -> str:
        mark = f"Event Log watermark {self.watermark.isoformat()}" if self.watermark \
            else "no Event Log watermark"
        return (f"summary: {self.command} ok in {self.seconds:.1f}s: {len(self.tables)} tables "
                f"loaded, {self.rows_written:,} rows written, {self.rows_deleted:,} rows "
                f"deleted, {self.requests:,} requests to Close, {mark} "
                f"({self.destination} dataset {self.dataset})")

    @property
    def rows_written(self) -> int:
        return sum(self.tables.values())

    def numbers(self) -> dict[str, Any]:
        return {"command": self.command, "ok": True, "seconds": round(self.seconds, 3),
                "tables_loaded": len(self.tables), "rows_written": self.rows_written,
                "rows_deleted": self.rows_deleted, "requests": self.requests,
                "event_log_watermark": self.watermark.isoformat() if self.watermark else None,
                "destination": self.destination, "dataset": self.dataset,
                "tables": self.tables}


def summary_of(pipeline: dlt.Pipeline, command: str, seconds: float) -> Summary:
    """From the counts of the run (`stages.TALLY`) and the state it committed. A table is
    touched by rows or delete markers (a table with deletes only: 0 rows written)."""
    tables = {table: rows - TALLY.tombstones.get(table, 0)
              for table, rows in sorted(TALLY.rows.items()) if rows}
    marks = st.watermarks(pipeline.state.get("sources", {}).get(st.SOURCE) or {})
    reached = [marks[table].newest_event for table in TALLY.tables if table in marks]
    return Summary(command, seconds, tables, TALLY.deleted, TALLY.requests,
                   min(reached) if reached else None,
                   pipeline.destination.destination_name, pipeline.dataset_name)


@contextmanager
def summarised(pipeline: dlt.Pipeline, command: str = "run") -> Iterator[None]:
    """The run inside, counted from its start; its summary logged when it succeeded."""
    TALLY.reset()
    started = time.monotonic()
    yield
    summary = summary_of(pipeline, command, time.monotonic() - started)
    log.info("%s", summary.line(), extra={"close": summary.numbers()})
