"""No module is first imported by two extract worker threads at once.

dlt runs parallelized resources in a thread pool. The first `pa.array` there imports pandas
(pyarrow's pandas shim), and a second thread meeting the half-imported module failed the run
with "partially initialized module 'pandas' has no attribute 'DataFrame'". `make_pipeline`
imports those modules in the main thread; a fresh interpreter (a `close-sync run` process)
with many workers proves it: the modules seen imported outside the main thread are recorded.
"""

from __future__ import annotations

import json

from close_fake import FakeClose, generate_org
from tests.cli_runs import KEY, pipeline_of, run_to_the_end
from tests.invariant import every_table_mismatches

LAZY = ("pandas", "pyarrow.pandas_compat", "_strptime", "zoneinfo", "pytz", "numexpr")


def test_a_full_sync_in_a_fresh_interpreter_imports_nothing_heavy_in_workers(tmp_path):
    org = generate_org(seed=41, leads=12)
    imports = tmp_path / "imports.json"
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, None, hook="import-spy", EXTRACT__WORKERS="12",
                       SOURCES__CLOSE__FULL_LOAD="lists", CLOSE_TEST_IMPORTS=str(imports))
    in_workers = json.loads(imports.read_text())["in_workers"]
    heavy = {name: thread for name, thread in in_workers.items()
             if name.split(".")[0] in {m.split(".")[0] for m in LAZY}}
    assert not heavy, f"imported by worker threads: {heavy}"
    assert not every_table_mismatches(org, pipeline_of(tmp_path, None))


def test_a_close_sync_process_does_not_load_pandas(tmp_path):
    """pyarrow would import it (~40 MB) only to learn that a list is not a pandas object."""
    org = generate_org(seed=42, leads=12)
    imports = tmp_path / "imports.json"
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, None, hook="import-spy", CLOSE_TEST_IMPORTS=str(imports))
    loaded = json.loads(imports.read_text())["loaded"]
    assert "pyarrow" in loaded and "pandas" not in loaded
    assert not every_table_mismatches(org, pipeline_of(tmp_path, None))
