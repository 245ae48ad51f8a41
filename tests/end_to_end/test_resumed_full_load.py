"""A first load that dies resumes from the export file it downloaded: no new export while the
file is complete and less than a day old, a new one (said in a log line) when it is damaged or
stale; the file is deleted once a load that used it has committed."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest

from close_fake import FakeClose, generate_org
from close_source.pipeline import PIPELINE_NAME
from close_source.run.kept_export import DIRECTORY
from tests.cli_runs import KEY, output, pipeline_of, run_to_the_end, start_run
from tests.invariant import duplicate_keys, every_table_mismatches


def export_jobs(fake: FakeClose) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.endpoint == "/export/lead/")


def kept_files(workdir: Path) -> list[str]:
    directory = workdir / "dlt_data" / "pipelines" / PIPELINE_NAME / DIRECTORY
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def killed_mid_extract(workdir: Path, fake: FakeClose) -> None:
    """A first load killed while it turns the downloaded export into rows."""
    killed = start_run(workdir, fake, None, hook="kill-mid-extract", CLOSE_TEST_TABLE="calls")
    killed.wait(timeout=300)
    assert killed.returncode == -signal.SIGKILL, output(workdir)
    assert export_jobs(fake) == 1
    assert len(kept_files(workdir)) == 2, kept_files(workdir)  # the file and its manifest


def test_a_killed_first_load_resumes_from_the_kept_export(tmp_path: Path):
    org = generate_org(seed=91, leads=30)
    with FakeClose(org, api_key=KEY) as fake:
        killed_mid_extract(tmp_path, fake)
        working_dir = tmp_path / "dlt_data" / "pipelines" / PIPELINE_NAME
        half_extracted = [path for path in (working_dir / "normalize").iterdir()
                          if path.is_dir() and path.name != "extracted"]
        assert half_extracted
        run_to_the_end(tmp_path, fake, None, log="resumed.log")
        assert export_jobs(fake) == 1  # no new export
        log = (tmp_path / "resumed.log").read_text()
        assert "resuming the full load from export" in log
        assert "a run stopped part-way had left behind" in log
        assert not [path for path in half_extracted if path.exists()]
        assert kept_files(tmp_path) == []  # deleted once the load committed
        run_to_the_end(tmp_path, fake, None, log="next.log")  # incremental from its T0
        assert export_jobs(fake) == 1
    pipeline = pipeline_of(tmp_path, None)
    assert not every_table_mismatches(org, pipeline)
    assert not duplicate_keys(pipeline)


@pytest.mark.parametrize("damage", ["corrupted", "truncated", "stale"])
def test_a_damaged_or_stale_kept_export_is_discarded_and_a_new_one_made(tmp_path: Path,
                                                                          damage: str):
    org = generate_org(seed=92, leads=30)
    with FakeClose(org, api_key=KEY) as fake:
        killed_mid_extract(tmp_path, fake)
        (kept,) = [tmp_path / "dlt_data" / "pipelines" / PIPELINE_NAME / DIRECTORY / name
                   for name in kept_files(tmp_path) if name.endswith(".json.gz")]
        data = bytearray(kept.read_bytes())
        if damage == "corrupted":
            data[len(data) // 2] ^= 0xFF
            kept.write_bytes(bytes(data))
        elif damage == "truncated":
            kept.write_bytes(bytes(data[: len(data) // 2]))
        else:
            org.advance(timedelta(days=1, hours=1))
        run_to_the_end(tmp_path, fake, None, log="again.log")
        assert export_jobs(fake) == 2
        log = (tmp_path / "again.log").read_text()
        reason = {"corrupted": "checksum does not match", "truncated": "its manifest says",
                  "stale": "a resumed load uses exports younger than a day"}[damage]
        assert f"discarding the kept export file {kept.name}" in log and reason in log, log
        assert "resuming the full load" not in log
        assert kept_files(tmp_path) == []
    pipeline = pipeline_of(tmp_path, None)
    assert not every_table_mismatches(org, pipeline)
    assert not duplicate_keys(pipeline)
