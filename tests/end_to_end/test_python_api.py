"""The Python API as dlt users write it: tables are resources named after them, so
`with_resources` selects tables; and every Python snippet of the README, the docs and the module
docstrings runs as written."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dlt
import pytest

from close_fake import FakeClose, generate_org
from close_fake.churn import random_changes
from close_source.source import close_source
from tests.docs_pages import code_blocks
from tests.helpers import new_pipeline
from tests.invariant import mismatches

ROOT = Path(__file__).resolve().parents[2]


def data_tables(pipeline: dlt.Pipeline) -> set[str]:
    with pipeline.sql_client() as client:
        found = client.execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            pipeline.dataset_name)
    return {name for (name,) in found if not name.startswith("_dlt")}


def export_jobs(fake: FakeClose) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.endpoint == "/export/lead/")


def test_with_resources_loads_exactly_the_tables_named_and_then_follows_them(tmp_path):
    org = generate_org(seed=91, leads=10)
    with FakeClose(org) as fake:
        pipeline = new_pipeline(tmp_path)

        def run() -> None:
            source = close_source(api_key=fake.api_key, base_url=fake.base_url,
                                  export_poll_interval=0.01)
            pipeline.run(source.with_resources("leads", "calls"), loader_file_format="parquet")

        run()
        assert data_tables(pipeline) == {"leads", "leads__addresses", "calls"}
        assert export_jobs(fake) == 1
        for table in ("leads", "calls"):
            assert not mismatches(org, pipeline, table, columns_from_state=True)
        org.advance(timedelta(minutes=10))
        random_changes(org, __import__("random").Random(91), 25, step=timedelta(seconds=5))
        org.advance(timedelta(seconds=30))
        run()  # incremental: the Event Log, only for those two tables
        assert export_jobs(fake) == 1
        assert any(r.endpoint == "/event/" for r in fake.requests)
        assert data_tables(pipeline) <= {"leads", "leads__addresses", "calls", "lead_merges"}
        for table in ("leads", "calls"):
            assert not mismatches(org, pipeline, table, columns_from_state=True)


def test_a_table_name_that_is_no_resource_is_refused_by_dlt(small_fake):
    from dlt.extract.exceptions import ResourcesNotFoundError

    source = close_source(api_key=small_fake.api_key, base_url=small_fake.base_url)
    assert {"leads", "calls", "users", "custom_fields"} <= set(source.resources)
    with pytest.raises(ResourcesNotFoundError):
        source.with_resources("deals")


# ---- snippets -----------------------------------------------------------------------------


def page_snippets() -> list[tuple[str, str]]:
    """The ```python blocks of README.md and docs/."""
    return code_blocks("python")


def docstring_snippets() -> list[tuple[str, str]]:
    """Indented blocks that import something, in the module docstrings of the package."""
    found = []
    for path in sorted([*ROOT.glob("close_source/**/*.py"), *ROOT.glob("pipelines/*.py")]):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=True)
        if not doc:
            continue
        block: list[str] = []
        for line in [*doc.splitlines(), "end"]:
            if line.startswith("    ") or (block and not line.strip()):
                block.append(line[4:])
                continue
            code = "\n".join(block).strip()
            if code and re.search(r"^(import|from) ", code, flags=re.M):
                found.append((str(path.relative_to(ROOT)), code + "\n"))
            block = []
    return found


SNIPPETS = page_snippets() + docstring_snippets()


def test_the_docs_and_the_docstrings_have_python_snippets():
    names = {name for name, _ in SNIPPETS}
    assert any(name.startswith("docs/getting-started.md") for name in names)
    assert {"close_source/__init__.py", "pipelines/close_pipeline.py"} <= names


@pytest.mark.parametrize("name,code", SNIPPETS, ids=[name for name, _ in SNIPPETS])
def test_every_python_snippet_runs_as_written(tmp_path, name, code):
    """In a fresh interpreter, in an empty directory, with the key and the API root in the
    environment as a user would set them (the fake Close stands in for Close)."""
    with FakeClose(generate_org(seed=92, leads=6)) as fake:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SOURCES__", "DESTINATION__"))}
        env.update(SOURCES__CLOSE__API_KEY=fake.api_key, SOURCES__CLOSE__BASE_URL=fake.base_url,
                   SOURCES__CLOSE__EXPORT_POLL_INTERVAL="0.01", DLT_DATA_DIR=str(tmp_path / "dlt"),
                   RUNTIME__DLTHUB_TELEMETRY="false", PYTHONPATH=str(ROOT))
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{name}:\n{code}\n{result.stderr[-3000:]}"
