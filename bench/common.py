"""What the benchmarks share: the machine they ran on, the environment of a `close-sync`
subprocess against the fake, and the tests' invariant on the pipeline such a process made."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
# As `close-sync` runs (cli.py): where Airflow is installed (the dev environment has it, for
# examples/airflow), dlt otherwise imports it and asks Airflow for every config value it looks
# up, ~3-4 s of a bench child's time, much of it inside the timed load (2026-12-08, py-spy).
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
PACKAGES = ("dlt", "duckdb", "pyarrow", "orjson", "httpx")


def machine_facts() -> dict[str, str]:
    """The date, CPUs, RAM, kernel, Python and the versions of the packages that matter."""
    model = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    total = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model.group(1).strip() if model else platform.processor() or "?",
        "ram_gb": f"{int(total.group(1)) / 1024 / 1024:.1f}" if total else "?",
        "python": platform.python_version(),
        "kernel": platform.release(),
        **{package: version(package) for package in PACKAGES},
    }


def repo_relative(text: str) -> str:
    """`text` with this checkout's absolute path made relative: a committed report names no
    machine's directories."""
    return text.replace(f"{ROOT}/", "").replace(str(ROOT), ".")


def sync_env(fake: Any, workdir: Path, poll_interval: float) -> dict[str, str]:
    """A `close-sync` subprocess's environment: the fake's key and URL, dlt's data in
    `workdir`, and none of this shell's own `SOURCES__` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env.update(DLT_DATA_DIR=str(workdir / "dlt_data"), RUNTIME__DLTHUB_TELEMETRY="false",
               SOURCES__CLOSE__API_KEY=fake.api_key, SOURCES__CLOSE__BASE_URL=fake.base_url,
               SOURCES__CLOSE__EXPORT_POLL_INTERVAL=str(poll_interval), PYTHONPATH=str(ROOT))
    return env


def mismatches(org: Any, workdir: Path) -> dict[str, list[str]]:
    """The tests' invariant on the pipeline a `close-sync` subprocess made in `workdir`."""
    from close_source.pipeline import make_pipeline
    from tests.invariant import every_table_mismatches

    os.environ["DLT_DATA_DIR"] = str(workdir / "dlt_data")
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        return every_table_mismatches(org, make_pipeline(progress=False))
    finally:
        os.chdir(cwd)
        del os.environ["DLT_DATA_DIR"]


def rss_mb(field: str = "VmRSS") -> float:
    """This process's RSS (VmRSS) or its high-water mark since exec (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


SUMMARY = re.compile(r"summary: \w+ ok in ([0-9.]+)s: \d+ tables loaded, ([\d,]+) rows written")
SYNCED = re.compile(r"Synced (\d+) rows in ([0-9.]+)s")  # stdout, before the summary line


def reported(output: str) -> tuple[float, int] | None:
    """(seconds, rows written) from a run's output (stderr and stdout: a `--base` checkout
    may be older than the summary line), None without either line."""
    if found := SUMMARY.search(output):
        return float(found.group(1)), int(found.group(2).replace(",", ""))
    if found := SYNCED.search(output):
        return float(found.group(2)), int(found.group(1))
    return None
