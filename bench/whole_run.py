"""Benchmark: the memory and time of a whole `close-sync run`, as a user runs it, against the
fake Close served by another process.

    .venv/bin/python bench/whole_run.py [--leads 10000,30000] [--activities 11] [--repeat 1]
        [--postgres] [--env NAME=VALUE ...] [--base DIR] [--report bench/WHOLE_RUN.md]

For each org size, `python -m close_fake` serves a seeded generated organisation in a process
of its own (the org, gigabytes at 100,000 leads, counts in no measured process). Against it,
`close-sync run -v` runs in a subprocess, exactly as a user runs it: a fresh working directory,
no settings but the fake's key and URL, the DuckDB default destination (`--postgres`: a new
database of a throwaway PostgreSQL server, tests/pg_server.py). A full load: the export job
polled and downloaded over HTTP, the list-endpoint tables read in parallel meanwhile, the
references, normalize and load.

Measured from outside, so the run is not instrumented: its peak RSS is the kernel's
(`ru_maxrss` of the reaped child, its VmHWM), and VmRSS is sampled every 50 ms from
/proc; each sample is told to the stage the run was in by the stage lines of its log
(`extract: ...`, `normalize: ...`, `load: ...`), timed as they arrive. `--env` sets
settings or levers for the runs (`EXTRACT__MAX_PARALLEL_ITEMS=5`, `MALLOC_ARENA_MAX=2`); `--base
DIR` measures another checkout alternately with this one. Not a test: nothing asserts, the
target (400 MB) is reported.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from common import ROOT, machine_facts, repo_relative, reported, sync_env

SEED = 1
API_KEY = "whole-run-bench-key"
RSS_TARGET_MB = 400.0
POLL_INTERVAL = 1.0  # the connector's default `export_poll_interval`
STAGES = ("plan", "extract", "normalize", "load", "settle")
STAGE_LINE = re.compile(rf"\b({'|'.join(STAGES)}): ")
RAN_OUT = re.compile(r"ran out of its (\d+) MB")
LIMIT_LINE = re.compile(r"DuckDB loads with (\d+) MB")


@dataclass
class RunResult:
    """One `close-sync run` of one org size."""

    leads: int
    label: str
    wall_s: float  # the process, from start to exit
    run_s: float  # the run's own summary line
    rows: int
    peak_rss_mb: float  # ru_maxrss of the reaped child: its VmHWM
    stage_peaks: dict[str, float] = field(default_factory=dict)  # sampled VmRSS per stage
    stage_s: dict[str, float] = field(default_factory=dict)
    limit_mb: int | None = None
    ran_out: list[int] = field(default_factory=list)
    log: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, line)


class FakeServer:
    """`python -m close_fake` in its own process, until `stop`; `options` are more of its
    command line (`--latency-ms 150`)."""

    def __init__(self, leads: int, activities: int, options: Sequence[str] = (),
                 seed: int = SEED) -> None:
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "close_fake", "--port", "0", "--seed", str(seed),
             "--leads", str(leads), "--activities-per-lead", str(activities),
             "--api-key", API_KEY, *options],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"at (http://\S+)", line)
        if found is None:
            self.stop()
            sys.exit(f"the fake did not start: {line!r}")
        self.base_url = found.group(1)
        self.api_key = API_KEY
        self.generate_s = time.perf_counter() - started

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


class Sampler(threading.Thread):
    """VmRSS of another process every `period` seconds."""

    def __init__(self, pid: int, period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.period = period
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.period):
            try:
                text = self.status.read_text()
            except OSError:
                return
            found = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
            if found:
                self.samples.append((time.monotonic(), int(found.group(1)) / 1024))


def read_lines(stream: TextIO, lines: list[tuple[float, str]]) -> None:
    for line in stream:
        lines.append((time.monotonic(), line))


def run_once(root: Path, fake: Any, leads: int, label: str, env_extra: dict[str, str],
             dsn: str | None) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="whole-run-") as scratch:
        work = Path(scratch)
        env = sync_env(fake, work, POLL_INTERVAL)
        env.update(env_extra, PYTHONPATH=str(root))
        command = [sys.executable, "-m", "close_source.cli", "run", "-v"]
        if dsn:
            command += ["--destination", "postgres"]
            env["DESTINATION__POSTGRES__CREDENTIALS"] = dsn
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        sampler = Sampler(process.pid)
        sampler.start()
        lines: list[tuple[float, str]] = []
        assert process.stdout is not None
        reader = threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True)
        reader.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        ended = time.monotonic()
        sampler.done.set()
        reader.join()
        sampler.join()
    output = "".join(line for _, line in lines)
    if process.returncode != 0:
        sys.exit(f"close-sync failed ({label}):\n{output[-3000:]}")
    seconds, rows = reported(output) or (0.0, 0)
    result = RunResult(leads, label, ended - started, seconds, rows, usage.ru_maxrss / 1024)
    # a stage line is logged when its stage ends: samples up to it belong to it
    began = started
    for at, line in lines:
        found = STAGE_LINE.search(line)
        if found and found.group(1) not in result.stage_s:
            stage = found.group(1)
            result.stage_s[stage] = at - began
            result.stage_peaks[stage] = max((rss for t, rss in sampler.samples
                                             if began <= t <= at), default=0.0)
            began = at
    limits = LIMIT_LINE.findall(output)
    result.limit_mb = int(limits[-1]) if limits else None
    result.ran_out = [int(mb) for mb in RAN_OUT.findall(output)]
    result.log = [(at - started, line) for at, line in lines]
    return result


def render(results: list[RunResult], facts: dict[str, str], args: argparse.Namespace,
           generate: dict[int, float]) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    command = repo_relative(" ".join(["python", *sys.argv]))
    lines = [
        "# Benchmark: a whole `close-sync run` against the fake Close", "",
        f"`{command}` on {facts['date']}, commit {commit or '?'}.", "",
        f"Machine: {facts['cpu']}, {facts['nproc']} CPUs, {facts['ram_gb']} GB RAM, Linux "
        f"{facts['kernel']}, Python {facts['python']}, dlt {facts['dlt']}, duckdb "
        f"{facts['duckdb']}, pyarrow {facts['pyarrow']}, orjson {facts['orjson']}, httpx "
        f"{facts['httpx']}.", "",
        f"`python -m close_fake --seed {SEED} --leads N --activities-per-lead "
        f"{args.activities}` in its own process (generated in "
        + ", ".join(f"{s:.0f} s at {n:,}" for n, s in generate.items())
        + "); `close-sync run -v` in a fresh directory against it, nothing set but the key "
        "and URL. Peak RSS: the run process's own VmHWM (`ru_maxrss`), whole run; per stage: "
        "the highest VmRSS sampled every 50 ms until the stage's line. "
        f"Target: {RSS_TARGET_MB:.0f} MB.", "",
        "| leads | run | wall s | run s | rows | peak RSS MB | per stage: s (peak MB) "
        "| DuckDB MB | ran out |",
        "| ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in results:
        stages = ", ".join(f"{stage} {r.stage_s[stage]:.1f} ({r.stage_peaks[stage]:.0f})"
                           for stage in STAGES if stage in r.stage_s)
        lines.append(
            f"| {r.leads:,} | {r.label} | {r.wall_s:.1f} | {r.run_s:.1f} | {r.rows:,} "
            f"| {r.peak_rss_mb:.0f}{'' if r.peak_rss_mb <= RSS_TARGET_MB else ' (over)'} "
            f"| {stages} | {r.limit_mb or '-'} | {', '.join(map(str, r.ran_out)) or 'no'} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", default="10000,30000", help="org sizes, comma-separated")
    parser.add_argument("--activities", type=int, default=11,
                        help="activities per lead (the fake's default: 11)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--postgres", action="store_true",
                        help="into PostgreSQL as well (a throwaway server)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the runs; `--env` groups: LABEL:NAME=VALUE,...")
    parser.add_argument("--base", help="another checkout, measured alternately with this one")
    parser.add_argument("--report", help="write the results as markdown (bench/WHOLE_RUN.md)")
    return parser.parse_args(argv)


def variants(args: argparse.Namespace) -> list[tuple[str, Path, dict[str, str]]]:
    """(label, checkout, settings) of each run per size and repetition. An `--env` of the form
    `LABEL:NAME=VALUE,NAME=VALUE` is a variant of its own (one lever each); plain `NAME=VALUE`
    settings apply to every variant."""
    common, levers = {}, []
    for item in args.env:
        if ":" in item.split("=", 1)[0]:
            label, settings = item.split(":", 1)
            levers.append((label, dict(s.split("=", 1) for s in settings.split(","))))
        else:
            name, value = item.split("=", 1)
            common[name] = value
    out = [("this", ROOT, dict(common))]
    out += [(label, ROOT, {**common, **settings}) for label, settings in levers]
    if args.base:
        out.append(("base", Path(args.base).resolve(), dict(common)))
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    facts = machine_facts()
    print(facts, flush=True)
    pg = None
    if args.postgres:
        from tests.pg_server import PostgresServer, find_bindir

        pg = PostgresServer(find_bindir()).start()
    results: list[RunResult] = []
    generate: dict[int, float] = {}
    try:
        for leads in [int(n) for n in args.leads.split(",") if n]:
            fake = FakeServer(leads, args.activities)
            generate[leads] = fake.generate_s
            print(f"{leads:,} leads served in {fake.generate_s:.0f} s", flush=True)
            target = SimpleNamespace(api_key=fake.api_key, base_url=fake.base_url)
            try:
                for _ in range(args.repeat):
                    for label, root, env in variants(args):
                        for dsn in [None, *([pg.new_database()] if pg else [])]:
                            name = f"{label}, {'PostgreSQL' if dsn else 'DuckDB'}"
                            r = run_once(root, target, leads, name, env, dsn)
                            results.append(r)
                            print(render([r], facts, args, generate).splitlines()[-1],
                                  flush=True)
            finally:
                fake.stop()
    finally:
        if pg is not None:
            pg.stop()
    report = render(results, facts, args, generate)
    print(report)
    if args.report:
        Path(args.report).write_text(report)


if __name__ == "__main__":
    main()
