"""Benchmark: what `close-sync verify` costs, beside the full sync it checks.

    .venv/bin/python bench/verify.py [--sizes 20000,100000] [--levels counts,ids]
        [--destination duckdb|postgres] [--base DIR] [--merge] [--report bench/VERIFY.md]

For each org size: a seeded fake organisation (the defaults of bench/incremental.py: seed 3,
`generate_org`'s 11 activities per lead) served from this process; one full `close-sync run`
into a fresh DuckDB file (or a new database of a throwaway PostgreSQL server), then, on that
pipeline and with nothing changed in Close, `close-sync verify --level <level> --json` for
each level. Every command is a subprocess of its own (its own interpreter, so the fake's
threads do not compete with it for the GIL). Per command: its exit code, the requests it sent
(verify's JSON `requests`; the fake's own count beside it), its own wall time (verify's JSON
`seconds`, the sync's summary line, "ok in X s") and the process's (interpreter start, imports and,
for verify, recording `_verify_runs` included), and its peak RSS (its `VmHWM`, read by the
child itself just before it exits).

With nothing changed, every table must come out `exact` (or `not counted` at level counts):
the verdicts are reported, so the numbers are those of correct runs. `--base DIR`: verify
also with another checkout's `close_source` (e.g. `git worktree add DIR <commit>`), on the
same pipeline, right after this checkout's: a before/after of a change to verify.

Results: `bench/VERIFY.md` (overwritten; `--merge` keeps the earlier rows of sizes, levels
and destinations not measured this time) and `bench/out/verify.json`. Not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import OUT, ROOT, machine_facts, repo_relative, reported, sync_env

from close_fake import FakeClose, generate_org

RESULTS_MD = ROOT / "bench" / "VERIFY.md"
RESULTS_JSON = OUT / "verify.json"
SEED = 3  # as bench/incremental.py
# a sync's and a verify's peak, at every size (memory bounded by batch size; issue 26)
RSS_TARGET_MB = 400.0
# The child: the CLI, then its own peak RSS (VmHWM) and CPU seconds on stderr's last line
# (stdout: the JSON).
CHILD = ("import os, re, sys\nfrom close_source.cli import main\nrc = main(sys.argv[1:])\n"
         "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())\n"
         "cpu = os.times().user + os.times().system\n"
         "print(f'VmHWM {int(hwm.group(1)) if hwm else 0} CPU {cpu:.1f}', file=sys.stderr)\n"
         "sys.exit(rc)\n")


@dataclass
class Measured:
    leads: int
    destination: str
    command: str  # "sync" | "verify counts" | "verify ids"
    exit_code: int
    own_s: float  # as the command reports it
    process_s: float  # the subprocess's wall clock
    cpu_s: float  # the subprocess's own CPU time: the rest of its wall time it waited (Close)
    peak_rss_mb: float
    requests: int  # as the command reports it (the sync: the fake's count)
    fake_requests: int
    by_endpoint: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)  # verify: tables per verdict
    differing: list[str] = field(default_factory=list)
    rows: int = 0  # the sync: rows written; verify: warehouse rows compared
    date: str = ""


def run_child(fake: FakeClose, workdir: Path, env: dict[str, str], args: list[str]
              ) -> tuple[subprocess.CompletedProcess[str], float, float, float, Counter[str]]:
    first = len(fake.requests)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=workdir, env=env,
                          capture_output=True, text=True, check=False)
    process_s = time.monotonic() - started
    hwm = re.search(r"VmHWM (\d+) CPU ([0-9.]+)\s*$", done.stderr)
    endpoints = Counter(record.endpoint or record.path for record in fake.requests[first:])
    return (done, process_s, int(hwm.group(1)) / 1024 if hwm else 0.0,
            float(hwm.group(2)) if hwm else 0.0, endpoints)


def sync(fake: FakeClose, workdir: Path, env: dict[str, str], leads: int, destination: str,
         extra: list[str]) -> Measured:
    done, process_s, peak, cpu, endpoints = run_child(fake, workdir, env, ["run", *extra])
    if done.returncode != 0:
        raise SystemExit(f"close-sync run failed ({leads} leads):\n{done.stderr[-4000:]}")
    seconds, rows = reported(done.stderr + done.stdout) or (process_s, 0)
    total = sum(endpoints.values())
    return Measured(leads, destination, "sync", done.returncode, seconds, process_s, cpu, peak,
                    total, total, dict(endpoints.most_common()), rows=rows)


def verify(fake: FakeClose, workdir: Path, env: dict[str, str], leads: int, destination: str,
           level: str, extra: list[str], base: Path | None = None) -> Measured:
    if base is not None:
        env = {**env, "PYTHONPATH": str(base)}
    done, process_s, peak, cpu, endpoints = run_child(
        fake, workdir, env, ["verify", "--level", level, "--json", *extra])
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"close-sync verify --level {level} gave no report "
                         f"(exit {done.returncode}):\n{done.stderr[-4000:]}") from None
    tables = report["tables"]
    return Measured(leads, destination, f"verify {level}" + (" (base)" if base else ""),
                    done.returncode,
                    float(report["seconds"]), process_s, cpu, peak, int(report["requests"]),
                    sum(endpoints.values()), dict(endpoints.most_common()),
                    dict(Counter(table["verdict"] for table in tables)),
                    [table["table"] for table in tables if table["verdict"] == "differs"],
                    sum(table["warehouse_rows"] for table in tables))


def measure_size(leads: int, levels: list[str], destination: str, base: Path | None
                 ) -> list[Measured]:
    started = time.monotonic()
    org = generate_org(seed=SEED, leads=leads)
    gc.freeze()  # the org lives as long as the size: keep the GC's full passes off it
    print(f"org: {leads:,} leads in {time.monotonic() - started:.0f} s", flush=True)
    workdir = OUT / f"verify-{leads}-{destination}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    server = None
    extra: list[str] = []
    results: list[Measured] = []
    try:
        with FakeClose(org) as fake:
            env = sync_env(fake, workdir, 0.2)
            if destination == "postgres":
                from tests.pg_server import PostgresServer, find_bindir

                server = PostgresServer(find_bindir()).start()
                env["DESTINATION__POSTGRES__CREDENTIALS"] = server.new_database()
                extra = ["--destination", "postgres"]
            results.append(sync(fake, workdir, env, leads, destination, extra))
            print(line(results[-1]), flush=True)
            for level in levels:
                for checkout in [None] + ([base] if base else []):
                    results.append(verify(fake, workdir, env, leads, destination, level,
                                          extra, checkout))
                    print(line(results[-1]), flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        del org
        gc.unfreeze()
        gc.collect()
    return results


def line(m: Measured) -> str:
    return (f"{m.leads:,} leads, {m.command}: exit {m.exit_code}, {m.own_s:.1f} s "
            f"({m.process_s:.1f} s process, {m.cpu_s:.1f} s CPU), {m.peak_rss_mb:.0f} MB, "
            f"{m.requests:,} requests"
            + (f", verdicts {m.verdicts}" if m.verdicts else ""))


def render(results: list[Measured], facts: dict[str, str], command: str) -> str:
    syncs = {(m.leads, m.destination): m for m in results if m.command == "sync"}
    lines = [
        "# Benchmark: what `close-sync verify` costs",
        "",
        f"`{command}`, last on {facts['date']}: {facts['nproc']} x {facts['cpu']}, "
        f"{facts['ram_gb']} GB RAM, Python {facts['python']}, dlt {facts['dlt']}, "
        f"duckdb {facts['duckdb']}, httpx {facts['httpx']}.",
        "",
        f"A fake organisation (seed {SEED}, `generate_org` defaults: 2 contacts, 1 opportunity, "
        "2 tasks and 11 activities per lead) served over loopback from the benchmark's process; "
        "one full `close-sync run` (a first load: the Export API) into a fresh destination, "
        "then `close-sync verify --level counts|ids --json` on that pipeline with nothing "
        "changed in Close. Each command is a process of its own. *own s*: the time the command "
        "reports (verify's `seconds`: from reading the destination to the last comparison); "
        "*process s*: the process's wall clock (interpreter start, imports and, for verify, "
        "recording `_verify_runs` included); *CPU s*: the process's own CPU time (the rest "
        "of its wall time it waited for the fake Close, which runs in the benchmark's "
        "process). *Peak RSS*: the process's VmHWM. *vs sync*: verify's process time over "
        f"the full sync's. Target: peak RSS under {RSS_TARGET_MB:.0f} MB at every size.",
        "",
        "| leads | destination | command | exit | own s | process s | CPU s | vs sync "
        "| peak RSS MB | requests | rows | verdicts | date |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for m in results:
        base = syncs.get((m.leads, m.destination))
        ratio = "" if m.command == "sync" or base is None else \
            f"{100 * m.process_s / base.process_s:.0f}%"
        verdicts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(m.verdicts.items()))
        if m.differing:
            verdicts += f" (differ: {', '.join(m.differing)})"
        cpu = f"{m.cpu_s:.1f}" if m.cpu_s else "-"
        lines.append(
            f"| {m.leads:,} | {m.destination} | {m.command} | {m.exit_code} | {m.own_s:.1f} | "
            f"{m.process_s:.1f} | {cpu} | {ratio} | {m.peak_rss_mb:.0f} | {m.requests:,} | "
            f"{m.rows:,} | {verdicts} | {m.date} |")
    lines += ["", "Requests per endpoint (the fake's count; the most frequent five):", ""]
    for m in results:
        top = ", ".join(f"`{endpoint}` {n:,}" for endpoint, n in list(m.by_endpoint.items())[:5])
        lines.append(f"- {m.leads:,} leads, {m.destination}, {m.command}: {top}")
    return "\n".join(lines) + "\n"


def _shown(argv: list[str]) -> list[str]:
    """The arguments as the report records them: `--base` as DIR (a scratch checkout, no
    machine's path), paths inside this checkout relative to it."""
    shown: list[str] = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == "--base":
            arg = "DIR"
        elif arg.startswith("--base="):
            arg = "--base=DIR"
        shown.append(repo_relative(arg))
    return shown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--levels", default="counts,ids")
    parser.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--base", type=Path,
                        help="another checkout whose verify to measure beside this one's")
    parser.add_argument("--merge", action="store_true",
                        help="keep the earlier results of what this run does not measure")
    parser.add_argument("--report", type=Path, default=RESULTS_MD)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    levels = [level for level in args.levels.split(",") if level]
    facts = machine_facts()
    results: list[Measured] = []
    for leads in sizes:
        for m in measure_size(leads, levels, args.destination,
                              args.base.resolve() if args.base else None):
            m.date = facts["date"][:10]
            results.append(m)
    if args.merge and RESULTS_JSON.exists():
        measured = {(m.leads, m.destination, m.command) for m in results}
        earlier = [Measured(**{"cpu_s": 0.0, **m})  # rows from before CPU time was measured
                   for m in json.loads(RESULTS_JSON.read_text())["results"]]
        results = [m for m in earlier if (m.leads, m.destination, m.command) not in measured] \
            + results
    results.sort(key=lambda m: (m.destination, m.leads, m.command != "sync", m.command))
    shown = _shown(argv if argv is not None else sys.argv[1:])
    command = "python bench/verify.py " + " ".join(shown)
    args.report.write_text(render(results, facts, command.strip()), encoding="utf-8")
    RESULTS_JSON.write_text(json.dumps({"facts": facts, "results": [asdict(m) for m in results]},
                                       indent=2), encoding="utf-8")
    print(args.report.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
