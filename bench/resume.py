"""Benchmark: a first load killed part-way, then resumed, against one that runs through.

    .venv/bin/python bench/resume.py [--leads 20000] [--kill-at 0.5,0.9] [--build-seconds 60]

One seeded fake organisation is served from this process; its Export API takes
`--build-seconds` to build an export (Close takes minutes for a large organisation; the fake
builds its file at once). Every sync is `close-sync run` in a subprocess of its own:

1. `through`: a first load into a fresh pipeline, to the end: its wall time W;
2. for each fraction f of `--kill-at`: a first load into another fresh pipeline, SIGKILLed at
   f x W, then `close-sync run` again to the end. Reported: where the kill landed (downloading,
   extracting or loading, from the run's log and working directory), the resumed run's wall
   time, the exports it asked Close for (0: it resumed from the kept file), and the wall time
   saved against starting again (W minus the resumed run).

Afterwards every pipeline's tables are compared with the organisation (the tests' invariant).
Results: `bench/RESUME.md` (overwritten) and `bench/out/resume.json`. Not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import OUT, ROOT, machine_facts, mismatches, sync_env

from close_fake import ExportSettings, FakeClose, generate_org

RESULTS_MD = ROOT / "bench" / "RESUME.md"
RESULTS_JSON = OUT / "resume.json"
SEED = 7


@dataclass
class Run:
    name: str
    wall_s: float  # the process's, interpreter start included
    exports: int  # export jobs the run created
    killed_at_s: float | None = None
    killed_in: str = ""
    resumed_wall_s: float | None = None
    resumed_exports: int = 0
    resumed_said: str = ""


def exports(fake: FakeClose, since: int) -> int:
    return sum(1 for r in fake.requests[since:]
               if r.method == "POST" and r.endpoint == "/export/lead/")


def start(fake: FakeClose, workdir: Path, log: str) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "close_source.cli", "run"], cwd=workdir,
                                env=sync_env(fake, workdir, 0.5), stdout=out,
                                stderr=subprocess.STDOUT)


def to_the_end(fake: FakeClose, workdir: Path, log: str) -> tuple[float, int]:
    first, began = len(fake.requests), time.monotonic()
    process = start(fake, workdir, log)
    if process.wait() != 0:
        raise SystemExit(f"close-sync run failed in {workdir}:\n"
                         f"{(workdir / log).read_text()[-3000:]}")
    return time.monotonic() - began, exports(fake, first)


def where_it_stopped(workdir: Path) -> str:
    """Downloading, extracting or loading, from what the run left behind."""
    working = workdir / "dlt_data" / "pipelines" / "close_crm"
    if list((working / "load" / "normalized").glob("*")) if (working / "load").exists() \
            else False:
        return "loading"
    exports = working / "close-export"
    if list(exports.glob("*.manifest.json")) if exports.exists() else False:
        return "extracting (the export was downloaded)"
    if list(exports.glob("*.json.gz")) if exports.exists() else False:
        return "downloading the export"
    return "waiting for Close to build the export"


def killed_and_resumed(fake: FakeClose, workdir: Path, after_s: float, name: str) -> Run:
    first, began = len(fake.requests), time.monotonic()
    process = start(fake, workdir, "killed.log")
    try:
        process.wait(timeout=after_s)
        raise SystemExit(f"{name}: the run ended before it could be killed at {after_s:.1f} s")
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    run = Run(name, time.monotonic() - began, exports(fake, first), killed_at_s=after_s,
              killed_in=where_it_stopped(workdir))
    run.resumed_wall_s, run.resumed_exports = to_the_end(fake, workdir, "resumed.log")
    said = [line.split(": ", 1)[-1] for line in
            (workdir / "resumed.log").read_text(errors="replace").splitlines()
            if re.search(r"resuming the full load|resuming export|partly loaded|"
                         r"stopped before its data|cannot be resumed|"
                         r"stopped part-way", line)]
    run.resumed_said = " / ".join(re.sub(r"expo_\w+|\d{10}\.\d+", "…", s)[:160] for s in said)
    return run


def render(runs: list[Run], args: argparse.Namespace, problems: dict[str, list[str]],
           generated_s: float, facts: dict[str, str]) -> str:
    through = runs[0]
    lines = [
        "# Benchmark: a killed first load, resumed",
        "",
        f"`python bench/resume.py --leads {args.leads} --kill-at {args.kill_at} "
        f"--build-seconds {args.build_seconds}` on {facts['date']}: {facts['nproc']} x "
        f"{facts['cpu']}, {facts['ram_gb']} GB RAM, Python {facts['python']}, dlt {facts['dlt']}, "
        f"duckdb {facts['duckdb']}. A fake organisation of "
        f"{args.leads:,} leads (generated in {generated_s:.0f} s) whose Export API takes "
        f"{args.build_seconds:.0f} s to build an export. Wall times are the `close-sync run` "
        "processes' own, interpreter start included.",
        "",
        f"A first load run through: **{through.wall_s:.1f} s**, {through.exports} export.",
        "",
        "| killed at | while | resumed run | exports asked for by the resumed run | saved "
        "against starting again | the resumed run said |",
        "| ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for run in runs[1:]:
        assert run.resumed_wall_s is not None and run.killed_at_s is not None
        saved = through.wall_s - run.resumed_wall_s
        lines.append(f"| {run.killed_at_s:.1f} s ({run.name}) | {run.killed_in} | "
                     f"{run.resumed_wall_s:.1f} s | {run.resumed_exports} | {saved:.1f} s "
                     f"({saved / through.wall_s:.0%}) | {run.resumed_said} |")
    lines += ["", "Every table against the organisation after the runs:", ""]
    lines += [f"- {name}: " + ("every table equal" if not found else f"MISMATCHES in {found}")
              for name, found in problems.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--kill-at", default="0.5,0.9",
                        help="fractions of the through run's wall time to kill at")
    parser.add_argument("--build-seconds", type=float, default=60.0,
                        help="seconds the fake takes to build an export (60)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    org = generate_org(seed=SEED, leads=args.leads)
    gc.freeze()
    generated_s = time.monotonic() - began
    runs: list[Run] = []
    problems: dict[str, list[str]] = {}
    settings = ExportSettings(polls_to_finish=1, seconds_to_finish=args.build_seconds)
    with FakeClose(org, export=settings, tick=False) as fake:
        workdir = OUT / "resume-through"
        shutil.rmtree(workdir, ignore_errors=True)
        wall, made = to_the_end(fake, workdir, "run.log")
        runs.append(Run("through", wall, made))
        print(f"through: {wall:.1f} s", flush=True)
        problems["through"] = sorted(mismatches(org, workdir))
        for fraction in (float(f) for f in args.kill_at.split(",") if f):
            name = f"{fraction:.0%}"
            workdir = OUT / f"resume-{int(fraction * 100)}"
            shutil.rmtree(workdir, ignore_errors=True)
            run = killed_and_resumed(fake, workdir, fraction * wall, name)
            runs.append(run)
            print(f"killed at {name} ({run.killed_in}); resumed in {run.resumed_wall_s:.1f} s, "
                  f"{run.resumed_exports} exports", flush=True)
            problems[f"killed at {name}, resumed"] = sorted(mismatches(org, workdir))
    RESULTS_MD.write_text(render(runs, args, problems, generated_s, machine_facts()),
                          encoding="utf-8")
    RESULTS_JSON.write_text(json.dumps([asdict(run) for run in runs], indent=2), encoding="utf-8")
    print(RESULTS_MD.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
