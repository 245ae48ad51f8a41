#!/usr/bin/env python3
"""Set-up and entry points for a fresh checkout; needs only Python 3.11+.

    python3 dev.py demo   # install into .venv, then sync a fake Close org into DuckDB
    python3 dev.py test   # install into .venv (with test extras), then ruff + pytest + the docs
    python3 dev.py test --fast   # the same without the whole syncs (tests/end_to_end)
    python3 dev.py docs   # regenerate docs/tables.md from a fake org's load, build the docs

Extra arguments are passed on: `python3 dev.py test -k paging`, `python3 dev.py demo --leads 500`;
tests run on one worker per core (`-n 0` runs them in this process).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
EXTRAS = "test,docs,postgres,bigquery,dagster,airflow"


def ensure_venv() -> None:
    """Create .venv and (re)install the package when pyproject.toml changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs on any python3
        sys.exit(f"close-dlt needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".close-dlt-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("installing close-dlt and its dependencies into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f".[{EXTRAS}]"], check=True, cwd=ROOT)
    stamp.write_text(digest)


def build_docs() -> int:
    """The documentation site, built strictly (a broken link or anchor fails) into a scratch
    directory: `.venv/bin/mkdocs serve` shows it while editing. Not `--quiet`: mkdocs then
    counts no warning, and --strict passes anything."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor
    with tempfile.TemporaryDirectory(prefix="close-dlt-site-") as site:
        return subprocess.call([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", site],
                               cwd=ROOT, env=env)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "docs"):
        print(__doc__)
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    if command == "docs":
        generated = subprocess.call([str(BIN / "python"), "-m", "tools.tables_reference"],
                                    cwd=ROOT)
        return generated or build_docs()
    if command == "test" and "--fast" in rest:
        rest = [arg for arg in rest if arg != "--fast"] + ["-m", "not slow"]
    if command == "demo":
        return subprocess.call([str(BIN / "close-sync"), "demo", *rest])
    lint = subprocess.call([str(BIN / "ruff"), "check", "."], cwd=ROOT)
    # one pytest worker per core: the suite's syncs are CPU-bound (~13 min on 2 cores)
    parallel = [] if any(a.startswith("-n") for a in rest) else ["-n", "auto", "--dist",
                                                                  "worksteal"]
    tests = subprocess.call([str(BIN / "python"), "-m", "pytest", *parallel, *rest], cwd=ROOT)
    docs = build_docs()
    return tests or lint or docs


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
