"""examples/airflow: Airflow parses the DAG, and its task syncs the fake Close exactly.

In a separate interpreter: importing Airflow adds a root log handler on stdout and reads
AIRFLOW_HOME, which must not leak into other tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from close_fake import FakeClose, generate_org
from tests.cli_runs import pipeline_of
from tests.helpers import rows
from tests.invariant import every_table_mismatches

DAGS = Path(__file__).resolve().parents[2] / "examples" / "airflow"

CHECK = """
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
found = {"import_errors": {path: str(error) for path, error in bag.import_errors.items()},
         "dags": sorted(bag.dags)}
dag = bag.dags.get("close_sync")
if dag is not None:
    task = dag.get_task("sync")
    found.update(tasks=[t.task_id for t in dag.tasks], max_active_runs=dag.max_active_runs,
                 catchup=dag.catchup, retries=task.retries,
                 schedule=str(dag.schedule))
    found["returned"] = task.python_callable()  # what the task pushes to XCom
with open(sys.argv[2], "w") as out:
    json.dump(found, out)
"""


def test_the_dag_file_compiles():
    """Without Airflow too: the example is at least valid Python."""
    path = DAGS / "close_sync_dag.py"
    compile(path.read_text(), str(path), "exec")


@pytest.mark.skipif(importlib.util.find_spec("airflow") is None,
                    reason="the `airflow` extra (dev.py installs it)")
def test_airflow_parses_the_dag_and_its_task_syncs_every_table(tmp_path):
    org = generate_org(seed=61, leads=10)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "DESTINATION__", "PROVIDERS__"))}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), RUNTIME__DLTHUB_TELEMETRY="false",
               CLOSE_PIPELINES_DIR=str(tmp_path / "dlt_data" / "pipelines"))
    with FakeClose(org) as fake:
        env.update(SOURCES__CLOSE__API_KEY=fake.api_key, SOURCES__CLOSE__BASE_URL=fake.base_url,
                   SOURCES__CLOSE__EXPORT_POLL_INTERVAL="0.01")
        done = subprocess.run([sys.executable, "-c", CHECK, str(DAGS), str(tmp_path / "out.json")],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((tmp_path / "out.json").read_text())
    assert found["import_errors"] == {} and found["dags"] == ["close_sync"]
    assert found["tasks"] == ["sync"] and found["max_active_runs"] == 1
    assert found["catchup"] is False and found["retries"] == 2
    assert found["schedule"] == "7 * * * *"
    # the task's log (Airflow's handler on stdout here): the stages and the summary, no details
    logged = [line for line in done.stdout.splitlines() if "[close_sync]" in line]
    assert [line.split("] ", 1)[1].split(":")[0] for line in logged] == [
        "plan", "extract", "normalize", "load", "settle", "summary"], done.stdout[-3000:]
    assert "full read (first load of this table)" not in done.stdout.replace(logged[0], "")
    pipeline = pipeline_of(tmp_path, None)  # the task's: close_crm.duckdb in its directory
    assert every_table_mismatches(org, pipeline) == {}
    [(leads,)] = rows(pipeline, "SELECT count(*) FROM close.leads")
    assert found["returned"]["leads"] == leads > 0
