"""dlt's own tools work on the pipeline `close-sync run` made, and dlt's schema contract can be
set as a source setting and reaches dlt."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from close_fake import FakeClose, generate_org
from close_fake import mutations as m
from close_fake import org as o
from tests.cli_runs import KEY, assert_one_line_user_error, close_sync, pipeline_of
from tests.helpers import rows
from tests.invariant import every_table_mismatches

DLT = Path(sys.executable).parent / "dlt"  # dlt's command line, beside this interpreter


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """An organisation and the directory `close-sync run` synced it from (DLT_DATA_DIR in it)."""
    workdir = tmp_path_factory.mktemp("dlt_tools")
    org = generate_org(seed=66, leads=8)
    with FakeClose(org, api_key=KEY) as fake:
        env = {"SOURCES__CLOSE__API_KEY": KEY, "SOURCES__CLOSE__BASE_URL": fake.base_url,
               "SOURCES__CLOSE__EXPORT_POLL_INTERVAL": "0.02"}
        result = close_sync(["run"], workdir, **env)
        assert result.returncode == 0, result.stderr
        yield org, env, workdir


@pytest.mark.parametrize(("command", "says"), [
    ("info", "pipeline_name: close_crm"),
    ("trace", "COMPLETED"),
    ("load-package", "is in LOADED state"),
    ("schema", "  leads:\n"),
])
def test_dlt_pipeline_commands_read_the_pipeline(synced, command, says):
    _, _, workdir = synced
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    environment.update(DLT_DATA_DIR=str(workdir / "dlt_data"), RUNTIME__DLTHUB_TELEMETRY="false")
    result = subprocess.run([str(DLT), "pipeline", "close_crm", command], cwd=workdir,
                            env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Found pipeline close_crm in {workdir / 'dlt_data' / 'pipelines'}" in result.stdout
    assert says in result.stdout


def test_a_schema_contract_setting_reaches_dlt(synced):
    """Frozen columns stop the run at a new custom field, in one line, loading nothing; without
    the setting the next run adds the column and every table is exact."""
    org, env, workdir = synced
    org.advance(timedelta(minutes=10))
    field = m.add_field(org, "lead", "Contract probe", "text")
    m.set_custom(org, o.LEAD, org.all(o.LEAD)[0]["id"], field["id"], "probe")
    org.advance(timedelta(seconds=30))
    pipeline = pipeline_of(workdir, None)
    [(loads,)] = rows(pipeline, "SELECT count(*) FROM close._dlt_loads")

    frozen = close_sync(["run"], workdir, **env,
                        SOURCES__CLOSE__SCHEMA_CONTRACT='{"columns": "freeze"}')
    assert_one_line_user_error(frozen, "[sources.close] schema_contract "
                               "(SOURCES__CLOSE__SCHEMA_CONTRACT) refused column "
                               "custom_contract_probe in table leads (columns: freeze)")
    assert rows(pipeline, "SELECT count(*) FROM close._dlt_loads") == [(loads,)]
    assert "custom_contract_probe" not in columns(pipeline, "leads")

    result = close_sync(["run"], workdir, **env)
    assert result.returncode == 0, result.stderr
    assert "custom_contract_probe" in columns(pipeline, "leads")
    assert every_table_mismatches(org, pipeline) == {}


def columns(pipeline, table: str) -> set[str]:
    return {name for (name,) in rows(pipeline, "SELECT column_name FROM "
                                     f"information_schema.columns WHERE table_name = '{table}'")}
