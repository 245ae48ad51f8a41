"""What history costs: `python bench/incremental.py --history [--leads 20000] [--changes 10000]`.

Three pipelines follow one fake organisation (the lenient reading of the docs), each loaded in
full first: `field_changes = false`; the default (`field_changes` on); and `field_changes` with
`history = ["leads", "opportunities"]`. After K = 0 (no change: the floor) and each K given,
K random changes, then one incremental run of each. Per run: wall time, peak RSS, requests
(history must ask Close for nothing more: it comes from the events a run reads anyway) and the
rows written; after the last run, the rows of `field_changes` and of the history tables, and
every table and every version checked against the organisation.

Results: `bench/HISTORY.md` (overwritten) and `bench/out/history.json`. Not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
from dataclasses import asdict
from pathlib import Path

import duckdb
from common import OUT, ROOT, machine_facts, mismatches
from incremental import READINGS, SEED, Run, change, sync

from close_fake import FakeClose, generate_org

RESULTS_MD = ROOT / "bench" / "HISTORY.md"
RESULTS_JSON = OUT / "history.json"
VERSIONED = ["leads", "opportunities"]
VARIANTS = {
    "field_changes off": {"SOURCES__CLOSE__FIELD_CHANGES": "false"},
    "field_changes on (default)": {},
    "field_changes + history": {"SOURCES__CLOSE__HISTORY": json.dumps(VERSIONED)},
}
TABLES = ("field_changes", *(f"{table}_history" for table in VERSIONED))


def measure(args: argparse.Namespace) -> None:
    ks = [0, *(int(k) for k in args.changes.split(",") if k)]
    OUT.mkdir(parents=True, exist_ok=True)
    org = generate_org(seed=SEED, leads=args.leads)
    gc.freeze()
    rng = random.Random(SEED)
    workdirs = {name: OUT / f"history-{index}" for index, name in enumerate(VARIANTS)}
    runs: list[Run] = []
    with FakeClose(org, **READINGS["lenient"]) as fake:
        for name, workdir in workdirs.items():
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            runs.append(sync(fake, workdir, name, -1, settings=VARIANTS[name]))
            print(f"{name}: full load {runs[-1].wall_s:.1f} s", flush=True)
        for k in ks:
            change(org, rng, k)
            for name, workdir in workdirs.items():
                runs.append(sync(fake, workdir, name, k, settings=VARIANTS[name]))
                print(f"{name}: K={k} {runs[-1].wall_s:.1f} s, {runs[-1].total} requests, "
                      f"{runs[-1].rows} rows", flush=True)
        sizes = {name: _sizes(workdir) for name, workdir in workdirs.items()}
        problems = {} if args.no_check else {
            name: _problems(org, workdir, history=bool(VARIANTS[name].get(
                "SOURCES__CLOSE__HISTORY"))) for name, workdir in workdirs.items()}
    facts = machine_facts()
    RESULTS_MD.write_text(_render(runs, sizes, problems, facts, args), encoding="utf-8")
    RESULTS_JSON.write_text(json.dumps({"facts": facts, "runs": [asdict(r) for r in runs],
                                        "sizes": sizes, "problems": problems}, indent=2),
                            encoding="utf-8")
    print(RESULTS_MD.read_text(encoding="utf-8"))


def _sizes(workdir: Path) -> dict[str, int]:
    with duckdb.connect(str(workdir / "close_crm.duckdb"), read_only=True) as db:
        present = {row[0] for row in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'close'"
        ).fetchall()}
        return {table: db.execute(f"SELECT count(*) FROM close.{table}").fetchall()[0][0]
                for table in TABLES if table in present}


def _problems(org: object, workdir: Path, history: bool) -> list[str]:
    found = [f"{table}: {problems[:2]}" for table, problems in mismatches(org, workdir).items()]
    if history:
        from close_source.pipeline import make_pipeline
        from tests.history_checks import version_mismatches

        os.environ["DLT_DATA_DIR"] = str(workdir / "dlt_data")
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            found += version_mismatches(make_pipeline(progress=False), VERSIONED)
        finally:
            os.chdir(cwd)
    return found


def _render(runs: list[Run], sizes: dict[str, dict[str, int]], problems: dict[str, list[str]],
            facts: dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        "# Benchmark: what history costs",
        "",
        f"`python bench/incremental.py --history --leads {args.leads} --changes {args.changes}` "
        f"on {facts['date']}: {facts['nproc']} x {facts['cpu']}, {facts['ram_gb']} GB RAM, "
        f"Python {facts['python']}, dlt {facts['dlt']}, duckdb {facts['duckdb']}.",
        "",
        f"Three pipelines follow one fake organisation of {args.leads:,} leads (seed {SEED}, "
        "the lenient reading: a date-only Event Log window), each into its own DuckDB file "
        "through `close-sync run` in a process of its own. K = 0: a run after no change. "
        "Wall: the run's own time. Rows: what `close-sync` reports written.",
        "",
        "| pipeline | run | wall s | peak RSS MB | events | requests | rows written |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        label = "full load (export)" if run.changes < 0 else f"K = {run.changes:,}"
        lines.append(f"| {run.reading} | {label} | {run.wall_s:.1f} | {run.peak_rss_mb:.0f} | "
                     f"{run.events:,} | {run.total:,} | {run.rows:,} |")
    lines += ["", "Rows after the last run:", "",
              "| pipeline | " + " | ".join(TABLES) + " |",
              "| --- | " + " | ".join("---:" for _ in TABLES) + " |"]
    for name, counts in sizes.items():
        lines.append(f"| {name} | " + " | ".join(f"{counts[t]:,}" if t in counts else "-"
                                                 for t in TABLES) + " |")
    lines += ["", "Correctness after the last run (every table, and every version):", ""]
    for name, found in problems.items():
        lines.append(f"- {name}: " + ("equal" if not found else f"MISMATCHES {found[:5]}"))
    return "\n".join(lines) + "\n"
