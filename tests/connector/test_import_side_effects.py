"""Importing close_source changes nothing in the process; a run puts back what it set up.

Checked in a cold interpreter: dlt, pyarrow and duckdb are imported first (their own import
effects are not ours), then a snapshot of logging, the environment and Arrow's default memory
pool; then every module of close_source is imported and the snapshot taken again.
"""

from __future__ import annotations

import json
import subprocess
import sys

from close_fake import FakeClose, generate_org
from close_source import close_source
from close_source.pipeline import duckdb_destination, make_pipeline, run_sync
from tests.helpers import rows

SNAPSHOT = """
import json, logging, os
import dlt, duckdb, pyarrow as pa

def snapshot():
    loggers = {name: [logger.level, [type(f).__name__ for f in logger.filters],
                      [type(h).__name__ for h in logger.handlers], logger.propagate]
               for name, logger in logging.root.manager.loggerDict.items()
               if isinstance(logger, logging.Logger)}
    loggers["<root>"] = [logging.root.level, [type(f).__name__ for f in logging.root.filters],
                         [type(h).__name__ for h in logging.root.handlers], True]
    return {"loggers": loggers, "environ": dict(os.environ),
            "pool": pa.default_memory_pool().backend_name}
"""

IMPORT_ALL = SNAPSHOT + """
import importlib, pkgutil
before = snapshot()
import close_source
for module in pkgutil.walk_packages(close_source.__path__, "close_source."):
    importlib.import_module(module.name)
after = snapshot()
# loggers only created by getLogger(name) are new entries, not changes to existing ones
new = {name: value for name, value in after["loggers"].items() if name not in before["loggers"]}
changed = {name: [before["loggers"][name], value] for name, value in after["loggers"].items()
           if name in before["loggers"] and before["loggers"][name] != value}
print(json.dumps({"changed": changed, "configured_new": {n: v for n, v in new.items()
                                                         if v != [0, [], [], True]},
                  "environ": [k for k in set(before["environ"]) ^ set(after["environ"])]
                  + [k for k in before["environ"] if before["environ"][k]
                     != after["environ"].get(k, before["environ"][k])],
                  "pool": [before["pool"], after["pool"]]}))
"""


def test_importing_every_module_changes_no_logging_environment_or_arrow_pool():
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True,
                          check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["changed"] == {} and found["configured_new"] == {}
    assert found["environ"] == []
    assert found["pool"][0] == found["pool"][1]


def test_a_run_puts_back_what_it_set_up(tmp_path, monkeypatch):
    import logging

    import pyarrow as pa
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    monkeypatch.chdir(tmp_path)
    providers = Container()[PluggableRunContext].providers
    before = ([p.name for p in providers.providers], pa.default_memory_pool().backend_name,
              list(logging.getLogger("dlt").filters))
    org = generate_org(seed=71, leads=5)
    with FakeClose(org) as fake:
        pipeline = make_pipeline(duckdb_destination(tmp_path / "out.duckdb"), progress=False,
                                 pipelines_dir=str(tmp_path / "pipelines"))
        run_sync(pipeline, close_source(api_key=fake.api_key, base_url=fake.base_url,
                                        export_poll_interval=0.05))
    assert rows(pipeline, "SELECT count(*) FROM close.leads") == [(5,)]
    after = ([p.name for p in providers.providers], pa.default_memory_pool().backend_name,
             list(logging.getLogger("dlt").filters))
    assert after == before
