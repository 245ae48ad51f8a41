"""Benchmark: the DuckDB load of a first `close-sync run`, every table, against the fake Close.

    .venv/bin/python bench/first_load.py [--sizes 2000,20000] [--wide FIELDS] [--repeat 1]
        [--base DIR] [--env NAME=VALUE ...] [--rate-limit N] [--calibrate]

For each org size (a seeded `generate_org`, served by `FakeClose` in this process; `--wide`
adds that many text custom fields to every lead, as tests/end_to_end/test_wide_tables.py), a
fresh `close-sync run -v` in a subprocess, into a new DuckDB file, for this checkout and for
`--base DIR` (another checkout, e.g. `git archive` of an earlier commit), alternating. Reported
per run: the memory limit DuckDB loaded with (the last `DuckDB loads with N MB` line; `-` when
the checkout does not say), whether a load ran out of memory and was loaded again (its
`ran out of its` lines), the load step's seconds (its stage line), the seconds from its end
until a DuckDB connection closes next (a connection held for the load step checkpoints the
file and closes then; without one, the first query of the settle step closes), the run's
seconds (its summary line), the peak RSS of the load step (sampled every 50 ms between the
normalize and load stage lines) and of the whole run (the child's VmHWM). `--env` sets dlt
settings for the runs (`LOAD__WORKERS=1`).

`--calibrate`: after this checkout's first run of each size, the least `memory_limit` (MB, by
bisection) at which DuckDB inserts each parquet file the run loaded, alone in a new database
file (one thread, a spill directory), beside what `run/load_memory.py` sizes for it. Not a
test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import ROOT, machine_facts, reported, sync_env

SEED = 0  # `python -m close_fake`'s default, as a new user serves it
LOAD_LINE = re.compile(r"\bload: .* in ([0-9.]+)s")
LIMIT_LINE = re.compile(r"DuckDB loads with (\d+) MB")
RAN_OUT = re.compile(r"ran out of its (\d+) MB")


# The child: `close-sync` in a process of its own (the checkout on PYTHONPATH), with its peak RSS
# (the whole run's VmHWM, and the highest sampled during the load step) written when it ends.
CHILD = """
import json, logging, sys, threading, time
from pathlib import Path

def rss(field="VmRSS"):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0

samples, marks, done = [], {}, threading.Event()

def sample():
    while not done.wait(0.05):
        samples.append((time.monotonic(), rss()))

class StageMarks(logging.Handler):
    def emit(self, record):
        for step in ("normalize", "load"):
            if record.getMessage().startswith(step + ": "):
                marks[step] = time.monotonic()

from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
closes, close = [], DuckDbSqlClient.close_connection

def timed_close(self):  # when connections close: a held one checkpoints the load first
    close(self)
    closes.append(time.monotonic())

DuckDbSqlClient.close_connection = timed_close
from close_source.cli import main
logging.getLogger("close_source.stage").addHandler(StageMarks())
threading.Thread(target=sample, daemon=True).start()
try:
    code = main(sys.argv[2:])
finally:
    done.set()
    began, ended = marks.get("normalize"), marks.get("load")
    load = [r for at, r in samples if began and ended and began <= at <= ended]
    after = [at - ended for at in closes if ended and at > ended][:1]
    Path(sys.argv[1]).write_text(json.dumps({"peak_rss_mb": rss("VmHWM"),
                                             "load_peak_rss_mb": max(load, default=0.0),
                                             "close_after_s": sum(after)}))
