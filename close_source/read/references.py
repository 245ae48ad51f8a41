"""Names copied into other rows (`user_name`, `status_label`, ...): which named objects were
renamed since each table last synced.

Leads and contacts announce renames in the Event Log (`read/change_set.py` follows those). Users,
statuses, pipelines, sequences and templates are small and read in full every run, and users
and pipelines have no events at all: they are read once when the run begins (their own tables
reuse what was read), and each table compares their names with the digests it kept in the
state when it last synced (`state.names_seen`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from close_source.catalog import BY_TABLE, CATALOG, Entry
from close_source.errors import AccessDenied
from close_source.read.context import ReadContext
from close_source.read.lists import read_entry

log = logging.getLogger(__name__)


# Named objects read in full every run: renames are found by comparing names.
SMALL_SOURCES = tuple(entry.table for entry in CATALOG
                      if entry.name_fields and entry.incremental == "every_run")


READ_WORKERS = 8  # one request each at once: over a slow link each round costs a round trip


@dataclass
class References:
    """The small named tables as Close shows them now, read once for the whole run."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    denied: dict[str, AccessDenied] = field(default_factory=dict)
    _by_id: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict, repr=False)

    def get(self, source: str, object_id: Any) -> dict[str, Any] | None:
        """One named object as read when the run began (None: not read, or not there)."""
        if source not in self.objects or object_id is None:
            return None
        if source not in self._by_id:
            self._by_id[source] = {str(obj.get("id")): obj for obj in self.objects[source]}
        return self._by_id[source].get(str(object_id))

    def digests(self, source: str) -> dict[str, str]:
        fields = BY_TABLE[source].name_fields
        return {str(obj["id"]): name_digest(obj, fields) for obj in self.objects.get(source, [])}

    def digests_for(self, table: str) -> dict[str, dict[str, str]]:
        """The digests of every small table `table` copies names from."""
        return {source: self.digests(source) for source in sources_of(BY_TABLE[table])
                if source in self.objects}


def sources_of(entry: Entry) -> list[str]:
    return sorted({copy.source for copy in entry.copies if copy.source in SMALL_SOURCES})


def read_references(ctx: ReadContext, tables: list[str],
                    also: tuple[str, ...] = ()) -> References:
    """The small named tables the `tables` copy names from (and `also`), read in parallel."""
    wanted = sorted({source for table in tables if table in BY_TABLE
                     for source in sources_of(BY_TABLE[table])}
                    | (set(SMALL_SOURCES) & set(tables)) | set(also))
    refs = References()

    def read(source: str) -> None:
        try:
            refs.objects[source] = [obj for page in read_entry(ctx, BY_TABLE[source])
                                    for obj in page]
        except AccessDenied as exc:
            refs.denied[source] = exc

    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        list(pool.map(read, wanted))
    return refs


def read_references_soon(ctx: ReadContext, tables: list[str],
                         also: tuple[str, ...] = ()) -> Future[References]:
    """`read_references`, begun now in a thread of its own: a run reads them while it reads
    the custom field definitions and plans, instead of after (a round trip or two less before
    the export is asked for, over a slow link). A thread no one waits for ends with its reads."""
    pending: Future[References] = Future()

    def read() -> None:
        try:
            pending.set_result(read_references(ctx, tables, also))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
            pending.set_exception(exc)

    threading.Thread(target=read, name="close-sync-references", daemon=True).start()
    return pending


def renamed_since(seen: Mapping[str, Mapping[str, str]] | None,
                  now: Mapping[str, Mapping[str, str]]) -> dict[str, set[str]]:
    """{source: ids whose names differ from what the table last synced}; nothing when the
    table never recorded names (a first load or an older state)."""
    if seen is None:
        return {}
    renamed = {}
    for source, digests in now.items():
        before = seen.get(source) or {}
        ids = {object_id for object_id, digest in digests.items()
               if object_id in before and before[object_id] != digest}
        if ids:
            renamed[source] = ids
    return renamed


def name_digest(obj: Mapping[str, Any], fields: Iterable[str]) -> str:
    text = "\x1f".join(str(obj.get(name) or "") for name in fields)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
