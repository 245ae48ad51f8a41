"""What a run's stages share once it has begun: the read context, the services, and what was
read before any resource started."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from close_source.api.client import CloseClient
from close_source.catalog import Entry
from close_source.read.context import ReadContext
from close_source.read.references import References
from close_source.read.warehouse import Warehouse
from close_source.records import Page
from close_source.run.backup import BackupRecorder
from close_source.running import running_pipeline
from close_source.settings import Settings
from close_source.shape.custom_columns import CustomColumns


@dataclass(frozen=True)
class RunContext:
    """Built once by the source, before any resource runs; nothing writes to it later.

    `custom` is the one service that still learns during the run (a field created mid-run is
    found on first sight, under its own lock)."""

    read: ReadContext
    warehouse: Warehouse  # what earlier runs loaded (incremental decisions, soft deletes)
    custom: CustomColumns
    # small tables read when the run began (renames, the key's role): their resources reuse
    references: References
    # Close's time when the run began: the later of its Date header and newest event
    started_at: datetime | None
    settings: Settings
    # the working directory of the pipeline whose state and dataset the run was planned with
    planned_for: str | None = None
    # this run's id and its parent's, kept in the state it commits (`run/destination.py`)
    run_id: str = ""
    parent_run_id: str | None = None
    backup: BackupRecorder | None = None  # a backup being written of what the run reads
    # where a full read's re-scan may start: the Event Log's newest event when the run began
    # (its clock), or the horizon when it held none (nothing to replay but this run's events)
    events_from: datetime | None = None

    @property
    def soft_deletes(self) -> bool:
        """Deleted objects keep their rows, with `_deleted_at` (`deletes = "soft"`)."""
        return self.settings.soft_deletes

    @property
    def keep_deleted(self) -> bool:
        return self.settings.keep_deleted

    @property
    def client(self) -> CloseClient:
        return self.read.client

    def prefetched(self, entry: Entry) -> list[Page] | None:
        """The entry's objects if they were read when the run began (a 403/404 then is
        raised again here, for the resource to skip the table as usual)."""
        if entry.table in self.references.denied:
            raise self.references.denied[entry.table]
        found = self.references.objects.get(entry.table)
        return None if found is None else [found]


def pipeline_directory() -> Path | None:
    """The running pipeline's working directory (where dlt keeps its load packages, so not a
    tmpfs): scratch and kept files go there; None outside a pipeline."""
    pipeline = running_pipeline()
    return Path(pipeline.working_dir) if pipeline is not None else None
