"""dlt resources: each read path's objects, shaped, as Arrow tables.

- one resource per catalog entry read from its list endpoint;
- one `export` resource for a full load: the Export API for every table it carries, falling back
  to those tables' list endpoints when the job or its download fails (unless told not to). A
  file that breaks while it is being decoded fails the run instead: rows were already handed
  to dlt, and a replaced table must not hold the same object twice.

The time from which the next incremental run must replay the Event Log (T0) is taken from
Close's clock before any object is read, and written to the source state, which dlt commits
atomically with the load: a failed run leaves the previous T0 in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from close_source.arrow_tables import ArrowBatcher
from close_source.catalog import BY_TABLE, Entry
from close_source.errors import AccessDenied, ApiError, UnreachableError
from close_source.export import (
    ExportFailed,
    ExportJob,
    ExportRouter,
    iter_leads,
    run_export_job,
)
from close_source.lists import ReadContext, read_entry
from close_source.shaping import DELETED_AT, child_table, shape

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(frozen=True)
class ExportOptions:
    include_activities: bool = True
    fallback: bool = True
    timeout: float = 6 * 3600.0
    poll_initial: float = 1.0
    backup_dir: str | None = None
    export_file: str | None = None  # load this export file (a backup) instead of a new job


def list_resource(ctx: ReadContext, entry: Entry) -> DltResource:
    def read() -> Iterator[object]:
        batcher = ArrowBatcher.for_entries([entry], custom=ctx.custom,
                                           soft_deletes=ctx.soft_deletes)
        yield from _from_lists(ctx, [entry], batcher)
        yield from _keep_soft_deleted(ctx, [entry], batcher)
        yield from batcher.flush()
        _save_custom_columns(ctx, [entry])
        _record_watermark(ctx)

    return dlt.resource(read, name=entry.table, parallelized=True)


def export_resource(ctx: ReadContext, tables: Iterable[str], options: ExportOptions) -> DltResource:
    entries = [BY_TABLE[table] for table in tables]

    def read() -> Iterator[object]:
        batcher = ArrowBatcher.for_entries(entries, custom=ctx.custom,
                                           soft_deletes=ctx.soft_deletes)
        with tempfile.TemporaryDirectory(prefix="close-export-") as workdir:
            try:
                export = _obtain_export(ctx, options, Path(workdir))
            except (ExportFailed, UnreachableError, ApiError) as exc:
                # nothing was yielded yet, so the list endpoints can take over cleanly
                if not options.fallback or options.backup_dir:
                    raise
                log.warning("the export failed (%s); loading %s from list endpoints instead",
                            exc, ", ".join(e.table for e in entries))
                yield from _from_lists(ctx, entries, batcher)
                _record_full_load("lists", ctx.started_at)
            else:
                counts = yield from load_export_file(ctx, export.path, entries, batcher)
                for entry in entries:
                    batcher.completed(entry.table)
                if options.backup_dir and export.job is not None:
                    _write_backup(Path(options.backup_dir), export.path, export.job.export,
                                  export.job.created_at, counts)
                if export.t0 is not None:
                    _record_full_load(export.method, export.t0, export_id=export.export_id)
        yield from _keep_soft_deleted(ctx, entries, batcher)
        yield from batcher.flush()
        _save_custom_columns(ctx, entries)
        _record_watermark(ctx)

    return dlt.resource(read, name="export", parallelized=True)


@dataclass(frozen=True)
class _Export:
    path: Path
    method: str
    t0: datetime | None
    export_id: str | None
    job: ExportJob | None = None


def _obtain_export(ctx: ReadContext, options: ExportOptions, workdir: Path) -> _Export:
    """A ready export file: the one given (a backup), or a new job's, downloaded."""
    if options.export_file:
        path = Path(options.export_file)
        manifest = path.with_name(path.name.removesuffix(".json.gz") + ".manifest.json")
        if not manifest.exists():
            log.warning("%s has no manifest: the next incremental run cannot know what this "
                        "file's T0 was", path)
            return _Export(path, "export_file", None, None)
        kept = json.loads(manifest.read_text(encoding="utf-8"))
        return _Export(path, "export_file", datetime.fromisoformat(kept["created_at"]),
                       kept["export_id"])
    job = run_export_job(ctx.client, include_activities=options.include_activities,
                         timeout=options.timeout, poll_initial=options.poll_initial)
    path = workdir / f"{job.export_id}.json.gz"
    size = ctx.client.download(job.export["download_url"], path)
    log.info("export %s downloaded (%.1f MB); loading", job.export_id, size / 1e6)
    return _Export(path, "export", job.created_at, job.export_id, job)


