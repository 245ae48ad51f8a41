"""Rewrite docs/tables.md from a full load of the reference fake organisation (`python3 dev.py
docs` runs it before building the site).

The page is made by `close_source.docs` from the schema of a real load; this script provides
the load: the fake Close over loopback, synced into a scratch DuckDB file through the run path
`close-sync run` uses. tests/end_to_end/test_full_load.py loads the same organisation and fails
when the committed page differs from what its load gives.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from close_fake import FakeClose, FakeOrg, generate_org
from close_source.docs import PAGE, reference_page
from close_source.pipeline import duckdb_destination, make_pipeline
from close_source.sync import sync

ROOT = Path(__file__).resolve().parents[1]


def reference_org() -> FakeOrg:
    """The organisation the page is made from (and the full-load tests load)."""
    return generate_org(seed=21, leads=30)


def main() -> int:
    for name in [name for name in os.environ if name.startswith(("SOURCES__", "DESTINATION__"))]:
        del os.environ[name]  # the page shows the default settings, whatever this shell sets
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")  # as close-sync does
    with tempfile.TemporaryDirectory(prefix="close-dlt-docs-") as scratch, \
            FakeClose(reference_org()) as fake:
        workdir = Path(scratch)
        pipeline = make_pipeline(duckdb_destination(workdir / "reference.duckdb"),
                                 pipeline_name="reference", progress=False,
                                 pipelines_dir=str(workdir / "pipelines"))
        sync(pipeline, api_key=fake.api_key, base_url=fake.base_url, export_poll_interval=0.01)
        page = reference_page(pipeline)
    target = ROOT / PAGE
    changed = not target.exists() or target.read_text(encoding="utf-8") != page
    target.write_text(page, encoding="utf-8")
    print(f"{PAGE}: {'rewritten' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
