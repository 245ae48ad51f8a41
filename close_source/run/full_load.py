"""dlt resources: one per table, named after it, fed by the run's read paths.

A table read from its list endpoint is a resource of its own. Tables that one read serves
together (the export: leads, contacts, opportunities, activities; the Event Log window) are
dlt transformers of that read's resource (`read_export`, `read_event_log`, not loaded
themselves): `close_source().with_resources("leads", "calls")` selects table resources as
dlt users expect, and the shared read, run once, reads only the tables selected.

The export resource falls back to those tables' list endpoints when the job or its download
fails (unless told not to). A file that breaks while it is being decoded fails the run
instead: rows were already handed to dlt, and a replaced table must not hold the same object
twice.

Each resource records, in the source state dlt commits with the load, where its tables were
synced to (`state.py`): T0 for a full read, taken from Close's clock before any object was
read, so the next run replays every later change from the Event Log.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dlt
from dlt.extract.resource import DltResource

from close_source.catalog import BY_TABLE, Entry, child_table
from close_source.errors import AccessDenied, ApiError, UnreachableError
from close_source.progress import Progress, megabytes
from close_source.read.backup import export_of
from close_source.read.export import ExportJob, ExportRouter, resume_export_job, run_export_job
from close_source.read.export_file import ExportFailed, iter_leads
from close_source.read.lists import read_entry
from close_source.records import DELETED_AT, Page
from close_source.run import kept_export
from close_source.run import state as st
from close_source.run.context import RunContext, pipeline_directory
from close_source.run.definition_changes import definition_changes
from close_source.run.resources import (
    check_pipeline,
    finish_full_read,
    selected_among,
    table_resources,
)
from close_source.shape.batcher import ArrowBatcher
from close_source.stages import note

log = logging.getLogger(__name__)


EXPORT_READER = "read_export"


@dataclass(frozen=True)
class ExportOptions:
    include_activities: bool = True
    fallback: bool = True
    timeout: float = 6 * 3600.0
    poll_initial: float = 1.0
    backup_dir: str | None = None
    export_file: str | None = None  # load this export file (a backup) instead of a new job


def list_resource(ctx: RunContext, entry: Entry) -> DltResource:
    """A table read in full from its list endpoint (replaced in the destination)."""

    def read() -> Iterator[object]:
        check_pipeline(ctx)
        with closing(_batcher(ctx, [entry])) as batcher:
            yield from _from_lists(ctx, [entry], batcher)
            yield from _keep_soft_deleted(ctx, [entry], batcher)
            yield from batcher.flush()
            batcher.report_duplicates()
        finish_full_read(ctx, [entry.table], ctx.started_at)
        if ctx.backup is not None:
            ctx.backup.completed([entry.table])

    return dlt.resource(read, name=entry.table, parallelized=True)


def export_resources(ctx: RunContext, tables: Iterable[str],
                     options: ExportOptions) -> list[DltResource]:
    """The export's reader and one resource per table it serves."""
    tables = list(tables)

    def read() -> Iterator[object]:
        check_pipeline(ctx)
        entries = [BY_TABLE[table] for table in selected_among(tables, EXPORT_READER)]
        if entries:
            yield from _read_export(ctx, entries, options)

    reader = dlt.resource(read, name=EXPORT_READER, parallelized=True, selected=False)
    return [reader, *table_resources(reader, tables)]


def _batcher(ctx: RunContext, entries: list[Entry]) -> ArrowBatcher:
    return ArrowBatcher.for_entries(entries, custom=ctx.custom, soft_deletes=ctx.soft_deletes,
                                    scratch=pipeline_directory(),
                                    history=ctx.settings.history,
                                    dropped=ctx.read.privacy.dropped_tables)


def _read_export(ctx: RunContext, entries: list[Entry],
                 options: ExportOptions) -> Iterator[object]:
    with closing(_batcher(ctx, entries)) as batcher:
        yield from _export_into(ctx, entries, options, batcher)