def _from_lists(ctx: ReadContext, entries: list[Entry],
                batcher: ArrowBatcher) -> Iterator[object]:
    for entry in entries:
        try:
            for page in read_entry(ctx, entry):
                for obj in page:
                    for table, row in shape(entry, obj, ctx.custom):
                        yield from batcher.add(table, row)
        except AccessDenied as exc:
            log.warning("skipping %s: this API key may not read /%s (%s: %s)",
                        entry.table, exc.path.strip("/"), exc.status, exc.api_message)
        else:
            batcher.completed(entry.table)


def load_export_file(ctx: ReadContext, path: Path, entries: list[Entry],
                     batcher: ArrowBatcher) -> Generator[object, None, dict[str, int]]:
    """Every lead of an export file, routed and shaped; returns objects seen per table."""
    router = ExportRouter({entry.table for entry in entries})
    for leads, lead in enumerate(iter_leads(path), 1):
        for entry, obj in router.route(lead):
            for table, row in shape(entry, obj, ctx.custom):
                yield from batcher.add(table, row)
        if leads % 5000 == 0:
            log.info("%s: %d leads loaded", path.name, leads)
    return router.counts


def _keep_soft_deleted(ctx: ReadContext, entries: Iterable[Entry],
                       batcher: ArrowBatcher) -> Iterator[object]:
    """Soft deletes and a full load, which replaces tables: rows of objects Close no longer
    has stay, with their child rows, and with `_deleted_at` (this run's start when Close
    deleted the object since the last run: no event tells when)."""
    if not ctx.keep_deleted or batcher.seen_ids is None:
        return
    for entry in entries:
        seen = batcher.seen_ids.get(entry.table)
        if seen is None or not batcher.is_complete(entry.table):
            continue
        gone = [object_id for object_id in ctx.warehouse.all_ids(entry.table)
                if object_id not in seen]
        if not gone:
            continue
        log.info("%s: %d rows of deleted objects kept (deletes = \"soft\")", entry.table,
                 len(gone))
        for row in ctx.warehouse.rows_where(entry.table, "id", gone):
            if row.get(DELETED_AT) is None:
                row[DELETED_AT] = ctx.started_at or datetime.now(UTC)
            yield from batcher.add(entry.table, row)
        for list_name in entry.child_lists:
            table = child_table(entry, list_name)
            for row in ctx.warehouse.rows_where(table, entry.child_key or "parent_id", gone):
                yield from batcher.add(table, row)


def _save_custom_columns(ctx: ReadContext, entries: Iterable[Entry]) -> None:
    """Columns named in this run stay named so: the state is committed with the load."""
    if ctx.custom is not None and any(e.custom_field_type or e.read == "definitions"
                                      for e in entries):
        ctx.custom.save(dlt.current.source_state())


def _record_full_load(method: str, t0: datetime | None, **extra: Any) -> None:
    """T0 for the next incremental run, committed with this load."""
    state = dlt.current.source_state().setdefault("full_load", {})
    state.update(version=STATE_VERSION, method=method,
                 t0=(t0 or datetime.now(UTC)).astimezone(UTC).isoformat(), **extra)


def _record_watermark(ctx: ReadContext) -> None:
    """A full load over every event-driven table: the next run replays the Event Log from the
    moment this run began (Close's clock, taken before anything was read)."""
    if ctx.full_load_watermark is not None:
        from close_source.incremental import Watermark, save_watermark

        save_watermark(Watermark(ctx.full_load_watermark, ctx.full_load_watermark))


def _write_backup(directory: Path, path: Path, export: dict[str, Any], created_at: datetime,
                  counts: dict[str, int]) -> None:
    """The export file exactly as downloaded, and a manifest that says what it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / path.name
    shutil.copyfile(path, target)
    digest = hashlib.sha256()
    with open(target, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    manifest = {
        "export_id": export["id"],
        "created_at": created_at.astimezone(UTC).isoformat(),
        "file": target.name,
        "bytes": target.stat().st_size,
        "sha256": digest.hexdigest(),
        "format": export.get("format", "json"),
        "type": export.get("type", "leads"),
        "counts": dict(sorted(counts.items())),
    }
    (directory / f"{path.stem.removesuffix('.json')}.manifest.json").write_text(
        json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info("backup written to %s", directory)
