"""The documentation's pages as tests read them: README.md and docs/**/*.md, their fenced code
blocks by language, and their SQL split into statements."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^([ \t]*)```([\w-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.S | re.M)


def pages() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_blocks(language: str) -> list[tuple[str, str]]:
    """(`<page> #<n>`, code) of every ```<language> block, in page order; indented blocks (in a
    list item) dedented."""
    found = []
    for path in pages():
        blocks = [textwrap.dedent(code) for _, lang, code in
                  FENCE.findall(path.read_text(encoding="utf-8")) if lang == language]
        name = path.relative_to(ROOT).as_posix()
        found += [(f"{name} #{n}", code) for n, code in enumerate(blocks, 1)]
    return found


def statements(sql: str) -> list[str]:
    """The statements of an example, each ending at a `;` that ends its line (comments kept)."""
    parts = re.split(r";[ \t]*(?:--[^\n]*)?$", sql, flags=re.M)
    return [part.strip() for part in parts if _code(part)]


def _code(part: str) -> str:
    return "\n".join(line for line in part.splitlines()
                     if line.strip() and not line.strip().startswith("--"))
