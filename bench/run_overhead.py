"""The fixed cost of a run: a full load, then runs with nothing to apply, each a `close-sync run`
process, for this checkout and for another one (`--base DIR`, e.g. a `git worktree` of an
earlier commit) in the same run, alternating, so the machine's noise hits both alike.

    python bench/run_overhead.py --leads 200 --runs 5 --destination duckdb --base DIR

Prints the run's own reported seconds (its summary line's "ok in X s", without interpreter start-up)
per checkout: the full load and the median of the no-change runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, machine_facts, reported, sync_env

from close_fake import FakeClose, generate_org


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--base", help="another checkout to measure beside this one")
    args = parser.parse_args()
    checkouts = [ROOT] + ([Path(args.base).resolve()] if args.base else [])
    org = generate_org(seed=5, leads=args.leads)
    server = None
    if args.destination == "postgres":
        from tests.pg_server import PostgresServer, find_bindir

        server = PostgresServer(find_bindir()).start()
    results: dict[Path, list[float]] = {root: [] for root in checkouts}
    with FakeClose(org) as fake:
        dirs = {root: Path(tempfile.mkdtemp(prefix="overhead-")) for root in checkouts}
        envs = {}
        for root in checkouts:
            env = sync_env(fake, dirs[root], 0.02)
            env["PYTHONPATH"] = str(root)
            if server is not None:
                env["DESTINATION__POSTGRES__CREDENTIALS"] = server.new_database()
            envs[root] = env
        command = ["run"] + (["--destination", "postgres"] if server else [])
        for _ in range(args.runs + 1):
            for root in checkouts:
                done = subprocess.run([sys.executable, "-m", "close_source.cli", *command],
                                      cwd=dirs[root], env=envs[root], capture_output=True,
                                      text=True, check=False)
                if done.returncode != 0:
                    sys.exit(done.stderr[-3000:])
                results[root].append((reported(done.stderr + done.stdout) or (0.0, 0))[0])
    if server is not None:
        server.stop()
    print(machine_facts())
    for root, seconds in results.items():
        print(f"{root}: {args.destination}, {args.leads} leads: full load {seconds[0]:.1f} s; "
              f"no change: median {statistics.median(seconds[1:]):.2f} s of {seconds[1:]}")
    os.environ.pop("DLT_DATA_DIR", None)


if __name__ == "__main__":
    main()
