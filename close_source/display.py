"""The live display on a terminal: one rich progress display that our own long work
(`progress.py`, advanced from worker threads) and dlt's counters (`collector.py`) both feed.

It is up while there is something to show and gone (transient) between the steps, so that what
prints to stdout never meets it. Log records print through the same console (`logs.py`):
above the display, never through it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from close_source import progress as work

DETAIL_EVERY = 0.25  # seconds: a detail may cost something to say (rows per table)
ROW_LINES = 2  # lines of rows per table under the bars


class _Rich(Progress):
    """rich's Progress, with the rows per table extracted so far under its bars."""

    def __init__(self, *columns: Any, rows: Callable[[], str], **options: Any) -> None:
        self._rows_now = rows  # before rich's own init: it renders once
        super().__init__(*columns, **options)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if text := self._rows_now():
            yield Text(text, style="dim", overflow="ellipsis")


@dataclass
class _Work:
    task: TaskID
    detail: str = ""
    detailed_at: float = 0.0


class Display:
    """`progress.Board` and `collector.Counters` on one rich display."""

    def __init__(self, console: Console) -> None:
        self.console = console
        # never taken by rich's refresh thread: it renders holding rich's locks
        self._lock = threading.RLock()
        self._rows_lock = threading.Lock()  # the one lock rendering takes
        self._shown: set[TaskID] = set()  # on the display: it is up while there are any
        self._step = ""
        self._counters: dict[str, TaskID] = {}  # dlt's, of the step
        self._totals: dict[TaskID, int] = {}  # of dlt's counters: dlt adds to them
        self._rows: dict[str, int] = {}  # extracted per table, in this step
        self._rich = _Rich(
            SpinnerColumn(), TextColumn("{task.description}", table_column=_cut(36)),
            BarColumn(bar_width=24), TaskProgressColumn(),
            TextColumn("{task.fields[amount]}", table_column=_cut(60)),
            TimeRemainingColumn(compact=True), rows=self._rows_line, console=console,
            transient=True, redirect_stdout=False, refresh_per_second=4)

    # ---- progress.Board: our own work -----------------------------------------------------

    def add(self, progress: work.Progress) -> _Work:
        return _Work(self._add(progress.what, progress.total, _amount(progress, "")))

    def show(self, task: _Work, progress: work.Progress,
             detail: Callable[[], str] | None) -> None:
        now = time.monotonic()
        if detail is not None and now - task.detailed_at >= DETAIL_EVERY:
            task.detail, task.detailed_at = detail(), now
        with self._lock:
            if task.task in self._shown:  # not finished meanwhile by another thread
                self._rich.update(task.task, completed=progress.done, total=progress.total,
                                  amount=_amount(progress, task.detail))

    def remove(self, task: _Work) -> None:
        self._remove(task.task)

    # ---- collector.Counters: dlt's, one step at a time --------------------------------------

    def begin(self, step: str) -> None:
        with self._lock:
            self._step = step.split(" ", 1)[0].lower()  # "Extract close", "Load close in 17.."

    def count(self, name: str, inc: int, total: int | None, inc_total: int | None) -> None:
        with self._lock:
            if self._step == "extract" and name != "Resources":
                if not name.startswith("_dlt"):
                    with self._rows_lock:
                        self._rows[name] = self._rows.get(name, 0) + inc
                return
            if self._step == "normalize" and name != "Files":
                return  # rows per table again: said by the stage line
            task = self._counters.get(name)
            if task is None:
                task = self._counters[name] = self._add(f"{self._step}: {name.lower()}",
                                                        total, "")
                self._totals[task] = total or 0
            elif task not in self._shown:
                return  # the display was stopped
            elif inc_total:
                self._totals[task] += inc_total
                self._rich.update(task, total=self._totals[task])
            self._rich.advance(task, inc)

    def end(self) -> None:
        """The step's counters go; its rows are shown a last time as the display goes."""
        with self._lock:
            counters, self._counters, self._step = self._counters, {}, ""
            self._totals.clear()
            for task in counters.values():
                self._remove(task)
        with self._rows_lock:
            self._rows = {}

    def stop(self) -> None:
        """Off the terminal, whatever is still shown (a command that failed)."""
        with self._lock:
            self._shown.clear()
            self._rich.stop()

    # ---- internals ------------------------------------------------------------------------

    def _add(self, description: str, total: float | None, amount: str) -> TaskID:
        with self._lock:
            if not self._shown:
                self._rich.start()
            task = self._rich.add_task(description, total=total, amount=amount)
            self._shown.add(task)
            return task

    def _remove(self, task: TaskID) -> None:
        with self._lock:
            if task not in self._shown:
                return  # the display was stopped (a failed command)
            self._shown.discard(task)
            self._rich.remove_task(task)
            if not self._shown:
                self._rich.stop()

    def _rows_line(self) -> str:
        width = self.console.width
        with self._rows_lock:
            rows = sorted(self._rows.items(), key=lambda item: (-item[1], item[0]))
        if not rows:
            return ""
        text = f"rows {sum(count for _, count in rows):,}: " + " · ".join(
            f"{table} {count:,}" for table, count in rows)
        room = width * ROW_LINES - width // 4  # lines wrap between words
        return text if len(text) <= room else text[:room - 1] + "…"


def _cut(width: int) -> Column:
    return Column(max_width=width, no_wrap=True, overflow="ellipsis")


def _amount(progress: work.Progress, detail: str) -> str:
    unit = f" {progress.unit}" if progress.unit else ""
    text = progress.amount(progress.done)
    if progress.total:
        text += f" of {progress.amount(progress.total)}"
    return text + unit + (f"  {detail}" if detail else "")
