"""The Export API read path: one job brings every lead with its contacts, opportunities and
activities (Close API: Exports), instead of thousands of paged requests.

Job: `POST /export/lead/` (json, leads, activities, no done email), poll `GET /export/{id}/` with
backoff until `done` (sooner when Close's own progress, `n_docs_processed` of `n_docs`, says the
build ends sooner: `PollPace`), download `download_url` (raw gzip bytes, resumed when the transfer
breaks); `export_file.py` decodes it lead by lead, and the router here sends each object to
its table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from close_source.api.client import CloseClient
from close_source.catalog import CATALOG, Entry
from close_source.progress import Progress
from close_source.read.export_file import ExportFailed
from close_source.read.privacy import NO_PRIVACY, Privacy
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)

EXPORT_PATH = "export/lead/"
FAILED, DONE = "error", "done"
WAITING = ("created", "started", "in_progress")

LEAD_ENTRY = next(entry for entry in CATALOG if entry.export_path == "")
NESTED_ENTRIES = {entry.export_path: entry for entry in CATALOG
                  if entry.export_path and entry.export_path != "activities"}
ACTIVITY_ENTRIES = {entry.export_type: entry for entry in CATALOG
                    if entry.export_path == "activities"}


def exported_tables() -> set[str]:
    """Tables a full export carries; the others come from list endpoints."""
    return {entry.table for entry in CATALOG if entry.export_path is not None}


@dataclass
class ExportJob:
    """An export job: its object as Close last showed it, and when it was created."""

    export: dict[str, Any]
    created_at: datetime
    # `created_at` is the export's own `date_created` (Close's database clock, the Event
    # Log's), not the `Date` header of the response that created it
    created_on_closes_clock: bool = True

    @property
    def export_id(self) -> str:
        return str(self.export["id"])


def run_export_job(client: CloseClient, *, include_activities: bool = True,
                   timeout: float = 6 * 3600.0, poll_initial: float = 1.0,
                   poll_max: float = 30.0,
                   on_created: Callable[[ExportJob], None] | None = None) -> ExportJob:
    """Create the export and wait for it; `created_at` is Close's clock, for the next T0.
    `on_created` hears of the job before the wait, so a run killed meanwhile can come back to
    it (`resume_export_job`)."""
    export = client.post(EXPORT_PATH, {
        "format": "json", "type": "leads", "include_activities": include_activities,
        "send_done_email": False,
    })
    own_clock = to_utc(export.get("date_created"))
    created_at = own_clock or client.server_time
    if created_at is None:
        raise ExportFailed("Close returned no creation time for the export")
    job = ExportJob(export, created_at, created_on_closes_clock=own_clock is not None)
    log.info("export %s created; waiting for Close to build it", job.export_id)
    if on_created is not None:
        on_created(job)
    return _wait(client, job, timeout, poll_initial, poll_max)


def resume_export_job(client: CloseClient, job: ExportJob, *, timeout: float = 6 * 3600.0,
                      poll_initial: float = 1.0, poll_max: float = 30.0) -> ExportJob:
    """An export an earlier run created, as Close shows it now, waited for if still building."""
    job.export = client.get(f"export/{job.export_id}/")
    return _wait(client, job, timeout, poll_initial, poll_max)


@dataclass
class PollPace:
    """How long to wait before the next poll: backoff from `initial` by 1.5 up to `most`, or
    less when Close's progress (Close API: Exports: `n_docs_processed` of `n_docs`), at the rate
    seen between two polls while it is `in_progress`, says the export is done sooner; never less
    than a quarter of `initial`, and twice that each time the export was found just short of its
    end again (its file still uploading): not polled ever faster. Backoff alone overshoots the
    end of a short build by up to half of the time waited so far (a 6 s build seen done after
    8.5 s), the most of a small organisation's first load."""

    initial: float
    most: float
    _delay: float = 0.0
    _floor: float = 0.0  # the least wait when the progress says the end is near
    _first: tuple[float, float] | None = None  # (time, docs processed) of the first sample

    def next(self, export: Mapping[str, Any], now: float) -> float:
        self._delay = self.initial if not self._delay else min(self.most, self._delay * 1.5)
        left = self._left(export, now)
        if left is None:
            return self._delay
        self._floor = self._floor or self.initial / 4
        wait = min(self._delay, max(self._floor, left))
        if left < self._floor:
            self._floor *= 2
        return wait

    def _left(self, export: Mapping[str, Any], now: float) -> float | None:
        """Seconds until every document is processed at the rate so far; None: not known."""
        total, done = export.get("n_docs"), export.get("n_docs_processed")
        if export.get("status") != "in_progress" or not isinstance(total, int | float) \
                or not isinstance(done, int | float) or not 0 < done < total:
            return None
        if self._first is None:
            self._first = (now, done)
            return None
        seconds, docs = now - self._first[0], done - self._first[1]
        return (total - done) * seconds / docs if seconds > 0 and docs > 0 else None


