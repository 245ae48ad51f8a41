"""The export file of a full load, kept until a load that used it has committed.

A first load of a large organisation downloads gigabytes that Close took many minutes to
build; a run that dies before its load commits (killed, network lost, disk full) must not ask
for a new export. The file is downloaded into the pipeline's working directory and a manifest
beside it says what it is (export id, T0, size, sha256). The next full load resumes from it
when it is complete (same size and checksum) and less than a day old, and the file is deleted
once a load that used it has committed (its export id is then the state's last full load).

A run killed while Close was still building the export, or during its download, leaves a
record of the job (`<id>.pending.json`, with the partial download beside it): the next run
waits for that job again and resumes the download where it stopped, instead of asking Close
for a new export (on a large organisation, one that takes as long to build).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

DIRECTORY = "close-export"  # in the pipeline's working directory
MAX_AGE = timedelta(days=1)
SUFFIX, MANIFEST_SUFFIX, PENDING_SUFFIX = ".json.gz", ".manifest.json", ".pending.json"


@dataclass(frozen=True)
class KeptExport:
    """A downloaded export file and what its manifest says of it."""

    path: Path
    export_id: str
    created_at: datetime  # T0: the export's creation, on Close's clock
    exact: bool  # T0 is the export's own `date_created` (not a response's Date header)
    size: int
    sha256: str

    @property
    def manifest(self) -> Path:
        return manifest_of(self.path)


def manifest_of(path: Path) -> Path:
    return _beside(path, MANIFEST_SUFFIX)


def _beside(path: Path, suffix: str) -> Path:
    """A record kept beside the export file `path`."""
    return path.with_name(path.name.removesuffix(SUFFIX) + suffix)


def download_path(directory: Path, export_id: str) -> Path:
    return directory / f"{export_id}{SUFFIX}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def keep(path: Path, export_id: str, created_at: datetime, exact: bool) -> KeptExport:
    """The download is complete: write its manifest, so a later run can trust the file."""
    kept = KeptExport(path, export_id, created_at, exact, path.stat().st_size, sha256_of(path))
    record = {**asdict(kept), "path": path.name, "created_at": created_at.astimezone(UTC)
              .isoformat(), "kept_at": datetime.now(UTC).isoformat()}
    kept.manifest.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    pending_of(path).unlink(missing_ok=True)
    return kept


def find(directory: Path, now: datetime, loaded_export_id: str | None) -> KeptExport | None:
    """A kept export to resume from, if one is complete, young enough and not loaded yet;
    any other file here is deleted, each with a line saying why."""
    if not directory.is_dir():
        return None
    found = None
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        if pending_of(path).exists() and not manifest_of(path).exists():
            continue  # a partial download, resumed by `find_pending`'s caller
        kept, problem = _check(path, now, loaded_export_id)
        if kept is not None and found is None:
            found = kept
            continue
        if kept is not None:
            problem = f"export {kept.export_id} is not the newest kept export"
        log.warning("discarding the kept export file %s: %s", path.name, problem)
        discard(path)
    for manifest in directory.glob(f"*{MANIFEST_SUFFIX}"):  # manifests left without a file
        if not file_of(manifest, MANIFEST_SUFFIX).exists():
            manifest.unlink(missing_ok=True)
    return found


def _check(path: Path, now: datetime,
           loaded_export_id: str | None) -> tuple[KeptExport | None, str]:
    manifest = manifest_of(path)
    if not manifest.exists():
        return None, "its download never completed"
    try:
        record = json.loads(manifest.read_text(encoding="utf-8"))
        kept = KeptExport(path, str(record["export_id"]),
                          datetime.fromisoformat(record["created_at"]), bool(record["exact"]),
                          int(record["size"]), str(record["sha256"]))
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"its manifest is unreadable ({exc})"
    if kept.export_id == loaded_export_id:
        return None, "a load that used it has committed"
    if too_old := _too_old(kept.created_at, now):
        return None, too_old
    size = path.stat().st_size
    if size != kept.size:
        return None, f"it holds {size:,} bytes, its manifest says {kept.size:,}"
    if sha256_of(path) != kept.sha256:
        return None, "its checksum does not match its manifest (the file is damaged)"
    return kept, ""


def _too_old(created_at: datetime, now: datetime) -> str | None:
    """Why an export is too old to resume from, if it is."""
    age = now - created_at
    if age <= MAX_AGE:
        return None
    hours = age.total_seconds() / 3600
    return f"it is {hours:.0f} hours old (a resumed load uses exports younger than a day)"


def file_of(record: Path, suffix: str) -> Path:
    """The export file a manifest or a pending job's record (`suffix`) belongs to."""
    return record.with_name(record.name.removesuffix(suffix) + SUFFIX)


def discard(path: Path) -> None:
    path.unlink(missing_ok=True)
    manifest_of(path).unlink(missing_ok=True)
    pending_of(path).unlink(missing_ok=True)


# ---- export jobs not downloaded yet ---------------------------------------------------------


@dataclass(frozen=True)
class PendingExport:
    """An export job a run created and did not finish downloading."""

    path: Path  # where its download goes (partly there, or not yet)
    export_id: str
    created_at: datetime
    exact: bool


def pending_of(path: Path) -> Path:
    return _beside(path, PENDING_SUFFIX)


def remember_pending(directory: Path, export_id: str, created_at: datetime,
                     exact: bool) -> None:
    """Close is building the export: a run killed before its download completed can wait
    for this job again (the record goes when the file is kept, `keep`)."""
    directory.mkdir(parents=True, exist_ok=True)
    record = {"export_id": export_id, "exact": exact,
              "created_at": created_at.astimezone(UTC).isoformat()}
    pending_of(download_path(directory, export_id)).write_text(
        json.dumps(record, indent=2) + "\n", encoding="utf-8")


def find_pending(directory: Path, now: datetime) -> PendingExport | None:
    """The newest export job an earlier run left unfinished, if it is younger than a day;
    the others are deleted, with their partial downloads."""
    if not directory.is_dir():
        return None
    jobs: list[PendingExport] = []
    for record_path in directory.glob(f"*{PENDING_SUFFIX}"):
        path = file_of(record_path, PENDING_SUFFIX)
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            job = PendingExport(path, str(record["export_id"]),
                                datetime.fromisoformat(record["created_at"]),
                                bool(record["exact"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("discarding the record of export job %s: it is unreadable (%s)",
                        record_path.name, exc)
            discard(path)
            continue
        if too_old := _too_old(job.created_at, now):
            log.warning("discarding export job %s: %s", job.export_id, too_old)
            discard(path)
            continue
        jobs.append(job)
    jobs.sort(key=lambda job: job.created_at, reverse=True)
    for older in jobs[1:]:
        log.warning("discarding export job %s: it is not the newest unfinished one",
                    older.export_id)
        discard(older.path)
    return jobs[0] if jobs else None


def discard_loaded(directory: Path, loaded_export_id: str | None) -> None:
    """After a load committed: the file it used is no longer needed."""
    if loaded_export_id and directory.is_dir():
        path = download_path(directory, loaded_export_id)
        if path.exists() or manifest_of(path).exists():
            discard(path)
            log.info("export %s is loaded; its kept file was deleted", loaded_export_id)


def discard_pending(directory: Path) -> None:
    """The run gave up on its export (and loads from list endpoints): no later run resumes it,
    and its partial download goes."""
    for record in directory.glob(f"*{PENDING_SUFFIX}") if directory.is_dir() else []:
        discard(file_of(record, PENDING_SUFFIX))