def _export_into(ctx: RunContext, entries: list[Entry], options: ExportOptions,
                 batcher: ArrowBatcher) -> Iterator[object]:
    tables = [entry.table for entry in entries]
    with _export_directory() as (directory, keeps):
        try:
            export = _obtain_export(ctx, options, directory, keeps)
        except (ExportFailed, UnreachableError, ApiError) as exc:
            # nothing was yielded yet, so the list endpoints can take over cleanly
            if not options.fallback or options.backup_dir:
                raise
            log.warning("the export failed (%s); loading %s from list endpoints instead",
                        exc, ", ".join(tables))
            if keeps:
                kept_export.discard_pending(directory)
            yield from _from_lists(ctx, entries, batcher)
            t0: datetime | None = ctx.started_at
            exact = False
            st.record_full_load(dlt.current.source_state(), "lists", ctx.started_at)
        else:
            try:
                counts = yield from load_export_file(ctx, export.path, entries, batcher)
            except ExportFailed:
                if keeps and export.method == "export":  # not the next run's to resume
                    kept_export.discard(export.path)
                    log.warning("export file %s could not be read to its end and was deleted: "
                                "the next run asks Close for a new export", export.path.name)
                raise
            for entry in entries:
                batcher.completed(entry.table)
            if ctx.backup is not None and export.export_id and export.t0:
                ctx.backup.keep_export(export.path, export.export_id, export.t0, export.exact,
                                       counts)
            t0, exact = export.t0, export.exact
            if t0 is not None:
                st.record_full_load(dlt.current.source_state(), export.method, t0,
                                    export_id=export.export_id)
    yield from _keep_soft_deleted(ctx, entries, batcher)
    yield from batcher.flush()
    batcher.report_duplicates()
    finish_full_read(ctx, tables, t0, exact)
    if ctx.backup is not None:
        ctx.backup.completed(tables)


@contextmanager
def _export_directory() -> Iterator[tuple[Path, bool]]:
    """Where the export is downloaded: the pipeline's working directory, where it is kept
    until a load that used it commits (`kept_export.py`); outside a pipeline, a temporary
    directory."""
    working_dir = pipeline_directory()
    if working_dir is not None:
        yield working_dir / kept_export.DIRECTORY, True
        return
    with tempfile.TemporaryDirectory(prefix="close-export-") as temporary:
        yield Path(temporary), False


@dataclass(frozen=True)
class _Export:
    path: Path
    method: str
    t0: datetime | None
    export_id: str | None
    exact: bool = False  # T0 is the export's creation time, on the Event Log's clock


def _obtain_export(ctx: RunContext, options: ExportOptions, directory: Path,
                   keeps: bool) -> _Export:
    """A ready export file: the one given (a backup), one kept by a run that died before its
    load committed, or a new job's, downloaded."""
    if options.export_file:
        path = Path(options.export_file)
        kept = export_of(path)
        if kept is None:
            log.warning("%s has no manifest: without this file's T0 the next run reads its "
                        "tables in full again", path)
            return _Export(path, "export_file", None, None)
        return _Export(path, "export_file", kept.created_at, kept.export_id, exact=kept.exact)
    if keeps:
        now = ctx.started_at or datetime.now(UTC)
        found = kept_export.find(directory, now, st.loaded_export_id(dlt.current.source_state()))
        if found is not None:
            log.warning("resuming the full load from export %s kept by an earlier run (created "
                        "%s, %.1f MB): no new export", found.export_id,
                        f"{found.created_at:%Y-%m-%d %H:%M} UTC", found.size / 1e6)
            return _Export(found.path, "export", found.created_at, found.export_id,
                           exact=found.exact)
        pending = kept_export.find_pending(directory, now)
        if pending is not None:
            resumed = _resume_pending(ctx, options, directory, pending)
            if resumed is not None:
                return resumed

    def remember(job: ExportJob) -> None:
        kept_export.remember_pending(directory, job.export_id, job.created_at,
                                     job.created_on_closes_clock)

    job = run_export_job(ctx.client, include_activities=options.include_activities,
                         timeout=options.timeout, poll_initial=options.poll_initial,
                         on_created=remember if keeps else None)
    return _download(ctx, job, directory, keeps)


