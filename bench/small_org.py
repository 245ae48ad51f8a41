"""Benchmark: a new user's first `close-sync run` of a small organisation over a slow link, against
the export's own wait on the server (issue 29: at most that wait plus 5 s, no out-of-memory retry).

    .venv/bin/python bench/small_org.py [--leads 2000] [--latency-ms 150] [--rate-limit 20]
        [--export-seconds 6] [--repeat 3] [--env NAME=VALUE ...] [--base DIR]
        [--report bench/SMALL_ORG.md]

`python -m close_fake --leads 2000 --latency-ms 150 --rate-limit 20 --export-seconds 6
--export-polls 0` serves in a process of its own: every request answered one 150 ms round trip
late (a new connection one more), 20 requests a second per endpoint group, and an export done 6 s
after it was requested however often it is polled: that is the export's own wait on the server.
Against it `close-sync run -v` runs as `bench/whole_run.py` runs it (a fresh directory, nothing
set but the key and URL, the DuckDB default), timed from outside by the lines of its log as they
arrive. Reported per run: the wall time; the time before the export was requested (its
`created` line less the request's round trip); from the moment the export was done on the
server until its `downloaded` line (polling and download); from there to the end (read, shape,
normalize, load, settle); the wall time less the export's wait (target: 5 s); the stages; the
peak RSS; the `ran out of its` lines (out-of-memory retries); the machine's load average as the
run began (the machine is shared). Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from common import ROOT, machine_facts, repo_relative
from whole_run import STAGES, FakeServer, RunResult, run_once, variants

SEED = 0  # `python -m close_fake`'s default, as a new user serves it
TARGET_S = 5.0
CREATED = re.compile(r"export \S+ created")
DOWNLOADED = re.compile(r"export \S+ downloaded")


@dataclass
class SlowRun:
    """One run and where its time went around the export's wait."""

    run: RunResult
    load_average: float
    requested_s: float  # the export request, from the start of the process
    downloaded_s: float  # its `downloaded` line

    def after_done_s(self, wait_s: float) -> float:
        """From the export's being done on the server to its downloaded line."""
        return self.downloaded_s - (self.requested_s + wait_s)

    def over_s(self, wait_s: float) -> float:
        return self.run.wall_s - wait_s


def first_line_at(run: RunResult, pattern: re.Pattern[str]) -> float:
    found = next((at for at, line in run.log if pattern.search(line)), None)
    if found is None:
        sys.exit(f"no line matching {pattern.pattern!r} in the run's log")
    return found


def load_average() -> float:
    return os.getloadavg()[0]


def measure(fake: SimpleNamespace, args: argparse.Namespace, label: str, root: Path,
            env: dict[str, str]) -> SlowRun:
    before = load_average()
    run = run_once(root, fake, args.leads, label, env, None)
    requested = first_line_at(run, CREATED) - args.latency_ms / 1000
    return SlowRun(run, before, requested, first_line_at(run, DOWNLOADED))


def render(runs: list[SlowRun], facts: dict[str, str], args: argparse.Namespace) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    command = repo_relative(" ".join(["python", *sys.argv]))
    wait = args.export_seconds
    lines = [
        "| run | load avg | wall s | before request s | done -> downloaded s | downloaded -> "
        f"end s | wall - wait s (target {TARGET_S:.0f}) | stages s | peak RSS MB | ran out |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in runs:
        stages = ", ".join(f"{stage} {r.run.stage_s[stage]:.1f}" for stage in STAGES
                           if stage in r.run.stage_s)
        over = r.over_s(wait)
        lines.append(
            f"| {r.run.label} | {r.load_average:.1f} | {r.run.wall_s:.1f} "
            f"| {r.requested_s:.1f} | {r.after_done_s(wait):.1f} "
            f"| {r.run.wall_s - r.downloaded_s:.1f} "
            f"| {over:.1f}{'' if over <= TARGET_S else ' (over)'} | {stages} "
            f"| {r.run.peak_rss_mb:.0f} | {', '.join(map(str, r.run.ran_out)) or 'no'} |")
    head = [
        "# Benchmark: a small organisation's first run over a slow link", "",
        f"`{command}` on {facts['date']}, commit {commit or '?'}.", "",
        f"Machine: {facts['cpu']}, {facts['nproc']} CPUs, {facts['ram_gb']} GB RAM, Linux "
        f"{facts['kernel']}, Python {facts['python']}, dlt {facts['dlt']}, duckdb "
        f"{facts['duckdb']}, pyarrow {facts['pyarrow']}, orjson {facts['orjson']}, httpx "
        f"{facts['httpx']}.", "",
        f"`python -m close_fake --seed {SEED} --leads {args.leads} --latency-ms "
        f"{args.latency_ms:g} --rate-limit {args.rate_limit} --export-seconds {wait:g} "
        "--export-polls 0`: the export's wait on the server is "
        f"{wait:g} s; target: the whole run in at most {wait + TARGET_S:g} s.", "",
    ]
    return "\n".join(head + lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--activities", type=int, default=11,
                        help="activities per lead (the fake's default: 11)")
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--rate-limit", type=int, default=20,
                        help="requests a second per endpoint group")
    parser.add_argument("--export-seconds", type=float, default=6.0,
                        help="the export's own wait on the server")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the runs; `--env` groups: LABEL:NAME=VALUE,...")
    parser.add_argument("--base", help="another checkout, measured alternately with this one")
    parser.add_argument("--report", help="write the results as markdown (bench/SMALL_ORG.md)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    facts = machine_facts()
    print(facts, flush=True)
    options = ["--latency-ms", f"{args.latency_ms:g}", "--rate-limit", str(args.rate_limit),
               "--export-seconds", f"{args.export_seconds:g}", "--export-polls", "0"]
    server = FakeServer(args.leads, args.activities, options, seed=SEED)
    fake = SimpleNamespace(api_key=server.api_key, base_url=server.base_url)
    runs: list[SlowRun] = []
    try:
        for _ in range(args.repeat):
            for label, root, env in variants(args):
                runs.append(measure(fake, args, label, root, env))
                print(render(runs[-1:], facts, args).splitlines()[-1], flush=True)
    finally:
        server.stop()
    report = render(runs, facts, args)
    print(report)
    if args.report:
        Path(args.report).write_text(report)


if __name__ == "__main__":
    main()
