"""A first load that dies resumes from the export file it downloaded: no new export while the
file is complete and less than a day old, a new one (said in a log line) when it is damaged or
stale; the file is deleted once a load that used it has committed. One that died before its
download completed waits for the same export job again and resumes the download."""

from __future__ import annotations

import hashlib
import json
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from close_fake import ExportSettings, FakeClose, generate_org
from close_source.pipeline import PIPELINE_NAME
from close_source.run.kept_export import DIRECTORY
from tests.cli_runs import KEY, output, pipeline_of, run_to_the_end, start_run
from tests.helpers import new_pipeline, sync
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


def export_downloads(fake: FakeClose) -> list[int | None]:
    """The download host's answers: 200 the whole file, 206 the rest of it, 416 nothing left."""
    return [r.status for r in fake.requests if r.path.startswith("/export-files/")]


@pytest.mark.parametrize("died", ["building", "downloading", "downloaded", "job gone"])
def test_a_load_that_died_before_its_download_completed_resumes_the_same_export(
        tmp_path: Path, died: str, caplog: pytest.LogCaptureFixture):
    """The first run fails while Close builds the export (it times out), or while the file
    downloads (the host breaks every transfer half-way); `downloaded`: it had every byte but
    not yet its manifest; `job gone`: the next run meets a Close that no longer has the job."""
    org = generate_org(seed=93, leads=30)
    fail = "stuck" if died == "building" else "broken_download"
    with FakeClose(org, export=ExportSettings(fail=fail)) as fake:
        pipeline = new_pipeline(tmp_path)
        with pytest.raises(Exception, match="not done after|kept failing"):
            # a stuck build times out; a download must be reached however busy the machine
            sync(fake, tmp_path, pipeline=pipeline, export_fallback=False,
                 export_timeout=0.3 if died == "building" else 60.0, max_attempts=2)
        directory = Path(pipeline.working_dir) / DIRECTORY
        (job,) = [path.name.removesuffix(".pending.json")
                  for path in directory.glob("*.pending.json")]
        partial = directory / f"{job}.json.gz"
        if died == "building":
            assert not partial.exists()
        else:
            whole = fake.exports.job(job).path.read_bytes()
            assert 0 < partial.stat().st_size < len(whole)
            if died == "downloaded":
                partial.write_bytes(whole)
        fake.exports.settings.fail = None
        served = len(export_downloads(fake))
        caplog.clear()
        if died == "job gone":
            with FakeClose(org, export=ExportSettings()) as other:
                sync(other, tmp_path, pipeline=pipeline)
            assert export_jobs(other) == 1  # a new one
            assert f"export {job} cannot be resumed" in caplog.text
        else:
            sync(fake, tmp_path, pipeline=pipeline)
            assert export_jobs(fake) == 1  # no new export
            assert f"resuming export {job} created by an earlier run" in caplog.text
            resumed = {"building": 200, "downloading": 206, "downloaded": 416}[died]
            assert export_downloads(fake)[served:] == [resumed]
        assert not list(directory.iterdir())  # the file, its manifest and the record: gone
    assert pipeline.state["sources"]["close"]["full_load"]["method"] == "export"
    assert not every_table_mismatches(org, pipeline)
    assert not duplicate_keys(pipeline)


def test_a_kept_file_that_cannot_be_read_is_deleted_for_a_new_export(tmp_path: Path):
    """Complete by its manifest, but its gzip stream is damaged (bytes spliced wrong when a
    download resumed): the run fails, and the next one asks Close for a new export."""
    org = generate_org(seed=94, leads=30)
    with FakeClose(org, api_key=KEY) as fake:
        killed_mid_extract(tmp_path, fake)
        (kept,) = [tmp_path / "dlt_data" / "pipelines" / PIPELINE_NAME / DIRECTORY / name
                   for name in kept_files(tmp_path) if name.endswith(".json.gz")]
        manifest = kept.with_name(kept.name.replace(".json.gz", ".manifest.json"))
        data = bytearray(kept.read_bytes())
        data[len(data) // 2] ^= 0xFF
        kept.write_bytes(bytes(data))
        record = json.loads(manifest.read_text())
        record["sha256"] = hashlib.sha256(data).hexdigest()  # the damage came before it
        manifest.write_text(json.dumps(record))
        failed = start_run(tmp_path, fake, None, log="failed.log")
        failed.wait(timeout=300)
        assert failed.returncode != 0
        assert "could not be read to its end and was deleted" in output(tmp_path, "failed.log")
        assert kept_files(tmp_path) == []
        run_to_the_end(tmp_path, fake, None, log="again.log")
        assert export_jobs(fake) == 2
    pipeline = pipeline_of(tmp_path, None)
    assert not every_table_mismatches(org, pipeline)
    assert not duplicate_keys(pipeline)


def test_a_load_that_fell_back_to_the_lists_leaves_no_export_behind(tmp_path: Path):
    """The download kept failing and the run loaded from list endpoints instead: it gave the
    export up, and its partial file and record are deleted (no later run resumes it)."""
    org = generate_org(seed=95, leads=30)
    with FakeClose(org, export=ExportSettings(fail="broken_download")) as fake:
        pipeline = sync(fake, tmp_path, max_attempts=2)
        assert export_jobs(fake) == 1
    assert pipeline.state["sources"]["close"]["full_load"]["method"] == "lists"
    assert not list((Path(pipeline.working_dir) / DIRECTORY).iterdir())
    assert not every_table_mismatches(org, pipeline)