def _resume_pending(ctx: RunContext, options: ExportOptions, directory: Path,
                    pending: kept_export.PendingExport) -> _Export | None:
    """The export job a killed run left, waited for and its download resumed; None (and the
    job forgotten) when Close no longer has it or it failed: the caller asks for a new one."""
    partial = pending.path.stat().st_size if pending.path.exists() else 0
    log.warning("resuming export %s created by an earlier run (%s UTC%s): no new export",
                pending.export_id, f"{pending.created_at:%Y-%m-%d %H:%M}",
                f", {partial / 1e6:.1f} MB already downloaded" if partial else "")
    job = ExportJob({"id": pending.export_id}, pending.created_at, pending.exact)
    try:
        job = resume_export_job(ctx.client, job, timeout=options.timeout,
                                poll_initial=options.poll_initial)
        return _download(ctx, job, directory, keeps=True, resume=True)
    except (ExportFailed, ApiError) as exc:
        log.warning("export %s cannot be resumed (%s); asking Close for a new one",
                    pending.export_id, exc)
        kept_export.discard(pending.path)
        return None


def _download(ctx: RunContext, job: ExportJob, directory: Path, keeps: bool,
              resume: bool = False) -> _Export:
    directory.mkdir(parents=True, exist_ok=True)
    path = kept_export.download_path(directory, job.export_id)
    size = ctx.client.download(job.export["download_url"], path, resume=resume)
    if keeps:
        kept_export.keep(path, job.export_id, job.created_at, job.created_on_closes_clock)
    note(log, "export %s downloaded (%.1f MB)", job.export_id, size / 1e6)
    return _Export(path, "export", job.created_at, job.export_id,
                   exact=job.created_on_closes_clock)


def _from_lists(ctx: RunContext, entries: list[Entry],
                batcher: ArrowBatcher) -> Iterator[object]:
    for entry in entries:
        try:
            for page in _pages_of(ctx, entry):
                if entry.read == "definitions":  # the changes of the rows written now
                    yield from definition_changes(ctx, page)
                for obj in page:
                    yield from batcher.add_object(entry, obj, ctx.custom)
        except AccessDenied as exc:
            log.warning("skipping %s: this API key may not read /%s (%s: %s)",
                        entry.table, exc.path.strip("/"), exc.status, exc.api_message)
        else:
            batcher.completed(entry.table)


def _pages_of(ctx: RunContext, entry: Entry) -> Iterable[Page]:
    """The table's objects: read when the run began, or now from its endpoint. Custom field
    definitions were read when the run began; their rows name their columns."""
    if entry.read == "definitions":
        return [ctx.read.privacy.page(entry.table, list(ctx.custom.definition_rows()))]
    return ctx.prefetched(entry) or read_entry(ctx.read, entry)


def load_export_file(ctx: RunContext, path: Path, entries: list[Entry],
                     batcher: ArrowBatcher) -> Generator[object, None, dict[str, int]]:
    """Every lead of an export file, routed and shaped; returns objects seen per table."""
    router = ExportRouter({entry.table for entry in entries}, ctx.read.privacy)
    progress = Progress("reading the export file", path.stat().st_size, megabytes)
    for lead in iter_leads(path, lambda done: progress.at(done, lambda: _shaped(router))):
        for entry, obj in router.route(lead):
            yield from batcher.add_object(entry, obj, ctx.custom)
    progress.finish()
    log.info("export %s read: %s", path.name, _shaped(router))
    return router.counts


def _shaped(router: ExportRouter) -> str:
    counts = sorted(router.counts.items(), key=lambda item: -item[1])
    return ", ".join(f"{table} {count:,}" for table, count in counts)


def _keep_soft_deleted(ctx: RunContext, entries: Iterable[Entry],
                       batcher: ArrowBatcher) -> Iterator[object]:
    """Soft deletes and a full load, which replaces tables: rows of objects Close no longer
    has stay, with their child rows, and with `_deleted_at` (this run's start when Close
    deleted the object since the last run: no event tells when)."""
    if not ctx.keep_deleted:
        return
    yield from batcher.drain()
    for entry in entries:
        if entry.incremental == "every_run" or not batcher.is_complete(entry.table):
            continue
        gone = batcher.unseen(entry.table, ctx.warehouse.all_ids(entry.table))
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
