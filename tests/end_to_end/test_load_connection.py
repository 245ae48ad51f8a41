"""A run holds one connection to the DuckDB file for its load step, and only for it: during the
extract another process can open the file; during the load it cannot (the file stays open
between dlt's load jobs, which would otherwise close and reopen it for each); after the run,
finished or failed, the file is free again. Another process is the only witness: DuckDB shares
one database instance among the connections of a process, so this one could always open it.
That sharing shows the load's spill settings instead: the held database has them, and a
connection opened after the run does not.

The probes run where dlt's steps run: when dlt's extract writes its first item, and when its
load step (`Load.run`) begins and ends. Before dlt opens or after it closed its own connections,
only a held one can hold the file."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.storages.data_item_storage import DataItemStorage
from dlt.load.load import Load

from close_fake import FakeClose, generate_org
from close_source.run import load_memory
from tests.helpers import new_pipeline, rows, sync
from tests.invariant import every_table_mismatches

PROBE = """
import sys, duckdb
try:
    duckdb.connect(sys.argv[1], read_only=True).close()
    print("free")
except duckdb.Error as error:
    print(f"held: {error}")
"""


def probe(database: Path) -> str:
    """'free' when another process can open the DuckDB file, else 'held: <DuckDB's error>'."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(database)], capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip()


def database_of(pipeline: dlt.Pipeline) -> Path:
    return Path(pipeline.destination.config_params["credentials"]["database"])


class Probes:
    """What the probes saw, by the moment they saw it."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.seen: dict[str, list[str]] = {}

    def take(self, moment: str) -> None:
        self.seen.setdefault(moment, []).append(probe(self.database))


def probe_extract(monkeypatch: pytest.MonkeyPatch, probes: Probes) -> None:
    original = DataItemStorage.write_data_item

    def write_data_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        if "extract" not in probes.seen:
            probes.take("extract")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DataItemStorage, "write_data_item", write_data_item)


def probe_load(monkeypatch: pytest.MonkeyPatch, probes: Probes, fail: bool = False) -> None:
    original = Load.run

    def run(self: Any, pool: Any) -> Any:
        probes.take("load begins")
        if fail:
            raise RuntimeError("the test fails the load")
        metrics = original(self, pool)
        probes.take("load ends")
        return metrics

    monkeypatch.setattr(Load, "run", run)


SETTINGS = "SELECT name, value FROM duckdb_settings() WHERE name IN ('temp_directory', " \
           "'preserve_insertion_order', 'allocator_flush_threshold')"


def settings_of(pipeline: dlt.Pipeline) -> dict[str, str]:
    """The database's settings, as a connection of this process sees them."""
    return dict(rows(pipeline, SETTINGS))


def settings_during_load(monkeypatch: pytest.MonkeyPatch, pipeline: dlt.Pipeline,
                         seen: list[dict[str, str]]) -> None:
    original = Load.run

    def run(self: Any, pool: Any) -> Any:
        seen.append(settings_of(pipeline))  # the held database's, shared with this process
        return original(self, pool)

    monkeypatch.setattr(Load, "run", run)


@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeClose(generate_org(seed=29, leads=20)) as fake:
        yield fake


def test_the_file_is_held_during_the_load_only(fake: FakeClose, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch):
    pipeline = new_pipeline(tmp_path)
    probes = Probes(database_of(pipeline))
    probe_extract(monkeypatch, probes)
    probe_load(monkeypatch, probes)
    during: list[dict[str, str]] = []
    settings_during_load(monkeypatch, pipeline, during)
    sync(fake, tmp_path, pipeline=pipeline)
    spill = str(Path(pipeline.working_dir) / "duckdb-spill")
    assert during and all(seen["temp_directory"] == spill and
                          seen["preserve_insertion_order"] == "false" for seen in during), during
    assert settings_of(pipeline)["temp_directory"] != spill  # for the load only
    assert probes.seen["extract"] == ["free"]
    assert probes.seen["load begins"]
    for moment in ("load begins", "load ends"):
        assert all("Conflicting lock" in seen for seen in probes.seen[moment]), probes.seen
    assert probe(probes.database) == "free"  # closed after the run
    assert rows(pipeline, "SELECT count(*) FROM leads") == [(20,)]
    assert "load" not in vars(pipeline)  # dlt's own step again, outside a run


def test_a_failed_load_frees_the_file_and_the_next_run_resumes_on_a_held_one(
        fake: FakeClose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pipeline = new_pipeline(tmp_path)
    probes = Probes(database_of(pipeline))
    with monkeypatch.context() as failing:
        probe_load(failing, probes, fail=True)
        with pytest.raises(Exception, match="the test fails the load"):
            sync(fake, tmp_path, pipeline=pipeline)
    assert "Conflicting lock" in probes.seen["load begins"][0]
    assert probe(probes.database) == "free"
    assert pipeline.has_pending_data

    resumed = Probes(probes.database)
    probe_load(monkeypatch, resumed)
    sync(fake, tmp_path, pipeline=pipeline)  # loads the package the failed run left, then runs
    assert len(resumed.seen["load begins"]) >= 2  # the package left, then this run's
    for moment in ("load begins", "load ends"):
        assert all("Conflicting lock" in seen for seen in resumed.seen[moment]), resumed.seen
    assert probe(probes.database) == "free"
    assert rows(pipeline, "SELECT count(*) FROM leads") == [(20,)]


def test_a_load_that_runs_out_of_memory_loads_again_on_a_held_connection(
        fake: FakeClose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture):
    """The safety net under the sizing: sized far too small, DuckDB runs out, and the load is
    finished with twice the memory, as often as it takes, each time on a held connection."""
    monkeypatch.setattr(load_memory, "FLOOR_MB", 2)
    monkeypatch.setattr(load_memory, "MARGIN", 0)  # every file asks for nothing
    pipeline = new_pipeline(tmp_path)
    probes = Probes(database_of(pipeline))
    probe_load(monkeypatch, probes)
    with caplog.at_level(logging.WARNING, logger="close_source"):
        sync(fake, tmp_path, pipeline=pipeline)
    assert "DuckDB ran out of its 2 MB while loading" in caplog.text
    retries = caplog.text.count("ran out of its")
    assert len(probes.seen["load begins"]) >= retries + 1  # each retry is a load of its own
    for moment in ("load begins", "load ends"):
        assert all("Conflicting lock" in seen for seen in probes.seen[moment]), probes.seen
    assert probe(probes.database) == "free"
    assert not every_table_mismatches(fake.org, pipeline)
