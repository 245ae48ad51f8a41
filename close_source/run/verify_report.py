"""A verify's report: one line per table for people, one JSON document for machines, and its
rows appended to `_verify_runs` so drift over time can be charted in SQL.

`_verify_runs` is loaded by a pipeline of its own (`<pipeline>_verify`) into the same dataset:
the sync's state and schema are never written by a verify, and `--full-refresh` keeps the
table.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt

from close_source.run.verify import DIFFERS, Report, TableResult

VERIFY_RUNS = "_verify_runs"


def as_text(report: Report, only_differing: bool = False) -> str:
    """`only_differing`: the tables that differ alone (what a heal then fixes)."""
    lines = [f"Verified dataset {report.dataset!r} ({report.destination}) against Close, "
             f"level {report.level}, at {_moment(report.close_time)} (Close's clock)."]
    lines.append(_freshness(report))
    if report.pending:
        lines.append("A run stopped before its data was loaded: the next run loads it first "
                     "(until then the tables lag behind what that run read).")
    header = ("table", "warehouse", "close", "missing", "extra", "stale", "since last run",
              "verdict")
    shown = report.differing if only_differing else report.tables
    rows = [header] + [_row(result) for result in shown]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines.append("")
    for row in rows:
        cells = [row[0].ljust(widths[0])] + \
            [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1], strict=True)] + \
            [row[-1]]
        lines.append("  ".join(cells).rstrip())
    for result in report.differing:
        named = "; ".join(f"{kind}: {', '.join(keys)}" for kind, keys in result.examples.items())
        if named:
            lines.append(f"  {result.table}: {named}")
    if any(not result.compared and not result.unreadable for result in shown):
        lines.append("  not counted: Close's lists give no total for these tables; "
                     "--level ids compares them")
    if report.healed:
        lines.append("")
        lines += [f"Healed {table}: {how}" for table, how in report.healed.items()]
    lines.append("")
    lines.append(_summary(report))
    return "\n".join(lines)


def as_json(report: Report) -> str:
    return json.dumps({
        "dataset": report.dataset, "destination": report.destination, "level": report.level,
        "verified_at": report.close_time.isoformat(),
        "last_run": {"read_until": report.read_until.isoformat() if report.read_until else None,
                     "age_seconds": _seconds(report.age),
                     "max_age_seconds": _seconds(report.max_age), "too_old": report.too_old},
        "tables": [{"table": result.table, "compared": result.compared or None,
                    "warehouse_rows": result.warehouse_rows,
                    "close_objects": result.close_objects, **result.drift,
                    "changed_since_last_run": result.since_last_run,
                    "verdict": result.verdict, "examples": result.examples}
                   for result in report.tables],
        "healed": report.healed, "pending_load": report.pending, "requests": report.requests,
        "seconds": round(report.seconds, 2), "exit_code": report.exit_code,
    }, indent=2)


def record(pipeline: dlt.Pipeline, report: Report, destination: Any) -> None:
    """The report's rows appended to `_verify_runs` in the pipeline's dataset (`destination`:
    the sync's, a DuckDB file named by its path, since its default name is the pipeline's)."""
    verified_at = report.close_time.astimezone(UTC)
    rows = [{"verified_at": verified_at, "level": report.level, "table_name": result.table,
             "compared": result.compared or None, "warehouse_rows": result.warehouse_rows,
             "close_objects": result.close_objects, **result.drift,
             "changed_since_last_run": result.since_last_run, "verdict": result.verdict,
             "read_until": report.read_until, "healed": result.table in report.healed}
            for result in report.tables]
    columns = {name: {"data_type": "bigint", "nullable": True}
               for name in ("close_objects", "missing", "extra", "stale")}
    columns["read_until"] = {"data_type": "timestamp", "nullable": True}
    recorder = dlt.pipeline(pipeline_name=f"{pipeline.pipeline_name}_verify",
                            destination=destination, dataset_name=pipeline.dataset_name,
                            pipelines_dir=str(Path(pipeline.working_dir).parent))
    recorder.run(dlt.resource(rows, name=VERIFY_RUNS, write_disposition="append",
                              columns=columns))  # type: ignore[arg-type]


def _row(result: TableResult) -> tuple[str, ...]:
    def number(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    drift = [number(result.drift[kind]) for kind in ("missing", "extra", "stale")]
    verdict = result.verdict
    if result.unreadable:
        verdict += f" ({result.unreadable}: the sync skips it too)"
    elif result.compared == "count" and verdict != DIFFERS:
        verdict += " (by count)"
    return (result.table, f"{result.warehouse_rows:,}", number(result.close_objects), *drift,
            f"{result.since_last_run:,}", verdict)


def _freshness(report: Report) -> str:
    if report.read_until is None:
        return "Last run: none recorded in the destination."
    text = (f"Last run read Close up to {_moment(report.read_until)} "
            f"({_duration(report.age)} ago)")
    if report.max_age is not None:
        text += (f": older than --max-age {_duration(report.max_age)}" if report.too_old
                 else f", within --max-age {_duration(report.max_age)}")
    return text + "."


def _summary(report: Report) -> str:
    differing = report.differing
    verdict = (f"{len(differing)} table(s) differ from Close: "
               f"{', '.join(result.table for result in differing)}." if differing else
               "Every table compared equals Close" +
               (" (changes since the last run aside)." if any(
                   result.since_last_run for result in report.tables) else "."))
    if report.too_old:
        verdict += " The last run is older than --max-age."
    return (f"{verdict}\n{report.requests} requests to Close in {report.seconds:.1f}s; "
            f"exit code {report.exit_code}.")


def _moment(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(span: timedelta | None) -> str:
    if span is None:
        return "unknown"
    seconds = int(span.total_seconds())
    if abs(seconds) < 120:
        return f"{seconds}s"
    if abs(seconds) < 7200:
        return f"{seconds // 60}m"
    if abs(seconds) < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _seconds(span: timedelta | None) -> float | None:
    return None if span is None else round(span.total_seconds(), 1)
