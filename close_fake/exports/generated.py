"""The export file of a generated organisation of any size, written chunk by chunk
(`write_generated_export`): for benchmarks at real-organisation scale (300,000 leads would
take ~15 GB as one `generate_org`).

`write_generated_export(path, seed=S, leads=N, ...)` writes the same bytes as
`write_export_file(generate_org(seed=S, leads=N, ...), path, ...)` with memory that does not
grow with N: `GeneratedChunks` makes the organisation one chunk of leads at a time (in
`generate_org`'s order of draws); the chunks are rendered newest first (the export's order,
`date_created` desc, then id desc: a later chunk's leads are all newer) with the same
`DocumentRenderer`, and a second thread compresses while the next chunk renders. Serve its
configuration with `FakeClose(generate_config(seed=S))` (or any `generate_org(seed=S)` with
the same `users`, `now`, `start`): the same users, statuses, pipelines and custom field
definitions, so a connector reading the file finds the fields it names.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from ..generate.base import DEFAULT_NOW, DEFAULT_START
from ..generate.chunks import GeneratedChunks
from .file import DocumentRenderer, ExportFileWriter, FileShape, default_selection

_DONE = None  # end of the queue of rendered chunks


def write_generated_export(
    path: str | Path,
    seed: int = 0,
    leads: int = 50,
    contacts_per_lead: int = 2,
    opportunities_per_lead: int = 1,
    tasks_per_lead: int = 2,
    activities_per_lead: int = 11,
    users: int = 5,
    *,
    per_lead: Mapping[str, int] | None = None,
    now: datetime = DEFAULT_NOW,
    start: datetime = DEFAULT_START,
    layout: str = "array",
    custom_style: str = "dict",
    include_activities: bool = True,
    include_threads: bool = False,
    include_tasks: bool = True,
    contact_lead_id: bool = False,
    export_type: str = "leads",
    fields: Iterable[str] | None = None,
    compresslevel: int = 6,
    chunk_leads: int = 1000,
    spool_dir: str | Path | None = None,
    spool_level: int = 0,
    **extra: int,
) -> dict[str, int]:
    """Write the export file of `generate_org(seed, leads, ..., per_lead=..., **extra)` as
    `write_export_file(org, path, layout=..., ...)` would (same bytes), without holding the
    organisation: about `chunk_leads` leads at a time, spooled to a temporary directory in
    `spool_dir` (default: the system's) and deleted at the end. Returns counts per object
    type, as `write_export_file`."""
    shape = FileShape(
        layout=layout,
        custom_style=custom_style,
        contact_lead_id=contact_lead_id,
        include_threads=include_threads,
        include_tasks=include_tasks,
        export_type=export_type,
        include_activities=include_activities,
        fields=tuple(fields) if fields is not None else None,
        compresslevel=compresslevel,
    )
    gc_was_on = gc.isenabled()
    gc.disable()  # no cycles to collect; its passes over each fresh chunk cost much
    try:
        return _write(path, shape, chunk_leads=chunk_leads, spool_dir=spool_dir,
                      spool_level=spool_level, seed=seed, leads=leads,
                      contacts_per_lead=contacts_per_lead,
                      opportunities_per_lead=opportunities_per_lead,
                      tasks_per_lead=tasks_per_lead, activities_per_lead=activities_per_lead,
                      users=users, per_lead=per_lead, now=now, start=start, **extra)  # fmt: skip
    finally:
        if gc_was_on:
            gc.enable()


def _write(path: str | Path, shape: FileShape, **generation: Any) -> dict[str, int]:
    counts: Counter[str] = Counter()
    rendered: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=2)
    failed: list[BaseException] = []
    with (
        GeneratedChunks(**generation) as chunks,
        ExportFileWriter(path, shape) as out,
    ):  # fmt: skip
        writer = threading.Thread(
            target=_compress, args=(rendered, out, failed), name="export-gzip", daemon=True
        )
        writer.start()
        try:
            for org in chunks.orgs(reverse=True):
                if failed:
                    break
                renderer = DocumentRenderer(org, shape)
                docs = renderer.documents(default_selection(org))
                rendered.put([orjson.dumps(doc) for doc in docs])
                counts.update(renderer.counts)
        finally:
            rendered.put(_DONE)
            writer.join()
        if failed:
            raise failed[0]
    return dict(sorted(counts.items()))


def _compress(rendered: queue.Queue[Any], out: ExportFileWriter, failed: list) -> None:
    """The writer thread: every rendered chunk, in order (zlib lets go of the GIL)."""
    try:
        while (chunk := rendered.get()) is not _DONE:
            for data in chunk:
                out.write_bytes(data)
    except BaseException as exc:  # handed to the main thread
        failed.append(exc)
        while rendered.get() is not _DONE:  # let the producer finish
            pass
