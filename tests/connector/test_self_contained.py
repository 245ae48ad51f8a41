"""Nothing in the repository points outside it: every reference can be followed by a reader
with only the repository and Close's public API documentation.

Close's API is cited by the section of its public documentation, `(Close API: Event Log)`,
never by line numbers of a local copy of it; no note the repository does not hold is cited;
no machine's directories are named; nothing is installed from a package index it is not on.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = (".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".txt")
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()  # its examples break the rules
# (what is found, why it may not be there)
RULES = (
    # `[` + a file number 000-009 + `:` + a line, or a bare file number 000-003 + `:` + a line
    # (not `[100:200]`, a slice; not a time of day, which has two digits before its colon)
    (re.compile(r"\[00\d:\d|\b00[0-3]:\d{2,}"),
     "a line of a local copy of Close's docs: cite the section, (Close API: <title>)"),
    (re.compile(r"close-api-sync-reference|reference §|close-api-docs|peers\.md"),
     "a note the repository does not hold: say the rule, or cite (Close API: <title>)"),
    (re.compile(r"DESIGN\.md|DESIGN §"),
     "a design note the repository does not hold: say the rule itself"),
    # not inside a URL (`https://host/home/`): a path that starts a word
    (re.compile(r"(?<![\w.:/-])/(?:work|root|home)/"),
     "a machine's path: make it relative to the repository, or say what it is"),
    (re.compile(r"pip install [\"']?close-dlt"),
     "an install of a package not published: from a clone (pip install -e .) or a wheel"),
)


def tracked_text_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode()
    return sorted(name for name in listed.split("\0")
                  if name.endswith(TEXT_SUFFIXES)
                  and name != THIS_FILE
                  and (ROOT / name).is_file())


def outside_pointers(name: str, text: str) -> list[str]:
    """`file:line: why: the line` for each line breaking a rule."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, why in RULES:
            if pattern.search(line):
                found.append(f"{name}:{number}: {why}: {line.strip()}")
    return found


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_nothing_in_the_repository_points_outside_it():
    files = tracked_text_files()
    assert "close_source/catalog.py" in files and "bench/RESULTS.md" in files
    found = [hit for name in files
             for hit in outside_pointers(name, (ROOT / name).read_text(errors="replace"))]
    assert not found, "\n" + "\n".join(found)


@pytest.mark.parametrize("line", [
    "Limits are per endpoint group [003:151].",
    "see [001:112-283; 003:201-331]",
    "the sample [000:113-263]",
    "the Event Log keeps 30 days, 003:8105",
    "digest in `close-api-sync-reference.md`",
    "Sources (reference §5)",
    "# DESIGN.md §4, minus events",
    "API docs (`/work/shared/`)",
    "- 20,000: 1 x `/root/out/export.json.gz has no manifest`",
    "cd /home/someone/close-dlt",
    'pip install "close-dlt[postgres]"',
])
def test_each_kind_of_outside_pointer_is_found(line):
    assert outside_pointers("x.md", line)


@pytest.mark.parametrize("line", [
    "Limits are per endpoint group (Close API: Rate Limits).",
    "| 20,000 | duckdb | sync | 0 | 41.7 | 2026-12-07 12:30 | 00:03:12 |",
    "last on 2026-12-07 13:43 UTC, 100,000: 275 s",
    "rows = data[100:200]",
    "https://developer.close.com/home/ and https://example.org/root/x",
    "`bench/out/export_NxN_array_seedN.json.gz has no manifest`",
    "a scratch checkout (`--base DIR`), /tmp/base",
])
def test_legitimate_text_is_left_alone(line):
    assert not outside_pointers("x.md", line)
