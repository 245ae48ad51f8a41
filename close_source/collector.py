"""dlt's progress collector for our pipelines: one stage line per step of a run (extract,
normalize, load), and dlt's counters on the live display when one is up.

dlt calls `update` with its counters (extract: rows per table and the resources left;
normalize: files; load: jobs) and `on_end_trace_step` once per step with the step's info.
dlt's own `LogCollector` dumps every counter every few seconds: 40 lines a block, the flood a
scheduler's log does not want.
"""

from __future__ import annotations

from typing import Any, Protocol

from dlt.common.runtime.collector_base import Collector

from close_source.stages import TALLY, stage


class Counters(Protocol):
    """A live display of dlt's counters: one step at a time."""

    def begin(self, step: str) -> None: ...

    def count(self, name: str, inc: int, total: int | None, inc_total: int | None) -> None: ...

    def end(self) -> None: ...


_counters: Counters | None = None


def show_on(counters: Counters | None) -> None:
    global _counters
    _counters = counters


class RunCollector(Collector):
    """Stateless between steps: a pipeline keeps it for all its runs."""

    def __init__(self) -> None:
        self.step = ""

    def update(self, name: str, inc: int = 1, total: int | None = None,
               inc_total: int | None = None, message: str | None = None,
               label: str | None = None) -> None:
        if _counters is not None and not label:  # labels: dlt's failed jobs, said elsewhere
            _counters.count(name, inc, total, inc_total)

    def _start(self, step: str) -> None:
        if _counters is not None:
            _counters.begin(step)

    def _stop(self) -> None:
        if _counters is not None:
            _counters.end()

    def on_end_trace_step(self, trace: Any, step: Any, pipeline: Any, step_info: Any,
                          send_state: bool) -> None:
        if step.step not in STAGES:
            return  # "run" repeats the three; "sync" restores state
        seconds = (step.finished_at - step.started_at).total_seconds()
        if step.step_exception:
            stage(step.step, f"failed after {seconds:.1f}s", seconds=seconds, failed=True)
            return
        text, numbers = STAGES[step.step](step_info)
        stage(step.step, f"{text} in {seconds:.1f}s", seconds=round(seconds, 3), **numbers)

    def __deepcopy__(self, memo: dict[int, Any]) -> RunCollector:
        return self  # dlt copies a pipeline's collector when the pipeline is renamed


def _extracted(info: Any) -> tuple[str, dict[str, Any]]:
    rows: dict[str, int] = {}
    for metrics in info.metrics.values():
        for step_metrics in metrics:
            for table, table_metrics in step_metrics["table_metrics"].items():
                if not table.startswith("_dlt"):
                    rows[table] = rows.get(table, 0) + table_metrics.items_count
    total, markers = sum(rows.values()), sum(TALLY.tombstones.values())
    said = f" ({markers:,} of them delete markers)" if markers else ""
    return (f"{total:,} rows{said} of {sum(1 for n in rows.values() if n)} tables",
            {"rows": total, "tables": rows, "delete_markers": markers})


def _normalized(info: Any) -> tuple[str, dict[str, Any]]:
    rows = {table: count for table, count in info.row_counts.items()
            if not table.startswith("_dlt")}
    TALLY.normalized(rows)  # what the summary adds up: every package this run loads
    total = sum(rows.values())
    return (f"{total:,} rows of {sum(1 for n in rows.values() if n)} tables",
            {"rows": total, "tables": rows})


def _loaded(info: Any) -> tuple[str, dict[str, Any]]:
    jobs = sum(len(package.jobs.get("completed_jobs", [])) for package in info.load_packages)
    failed = sum(len(package.jobs.get("failed_jobs", [])) for package in info.load_packages)
    where = f"{info.destination_name} dataset {info.dataset_name}"
    return (f"{jobs} jobs into {where}" + (f", {failed} failed" if failed else ""),
            {"jobs": jobs, "failed_jobs": failed, "destination": info.destination_name,
             "dataset": info.dataset_name})


STAGES = {"extract": _extracted, "normalize": _normalized, "load": _loaded}
