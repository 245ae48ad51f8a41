"""Progress of long work: how much is done, how fast, and how long the rest will take where the
total is known. Shown on a live display when one is up (a terminal: `display.py`), otherwise
logged every few seconds (at INFO: a scheduler's log shows them with `-v` only).

dlt's own counters count items per resource; these say what a user of a long full load or
catch-up waits for: bytes of the export downloaded and decoded, rows shaped per table, events
of the Event Log window read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("close_source.progress")

PERIOD = 5.0  # seconds between two lines of one piece of work


def megabytes(amount: float) -> str:
    return f"{amount / 1e6:,.1f} MB"


def count(amount: float) -> str:
    return f"{amount:,.0f}"


class Board(Protocol):
    """A live display: one task per piece of work, advanced from any thread."""

    def add(self, progress: Progress) -> Any: ...

    def show(self, task: Any, progress: Progress, detail: Callable[[], str] | None) -> None: ...

    def remove(self, task: Any) -> None: ...


_board: Board | None = None


def show_on(board: Board | None) -> None:
    """Work started from now on goes to `board` (None: log lines again)."""
    global _board
    _board = board


class Progress:
    """One piece of long work: `advance` as it goes, `finish` when done; on a live display
    when one is up, else a line at most every `period` seconds.

    `total`, when known, gives the share done and an ETA at the rate so far; `detail` adds
    what the numbers alone do not say (rows per table, the time reached in a window)."""

    def __init__(self, what: str, total: float | None = None,
                 amount: Callable[[float], str] = count, unit: str = "",
                 period: float = PERIOD, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.amount, self.unit = what, total, amount, unit
        self.period, self.clock = period, clock
        self.done = 0.0
        self.started = self._last = clock()
        self._lock = threading.Lock()  # threads may share one piece of work
        self._board = _board
        self._task = _board.add(self) if _board is not None else None

    def advance(self, amount: float = 1, detail: Callable[[], str] | None = None) -> None:
        with self._lock:
            self.done += amount
        self.at(self.done, detail)

    def at(self, done: float, detail: Callable[[], str] | None = None) -> None:
        """The work is `done` far; shown, or logged if a line is due."""
        self.done = done
        if self._board is not None:
            self._board.show(self._task, self, detail)
            return
        now = self.clock()
        with self._lock:
            due = now - self._last >= self.period
            if due:
                self._last = now
        if due:
            log.info("%s", self.line(now, detail() if detail else None))

    def finish(self) -> None:
        """The work is over: off the display (a log line needs no ending)."""
        if self._board is not None:
            self._board.remove(self._task)
            self._board = None

    def line(self, now: float | None = None, detail: str | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        unit = f" {self.unit}" if self.unit else ""
        text = f"{self.what}: {self.amount(self.done)}"
        if self.total:
            share = min(self.done / self.total, 1.0)
            text += f" of {self.amount(self.total)}{unit} ({share:.0%})"
        else:
            text += unit
        text += f", {self.amount(rate)}{unit}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", about {duration((self.total - self.done) / rate)} left"
        if detail:
            text += f"; {detail}"
        return text


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
