"""dlt's DuckDB settings choose the file, as in any dlt pipeline; the default stays
`./close_crm.duckdb`, and the loading connection keeps its memory limit and thread count."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from close_fake import FakeClose, generate_org
from close_source.pipeline import DUCKDB_LOAD_CONFIG, PIPELINE_NAME, make_pipeline
from tests.cli_runs import KEY, output, run_to_the_end
from tests.helpers import rows


def leads_in(database: Path) -> int:
    with duckdb.connect(str(database), read_only=True) as db:
        return int(db.sql("SELECT count(*) FROM close.leads").fetchall()[0][0])


@pytest.mark.parametrize("where", ["environment", "secrets.toml", "default"])
def test_the_duckdb_file_is_where_dlt_config_says(tmp_path, where):
    org = generate_org(seed=71, leads=6)
    elsewhere = tmp_path / "warehouse" / "crm.duckdb"
    elsewhere.parent.mkdir()
    env: dict[str, str] = {}
    if where == "environment":
        env["DESTINATION__DUCKDB__CREDENTIALS"] = str(elsewhere)
    elif where == "secrets.toml":  # relative to the working directory, as dlt resolves it
        (tmp_path / ".dlt").mkdir()
        (tmp_path / ".dlt" / "secrets.toml").write_text(
            '[destination.duckdb]\ncredentials = "warehouse/crm.duckdb"\n')
    with FakeClose(org, api_key=KEY) as fake:
        run_to_the_end(tmp_path, fake, None, **env)
    default = tmp_path / f"{PIPELINE_NAME}.duckdb"
    expected, absent = (default, elsewhere) if where == "default" else (elsewhere, default)
    assert leads_in(expected) == 6, output(tmp_path)
    assert not absent.exists()


def test_the_loading_connection_keeps_its_limits_with_a_configured_file(tmp_path,
                                                                        monkeypatch):
    database = tmp_path / "configured.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(database))
    pipeline = make_pipeline(None, pipeline_name="limits", progress=False,
                             pipelines_dir=str(tmp_path / "pipelines"))
    credentials = pipeline.destination_client().config.credentials
    assert credentials.database == str(database)
    assert credentials.global_config == DUCKDB_LOAD_CONFIG
    assert rows(pipeline, "SELECT current_setting('memory_limit'), "
                          "current_setting('threads')") == [("61.0 MiB", 1)]  # 64 MB
    assert database.exists()