sys.exit(code)
"""


def run_once(root: Path, fake: Any, env_extra: dict[str, str],
             calibrate: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="first-load-") as scratch:
        work = Path(scratch)
        env = sync_env(fake, work, 0.05)
        env.update(env_extra, PYTHONPATH=str(root))
        result = work / "result.json"
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(result), "run", "-v"],
            cwd=work, env=env, capture_output=True, text=True, check=False)
        output = done.stderr + done.stdout
        if done.returncode != 0:
            sys.exit(f"close-sync failed ({root}):\n{output[-3000:]}")
        peaks = json.loads(result.read_text())
        if calibrate:
            least_memory(work / "dlt_data" / "pipelines" / "close_crm" / "load" / "loaded")
    load = LOAD_LINE.findall(output)
    limits = LIMIT_LINE.findall(output)
    return {"run_s": (reported(output) or (0.0, 0))[0],
            "load_s": float(load[-1]) if load else 0.0,
            "limit_mb": int(limits[-1]) if limits else None,
            "ran_out": [int(mb) for mb in RAN_OUT.findall(output)],
            **peaks}


def loads_within(path: Path, megabytes: int) -> bool:
    """Whether DuckDB inserts the parquet file within `megabytes`, as dlt's load job does."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="calibrate-") as scratch:
        con = duckdb.connect(str(Path(scratch) / "x.duckdb"))
        try:
            con.execute(f"SET threads = 1; SET temp_directory = '{scratch}/spill'")
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{path}') LIMIT 0")
            con.execute(f"SET memory_limit = '{megabytes}MB'")
            con.execute("BEGIN")
            con.execute(f"INSERT INTO t BY NAME SELECT * FROM read_parquet('{path}', "
                        "union_by_name=true)")
            con.execute("COMMIT")
            return True
        except (duckdb.OutOfMemoryException, duckdb.TransactionException):
            return False
        finally:
            con.close()


def least_memory(loaded: Path) -> None:
    """The least memory_limit that loads each parquet file, beside what the connector sizes."""
    import pyarrow.parquet as pq

    from close_source.run.load_memory import LoadFile

    print("| table | columns | rows | largest row group MB | least MB | sized MB |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")
    for path in sorted(loaded.glob("*/completed_jobs/*.parquet")):
        metadata = pq.read_metadata(path)
        largest = max(metadata.row_group(i).total_byte_size
                      for i in range(metadata.num_row_groups)) / 2**20
        file = LoadFile(path.name.split(".")[0], metadata.num_columns, metadata.num_rows,
                        largest)
        low, high = 1, 4096
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if loads_within(path, middle) else (middle + 1, high)
        print(f"| {file.table} | {file.columns} | {file.rows:,} | {largest:.1f} | {low} "
              f"| {file.needs_mb:.0f} |", flush=True)


def wide_org(org: Any, fields: int) -> Any:
    """`fields` text custom fields on leads, each filled on every lead."""
    from close_fake import org as o
    from close_fake.mutations import add_field

    ids = [add_field(org, "lead", f"Wide field {i}", "text")["id"] for i in range(fields)]
    for lead in list(org.all(o.LEAD)):
        org.put(o.LEAD, {**lead, **{f"custom.{field}": f"value {i} of {lead['id'][-6:]}"
                                    for i, field in enumerate(ids)}})
    return org


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--base", help="another checkout, measured alternately with this one")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--rate-limit", type=int, default=0,
                        help="requests a second per endpoint group the fake allows (0: any)")
    parser.add_argument("--wide", type=int, default=0,
                        help="text custom fields added to every lead (0)")
    parser.add_argument("--calibrate", action="store_true",
                        help="the least memory each loaded file needs (this checkout's first run)")
    args = parser.parse_args()
    from close_fake import FakeClose, RateLimit, generate_org

    env_extra = dict(item.split("=", 1) for item in args.env)
    checkouts = {"this": ROOT, **({"base": Path(args.base).resolve()} if args.base else {})}
    print(machine_facts(), flush=True)
    print(f"{args.wide} custom fields added to leads" if args.wide else "", flush=True)
    print("| leads | checkout | limit MB | ran out (MB) | load s | then to a close s "
          "| run s | load peak RSS MB | run peak RSS MB |\n"
          "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |", flush=True)
    for leads in [int(n) for n in args.sizes.split(",") if n]:
        limit = RateLimit(args.rate_limit) if args.rate_limit else None
        org = wide_org(generate_org(seed=SEED, leads=leads), args.wide)
        with FakeClose(org, rate_limit=limit) as fake:
            for rep in range(args.repeat):
                for name, root in checkouts.items():
                    r = run_once(root, fake, env_extra,
                                 calibrate=args.calibrate and rep == 0 and name == "this")
                    print(f"| {leads:,} | {name} | {r['limit_mb'] or '-'} "
                          f"| {', '.join(map(str, r['ran_out'])) or 'no'} | {r['load_s']:.1f} "
                          f"| {r['close_after_s']:.1f} | {r['run_s']:.1f} "
                          f"| {r['load_peak_rss_mb']:.0f} "
                          f"| {r['peak_rss_mb']:.0f} |", flush=True)
    os.environ.pop("DLT_DATA_DIR", None)


if __name__ == "__main__":
    main()
