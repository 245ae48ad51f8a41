"""Benchmark: incremental runs through the Event Log after K changes, beside a full load.

    .venv/bin/python bench/incremental.py [--leads 20000] [--changes 100,1000,10000]

One seeded fake organisation is served from this process; every sync is `close-sync run` in a
subprocess of its own (its own interpreter, so the fake's threads do not compete with it for
the GIL), into its own DuckDB file. Two pipelines follow the same organisation, one per reading
of the docs the connector must handle:

- strict: the Event Log refuses a date-only filter (so it is read per object type and action,
  ~90 queries), and only `/task/` filters by `id__in`;
- lenient: a date-only window is accepted and every list endpoint filters by `id__in`.

Each pipeline first loads the organisation in full (the export). Then, for K = 0 (the floor:
what a run costs when nothing changed), and each K given: K random changes (creates, updates,
deletes, merges, custom field changes: `fake.churn`), then one incremental run per pipeline.
Per run: the run's own wall time (as `close-sync` reports it, without interpreter start), its
peak RSS, the events in its window (from its log), and its requests by kind, beside the cost
the issue expects: ceil(events / 50) event pages + batched fetches + the small refreshes.
After the last run both pipelines are compared with the organisation, table by table (the
tests' invariant), so the numbers are those of correct runs.

Results: `bench/INCREMENTAL.md` (overwritten) and `bench/out/incremental.json`.
Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from common import OUT, ROOT, machine_facts, mismatches, reported, sync_env

from close_fake import EventSettings, FakeClose, FakeOrg, RequestRecord, generate_org
from close_fake.churn import DEFAULT_WEIGHTS, random_changes

RESULTS_MD = ROOT / "bench" / "INCREMENTAL.md"
RESULTS_JSON = OUT / "incremental.json"
SEED = 3
PAGE = 50
READINGS = {
    "strict": {"events": EventSettings(), "id_filters": "documented"},
    "lenient": {"events": EventSettings(filters="unfiltered"), "id_filters": "all"},
}
# The child: the CLI, then its own peak RSS (VmHWM) on a last line.
CHILD = ("import re, sys\nfrom close_source.cli import main\nrc = main(sys.argv[1:])\n"
         "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())\n"
         "print(f'VmHWM {int(hwm.group(1)) if hwm else 0}')\nsys.exit(rc)\n")
EVENT_ENTITIES = ("/lead/", "/contact/", "/opportunity/", "/task/", "/activity/")


@dataclass
class Run:
    reading: str
    changes: int  # K; -1 for the full load
    wall_s: float  # the run's own, as close-sync reports it
    process_s: float  # the subprocess, interpreter start and imports included
    peak_rss_mb: float
    events: int
    requests: dict[str, int] = field(default_factory=dict)
    rows: int = 0  # written, as close-sync reports them

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def kind_of(record: RequestRecord) -> str:
    endpoint = record.endpoint or record.path
    if endpoint == "/event/":
        window = "date_updated__gte" in record.params or "_cursor" in record.params
        return "event pages" if window else "close's time"
    if "id__in" in record.params:
        return "id__in batches"
    if endpoint.endswith("{id}/") and endpoint.startswith(EVENT_ENTITIES):
        return "by id"
    if endpoint == "/data/search/":
        return "search"
    if endpoint.startswith("/export") or endpoint.startswith("/export-files"):
        return "export"
    if endpoint == "/activity/created/":
        return "created since"
    return "refreshes"


def sync(fake: FakeClose, workdir: Path, reading: str, changes: int,
         extra: tuple[str, ...] = (), settings: dict[str, str] | None = None) -> Run:
    first = len(fake.requests)
    env = {**sync_env(fake, workdir, 0.2), **(settings or {})}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", CHILD, "run", *extra], cwd=workdir, env=env,
                          capture_output=True, text=True)
    process_s = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"close-sync run failed ({reading}, K={changes}):\n"
                         f"{done.stderr[-4000:]}")
    seconds, rows = reported(done.stderr + done.stdout) or (process_s, 0)
    hwm = re.search(r"VmHWM (\d+)", done.stdout)
    events = sum(int(n) for n in re.findall(r"Event Log: (\d+) events since", done.stderr))
    requests = Counter(kind_of(record) for record in fake.requests[first:])
    return Run(reading, changes, seconds, process_s,
               int(hwm.group(1)) / 1024 if hwm else 0.0, events, dict(requests),
               rows)


NEW_FIELDS = 20  # custom fields created in one round of changes, at most


def churn_weights(k: int) -> dict[str, float]:
    """The fake's default mix, but at most ~20 new custom fields per round: at the default
    weight a round of 150,000 changes would create ~2,500 fields, and a table of thousands of
    custom columns is not what a weekend of bulk edits looks like (nor what memory is measured
    for; a wide table is tested in tests/end_to_end/test_wide_tables.py)."""
    total = sum(DEFAULT_WEIGHTS.values())
    return {"add_field": min(DEFAULT_WEIGHTS["add_field"], NEW_FIELDS * total / k)}


def change(org: FakeOrg, rng: random.Random, k: int) -> None:
    """K random changes spread over up to an hour of the organisation's clock, between two
    runs (K = 0: none)."""
    org.advance(timedelta(minutes=6))
    if k:
        step = timedelta(seconds=max(0.05, min(10.0, 3600.0 / k)))
        random_changes(org, rng, k, step=step, weights=churn_weights(k))
    org.advance(timedelta(seconds=30))


def expected(run: Run) -> int:
    """The issue's target: ceil(events/50) event pages + the batched fetches + the refreshes
    (these last two as measured: they are what the changes and the org's size ask for) + the
    newest-event query or queries that tell Close's time."""
    return (math.ceil(run.events / PAGE) + run.requests.get("id__in batches", 0)
            + run.requests.get("by id", 0) + run.requests.get("search", 0)
            + run.requests.get("created since", 0) + run.requests.get("refreshes", 0)
            + run.requests.get("close's time", 0))


def render(runs: list[Run], facts: dict[str, str], args: argparse.Namespace,
           generated_s: float, problems: dict[str, dict[str, list[str]]]) -> str:
    kinds = ["event pages", "close's time", "id__in batches", "by id", "search", "created since",
             "refreshes", "export"]
    lines = [
        "# Benchmark: incremental runs through the Event Log",
        "",
        f"`python bench/incremental.py --leads {args.leads} --changes {args.changes} "
        f"--readings {args.readings}` on "
        f"{facts['date']}: {facts['nproc']} x {facts['cpu']}, {facts['ram_gb']} GB RAM, "
        f"Python {facts['python']}, "
        f"dlt {facts['dlt']}, duckdb {facts['duckdb']}, httpx {facts['httpx']}.",
        "",
        f"A fake organisation of {args.leads:,} leads (seed {SEED}, generated in "
        f"{generated_s:.0f} s), served over loopback from the benchmark's process; each sync "
        "is `close-sync run` in its own process into its own DuckDB file. *strict*: the Event "
        "Log refuses a date-only filter (read per object type and action) and only `/task/` "
        "filters by `id__in`; *lenient*: a date-only window and `id__in` everywhere. K = 0 is "
        "the floor: a run after no change. Wall: the run's own time as `close-sync` reports "
        "it (interpreter start and imports, ~2-3 s, not included). Target: ceil(events/50) "
        "event pages + batched fetches + the refreshes. A row `<reading>: <tables>` is "
        "`close-sync run --resources <tables>` on a copy of that pipeline after the same "
        "changes, beside the run of every table.",
        "",
        "| reading | run | wall s | peak RSS MB | events | requests | target | "
        + " | ".join(kinds) + " |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in kinds)
        + " |",
    ]
    for run in runs:
        label = "full load (export)" if run.changes < 0 else f"K = {run.changes:,}"
        target = "" if run.changes < 0 else f"{expected(run):,}"
        lines.append(
            f"| {run.reading} | {label} | {run.wall_s:.1f} | {run.peak_rss_mb:.0f} | "
            f"{run.events:,} | {run.total:,} | {target} | "
            + " | ".join(f"{run.requests.get(kind, 0):,}" for kind in kinds) + " |")
    lines += ["", "Correctness after the last run (every table against the organisation):", ""]
    for reading, found in problems.items():
        lines.append(f"- {reading}: " + ("every table equal" if not found else
                                        f"MISMATCHES in {sorted(found)}"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--changes", default="100,1000,10000")
    parser.add_argument("--readings", default=",".join(READINGS),
                        help="readings of the docs to follow (strict,lenient)")
    parser.add_argument("--no-check", action="store_true", help="skip the final comparison")
    parser.add_argument("--subset", default="leads,calls",
                        help="tables of the subset run (`close-sync run --resources ...`)")
    parser.add_argument("--subset-after", type=int, default=1000,
                        help="K after which the subset run is measured, beside the full one")
    parser.add_argument("--history", action="store_true",
                        help="instead: what history costs (bench/history_costs.py)")
    args = parser.parse_args(argv)
    if args.history:
        from history_costs import measure

        measure(args)
        return
    ks = [0, *(int(k) for k in args.changes.split(",") if k)]
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    org = generate_org(seed=SEED, leads=args.leads)
    gc.freeze()  # the org lives as long as the run: keep the GC's full passes off it
    generated_s = time.monotonic() - started
    print(f"org: {args.leads} leads in {generated_s:.0f} s", flush=True)
    rng = random.Random(SEED)
    runs: list[Run] = []
    readings = {name: READINGS[name] for name in args.readings.split(",")}
    workdirs = {reading: OUT / f"incremental-{reading}" for reading in readings}
    servers = {reading: FakeClose(org, **settings) for reading, settings in readings.items()}
    try:
        for server in servers.values():
            server.start()
        for reading, workdir in workdirs.items():
            if workdir.exists():
                shutil.rmtree(workdir)
            workdir.mkdir(parents=True)
            runs.append(sync(servers[reading], workdir, reading, -1))
            print(f"{reading}: full load {runs[-1].wall_s:.1f} s, {runs[-1].total} requests",
                  flush=True)
        for k in ks:
            change(org, rng, k)
            for reading, workdir in workdirs.items():
                if k == args.subset_after and args.subset:
                    # the same changes, applied to a copy of the pipeline by a subset run
                    copy = workdir.with_name(workdir.name + "-subset")
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(workdir, copy)
                    runs.append(sync(servers[reading], copy, f"{reading}: {args.subset}", k,
                                     ("--resources", args.subset)))
                    print(f"{reading}: K={k} subset {args.subset}: {runs[-1].wall_s:.1f} s, "
                          f"{runs[-1].total} requests", flush=True)
                    shutil.rmtree(copy)
                runs.append(sync(servers[reading], workdir, reading, k))
                run = runs[-1]
                print(f"{reading}: K={k} {run.wall_s:.1f} s, {run.events} events, "
                      f"{run.total} requests (target {expected(run)})", flush=True)
        problems = {} if args.no_check else {
            reading: mismatches(org, workdir) for reading, workdir in workdirs.items()}
    finally:
        for server in servers.values():
            server.stop()
    facts = machine_facts()
    RESULTS_MD.write_text(render(runs, facts, args, generated_s, problems), encoding="utf-8")
    RESULTS_JSON.write_text(json.dumps({"facts": facts, "runs": [asdict(r) for r in runs],
                                        "problems": problems}, indent=2), encoding="utf-8")
    print(RESULTS_MD.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
