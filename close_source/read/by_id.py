"""Objects as Close shows them now, by id: batched `id__in` reads, one by one where an
endpoint does not filter."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from close_source.api.paging import with_fields
from close_source.catalog import Entry
from close_source.errors import AccessDenied, ApiError
from close_source.read.context import ReadContext

log = logging.getLogger(__name__)


ID_BATCH = 100  # ids per `id__in` request: a page, and a body far below any size limit


@dataclass(frozen=True)
class ById:
    """What `fetch_by_ids` found, and whether the endpoint filtered by `id__in` (the caller
    keeps that for the endpoint's next fetch)."""

    found: dict[str, dict[str, Any] | None]
    id_filter: bool


def fetch_by_ids(ctx: ReadContext, entry: Entry, object_ids: Iterable[str],
                 id_filter: bool = True) -> ById:
    """Objects as Close shows them now, by id; None for those that are gone (404).

    Batches of `id__in` on the list endpoint, sent in the body (Close API: Filter Parameters). Only
    `/task/` documents `id__in` (Close API: Tasks, List or filter tasks); an endpoint that ignores
    it (an id we did not ask for comes back) or refuses it (400) is read one object at a time (and
    `id_filter` False says so for the next call). An id a batch does not return is asked for alone,
    so only a 404 counts as deleted.
    """
    wanted = list(dict.fromkeys(object_ids))
    found: dict[str, dict[str, Any] | None] = {}
    size = min(entry.page_size, ID_BATCH)
    for start in range(0, len(wanted), size) if id_filter else ():
        batch = wanted[start:start + size]
        objects = _id_batch(ctx, entry, batch)
        if objects is None:
            id_filter = False
            log.info("/%s does not filter by id__in; fetching objects one by one",
                     entry.path.strip("/"))
            break
        found.update(objects)
    params = with_fields({}, entry.fields)
    for object_id in wanted:
        if object_id in found:
            continue
        try:
            found[object_id] = ctx.client.get(f"{entry.path}{object_id}/", params)
        except AccessDenied as exc:
            if exc.status != 404:
                raise
            found[object_id] = None
    return ById(found, id_filter)


def _id_batch(ctx: ReadContext, entry: Entry,
              batch: list[str]) -> dict[str, dict[str, Any]] | None:
    """One `id__in` request (paged, should it be); None when the endpoint does not filter."""
    params = {**with_fields(entry.params, entry.fields), "id__in": ",".join(batch)}
    asked, objects, skip = set(batch), {}, 0
    while True:
        try:
            body = ctx.client.get_in_body(entry.path,
                                          {**params, "_skip": skip, "_limit": len(batch)})
        except ApiError as exc:
            if exc.status == 400:
                return None
            raise
        data = body.get("data") or []
        for obj in data:
            if obj.get("id") not in asked:
                return None
            objects[obj["id"]] = obj
        if not body.get("has_more") or not data:
            return objects
        skip += len(data)