def _wait(client: CloseClient, job: ExportJob, timeout: float, poll_initial: float,
          poll_max: float) -> ExportJob:
    export, export_id = job.export, job.export_id
    deadline = time.monotonic() + timeout
    pace = PollPace(poll_initial, poll_max)
    progress = Progress("export built by Close", unit="leads")
    try:
        _built(progress, export)
        while export.get("status") in WAITING or export.get("status") is None:
            if time.monotonic() > deadline:
                raise ExportFailed(f"export {export_id} not done after {timeout:.0f}s "
                                   f"(status {export.get('status')!r})")
            time.sleep(pace.next(export, time.monotonic()))
            export = client.get(f"export/{export_id}/")
            _built(progress, export)
    finally:
        progress.finish()
    if export.get("status") != DONE or not export.get("download_url"):
        raise ExportFailed(f"export {export_id} ended with status {export.get('status')!r}")
    job.export = export
    return job


def _built(progress: Progress, export: Mapping[str, Any]) -> None:
    """Close's own progress: leads processed (`n_docs_processed`) of `n_docs`."""
    if export.get("n_docs"):
        progress.total = float(export["n_docs"])
    progress.at(float(export.get("n_docs_processed") or 0),
                lambda: f"status {export.get('status')}")


# ---- routing --------------------------------------------------------------------------------


@dataclass
class ExportRouter:
    """Splits exported leads into (entry, object) pairs, one per destination table."""

    tables: set[str]
    privacy: Privacy = NO_PRIVACY  # applied to each object as it is routed
    counts: dict[str, int] = field(default_factory=dict)
    _unknown_types: set[str] = field(default_factory=set)

    def route(self, lead: dict[str, Any]) -> Iterator[tuple[Entry, dict[str, Any]]]:
        lead_id = lead.get("id")
        for key, entry in NESTED_ENTRIES.items():
            for child in lead.get(key) or []:
                child.setdefault("lead_id", lead_id)
                yield from self._emit(entry, child)
        for activity in lead.get("activities") or []:
            entry = ACTIVITY_ENTRIES.get(activity.get("_type"))
            if entry is None:
                self._unknown(str(activity.get("_type")))
                continue
            activity.setdefault("lead_id", lead_id)
            yield from self._emit(entry, activity)
        yield from self._emit(LEAD_ENTRY, lead)

    def _emit(self, entry: Entry, obj: dict[str, Any]) -> Iterator[tuple[Entry, dict[str, Any]]]:
        self.counts[entry.table] = self.counts.get(entry.table, 0) + 1
        if entry.table in self.tables:
            yield entry, self.privacy.object(entry.table, obj)

    def _unknown(self, type_name: str) -> None:
        if type_name not in self._unknown_types:
            self._unknown_types.add(type_name)
            log.warning("export: activity type %r has no table; its activities are skipped",
                        type_name)
