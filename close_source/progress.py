"""Progress of long work, logged every few seconds: how much is done, how fast, and how long
the rest will take where the total is known.

dlt's own progress log counts items per resource; these lines say what a user of a long full
load or catch-up waits for: bytes of the export downloaded and decoded, rows shaped per table,
events of the Event Log window read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("close_source.progress")

PERIOD = 5.0  # seconds between two lines of one piece of work


def megabytes(amount: float) -> str:
    return f"{amount / 1e6:,.1f} MB"


def count(amount: float) -> str:
    return f"{amount:,.0f}"


class Progress:
    """One piece of long work: `advance` as it goes; a line at most every `period` seconds.

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

    def advance(self, amount: float = 1, detail: Callable[[], str] | None = None) -> None:
        with self._lock:
            self.done += amount
        self.at(self.done, detail)

    def at(self, done: float, detail: Callable[[], str] | None = None) -> None:
        """The work is `done` far; logs if a line is due."""
        self.done = done
        now = self.clock()
        with self._lock:
            due = now - self._last >= self.period
            if due:
                self._last = now
        if due:
            log.info("%s", self.line(now, detail() if detail else None))

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
