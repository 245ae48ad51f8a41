"""The list-endpoint read path: every catalog strategy, as pages (lists) of raw API objects.

Pages are yielded whole, never object by object: dlt hands each `next()` of a parallelized
resource to a worker thread, so the unit of work must be a page.

The `_skip` cap (400 "... max_skip = 250000 ...") is never run into: `pages` stops before a
request would pass `max_skip` and raises `SkipCapReached`; `windows` and `keyset` catch it and
read the rest another way, skipping the ids they already yielded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from close_source.catalog import BY_TABLE, Entry, Variant
from close_source.client import CloseClient
from close_source.errors import AccessDenied, ApiError, CloseSyncError
from close_source.timestamps import to_utc
from close_source.warehouse import Warehouse

if TYPE_CHECKING:
    from close_source.custom_columns import CustomColumns
    from close_source.renames import References

log = logging.getLogger(__name__)

Page = list[dict[str, Any]]

SEARCH_PATH = "data/search/"
SEARCH_PAGE_SIZE = 200
ONE_MICROSECOND = timedelta(microseconds=1)
_MAX_SKIP_IN_ERROR = re.compile(r"max_skip\s*=\s*(\d+)")
_NUMBER = re.compile(r"\d+")


class SkipCapReached(Exception):
    """Paging further would pass Close's `_skip` cap."""

    def __init__(self, max_skip: int) -> None:
        super().__init__(max_skip)
        self.max_skip = max_skip


@dataclass
class ReadContext:
    """What every read needs: the client, the `_skip` cap, and the `/me/` answer."""

    client: CloseClient
    max_skip: int
    me: Mapping[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None  # Close's clock when the run began (the preflight)
    custom: CustomColumns | None = None  # the run's custom-field columns
    # list endpoints seen ignoring or refusing `id__in` in this run: fetched one by one
    no_id_filter: set[str] = field(default_factory=set)
    # deletes = "soft": deleted objects keep their rows, with `_deleted_at`; `keep_deleted`:
    # a full load carries such rows over (not when the tables are being refreshed from scratch)
    soft_deletes: bool = False
    keep_deleted: bool = False
    # what earlier runs loaded (incremental decisions, soft deletes)
    warehouse: Warehouse = field(default_factory=Warehouse)
    # small tables read when the run began (renames, the key's role): their resources reuse
    references: References | None = None

    def prefetched(self, entry: Entry) -> list[Page] | None:
        """The entry's objects if they were read when the run began (a 403/404 then is
        raised again here, for the resource to skip the table as usual)."""
        if self.references is None:
            return None
        if entry.table in self.references.denied:
            raise self.references.denied[entry.table]
        found = self.references.objects.get(entry.table)
        return None if found is None else [found]

    def learn_max_skip(self, max_skip: int) -> None:
        """Close told us a lower cap than configured (400 "max_skip = N"): use it from now on."""
        if max_skip < self.max_skip:
            log.warning("Close's _skip cap is %d, lower than the configured max_skip %d",
                        max_skip, self.max_skip)
            self.max_skip = max_skip

    @property
    def organization_id(self) -> str:
        organizations = self.me.get("organizations") or []
        if organizations:
            return str(organizations[0]["id"])
        if self.me.get("organization_id"):
            return str(self.me["organization_id"])
        raise CloseSyncError("GET /me/ named no organization for this API key")


def read_entry(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    """Every object of one catalog entry, as pages."""
    reader = _READERS[entry.read]
    yield from reader(ctx, entry)


# ---- paging ---------------------------------------------------------------------------------


def iter_pages(
    client: CloseClient,
    path: str,
    params: Mapping[str, Any],
    page_size: int,
    max_skip: int,
    on_first_page: Callable[[Mapping[str, Any]], None] | None = None,
) -> Iterator[Page]:
    """`_skip`/`_limit` paging; adapts `_limit` to the endpoint's cap when Close reports one."""
    skip, limit = 0, page_size
    while True:
        try:
            body = client.get(path, {**params, "_skip": skip, "_limit": limit})
        except ApiError as exc:
            if exc.status == 400 and (smaller := _smaller_limit(exc.api_message, limit)):
                log.info("%s accepts at most _limit=%d; adapting", path, smaller)
                limit = smaller
                continue
            if exc.status == 400 and (cap := _max_skip(exc.api_message)) is not None:
                raise SkipCapReached(cap) from None
            raise
        if skip == 0 and on_first_page is not None:
            on_first_page(body)
        data = body.get("data") or []
        if data:
            yield data
        if not body.get("has_more") or not data:
            return
        skip += len(data)
        if skip + limit > max_skip:
            raise SkipCapReached(max_skip)


def _smaller_limit(message: str, limit: int) -> int | None:
    if "_limit" not in message:
        return None
    candidates = [int(n) for n in _NUMBER.findall(message) if 0 < int(n) < limit]
    return max(candidates) if candidates else (limit // 2 or None)


def _max_skip(message: str) -> int | None:
    match = _MAX_SKIP_IN_ERROR.search(message)
    return int(match.group(1)) if match else None


def _tagged(pages: Iterator[Page], tag: Mapping[str, str]) -> Iterator[Page]:
    if not tag:
        yield from pages
        return
    for page in pages:
        yield [{**obj, **tag} for obj in page]


def read_pages(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    """Every variant's pages, each object once.

    Variants split a collection by a filter (`is_archived`); a server that ignores the filter
    returns the same objects for each. Their union, each id once, is then the whole
    collection, also when only one variant's filter is ignored (a fresh unfiltered read could
    miss what the endpoint hides by default), so overlaps are dropped and reported.
    """
    seen: set[Any] = set()
    overlapping: list[Variant] = []
    for variant in entry.request_variants():
        params = _with_fields(variant.params, entry.fields)
        try:
            pages = iter_pages(ctx.client, variant.path, params, entry.page_size, ctx.max_skip)
            for page in _tagged(pages, variant.tag):
                fresh = [obj for obj in page if obj.get("id") not in seen]
                if len(fresh) < len(page) and variant not in overlapping:
                    overlapping.append(variant)
                seen.update(obj.get("id") for obj in fresh)
                if fresh:
                    yield fresh
        except SkipCapReached:
            raise CloseSyncError(
                f"{variant.path} holds more objects than Close lets us page through "
                f"(max_skip = {ctx.max_skip}) and offers no filter to split it"
            ) from None
    if len(entry.request_variants()) > 1 and overlapping:
        filters = ", ".join(f"{k}={v}" for variant in overlapping
                            for k, v in variant.params.items())
        log.warning("%s: /%s returned the same objects under different filters (%s): the "
                    "filter is ignored here; each object is kept once", entry.table,
                    entry.path.strip("/"), filters)


def _with_fields(params: Mapping[str, str], fields: tuple[str, ...]) -> dict[str, str]:
    return {**params, "_fields": ",".join(fields)} if fields else dict(params)


# ---- date windows ---------------------------------------------------------------------------


def read_windows(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    """Adaptive `date_created` windows: a window that would pass the cap is split in two."""
    yield from _read_window(ctx, entry, None, None, {})


def read_windows_since(ctx: ReadContext, entry: Entry, since: datetime) -> Iterator[Page]:
    """The same, for objects created at or after `since` only."""
    yield from _read_window(ctx, entry, since, None, {})


def _read_window(ctx: ReadContext, entry: Entry, lo: datetime | None, hi: datetime | None,
                 already: dict[str, datetime | None]) -> Iterator[Page]:
    """Read [lo, hi), skipping `already` (ids yielded by an enclosing window, with their dates).

    Order-agnostic: nothing is assumed about how Close sorts the list. Memory stays bounded by
    the cap: a sub-window inherits only the ids whose date falls inside it.
    """
    params = {**entry.params, **_window_params(entry, lo, hi)}
    yielded: dict[str, datetime | None] = {}
    dates: list[datetime] = []
    outside = 0
    try:
        for page in iter_pages(ctx.client, entry.path, params, entry.page_size, ctx.max_skip):
            fresh = []
            for obj in page:
                created = to_utc(obj.get(entry.date_field))
                if created is not None:
                    if (lo is not None and created < lo) or (hi is not None and created >= hi):
                        outside += 1  # the server ignored the bounds: another window's object
                        continue
                    dates.append(created)
                if obj["id"] not in already and obj["id"] not in yielded:
                    yielded[obj["id"]] = created
                    fresh.append(obj)
            if fresh:
                yield fresh
        if outside:
            log.warning("%s: /%s returned %d objects outside the %s window [%s, %s) asked for "
                        "(the filter is ignored here); they were left to their own window",
                        entry.table, entry.path.strip("/"), outside, entry.date_field,
                        lo or "start", hi or "end")
    except SkipCapReached as reached:
        ctx.learn_max_skip(reached.max_skip)
        split = _split_point(dates, lo, hi)
        if split is None:
            raise CloseSyncError(
                f"{entry.path}: more than {ctx.max_skip} objects share one {entry.date_field} "
                f"in [{lo}, {hi}); Close's _skip cap makes them unreadable by date windows"
            ) from None
        log.info("%s: window [%s, %s) passes the _skip cap; splitting at %s",
                 entry.table, lo or "start", hi or "end", split.isoformat())
        seen = {**already, **yielded}
        below = {i: d for i, d in seen.items() if d is None or d < split}
        above = {i: d for i, d in seen.items() if d is None or d >= split}
        del seen, yielded, dates
        yield from _read_window(ctx, entry, lo, split, below)
        yield from _read_window(ctx, entry, split, hi, above)


def _window_params(entry: Entry, lo: datetime | None, hi: datetime | None) -> dict[str, str]:
    """Bounds for the half-open window [lo, hi) with the operators the endpoint documents."""
    low_op, high_op = entry.date_ops
    params: dict[str, str] = {}
    if lo is not None:
        # `__gt` only: one microsecond below lo keeps lo itself (Close stores microseconds)
        bound = lo - ONE_MICROSECOND if low_op == "gt" else lo
        params[f"{entry.date_field}__{low_op}"] = bound.isoformat()
    if hi is not None:
        params[f"{entry.date_field}__{high_op}"] = hi.isoformat()
    return params


def _split_point(dates: list[datetime], lo: datetime | None,
                 hi: datetime | None) -> datetime | None:
    """The median date seen, moved off the minimum so both halves shrink."""
    if not dates:
        return None
    dates.sort()
    split = dates[len(dates) // 2]
    if split == dates[0]:
        split = dates[0] + ONE_MICROSECOND
    if (lo is not None and split <= lo) or (hi is not None and split >= hi):
        return None
    return split


# ---- keyset walk (leads, contacts) ----------------------------------------------------------


def read_keyset(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    """Offset pages while below the cap, then a keyset walk over /data/search/ for the rest."""
    params = _with_fields(entry.params, entry.fields)
    paged: set[str] = set()

    def check_total(body: Mapping[str, Any]) -> None:
        total = body.get("total_results")
        if isinstance(total, int) and total > ctx.max_skip:
            raise SkipCapReached(ctx.max_skip)

    try:
        pages = iter_pages(ctx.client, entry.path, params, entry.page_size, ctx.max_skip,
                           on_first_page=check_total)
        for page in pages:
            paged.update(obj["id"] for obj in page)
            yield page
        return
    except SkipCapReached as reached:
        ctx.learn_max_skip(reached.max_skip)
        log.info("%s: more objects than the _skip cap allows; reading by a keyset walk over "
                 "POST /%s", entry.table, SEARCH_PATH)
    yield from search_walk(ctx.client, entry, paged)


def search_walk(client: CloseClient, entry: Entry, already: set[str],
                date_field: str = "date_created",
                since: datetime | None = None) -> Iterator[Page]:
    """Walk /data/search/ by ascending `date_field` (from `since`), restarting where each walk
    stopped.

    A walk ends after ~10,000 results or when its cursor expires; the next one starts at the
    last date seen (inclusive). Only ids at that boundary date can come back, so only they are
    remembered, besides `already`.
    """
    object_type = entry.search_object_type
    assert object_type is not None
    at_since: set[str] = set()
    while True:
        started_at, fresh_in_walk = since, 0
        cursor: str | None = None
        body = _search_body(entry, object_type, since, date_field)
        while True:
            try:
                answer = client.post(SEARCH_PATH, {**body, "cursor": cursor})
            except ApiError as exc:
                if exc.status == 400 and "cursor" in exc.api_message.lower():
                    break  # expired: restart from the last date seen
                raise
            fresh = []
            for obj in answer.get("data") or []:
                obj.pop("__object_type", None)  # the search's own tag, not a field of the object
                obj_id = obj["id"]
                created = to_utc(obj.get(date_field))
                if created is not None and (since is None or created > since):
                    since, at_since = created, set()
                if obj_id in already or obj_id in at_since:
                    continue
                if created == since:
                    at_since.add(obj_id)
                fresh.append(obj)
            if fresh:
                fresh_in_walk += len(fresh)
                yield fresh
            cursor = answer.get("cursor") or answer.get("cursor_next")
            if not cursor:
                break
        if since == started_at and fresh_in_walk == 0:
            return


def _search_body(entry: Entry, object_type: str, since: datetime | None,
                 field_name: str) -> dict[str, Any]:
    queries: list[dict[str, Any]] = [{"type": "object_type", "object_type": object_type}]
    date_field = {"type": "regular_field", "object_type": object_type, "field_name": field_name}
    if since is not None:
        queries.append({
            "type": "field_condition",
            "field": date_field,
            "condition": {"type": "moment_range",
                          "on_or_after": {"type": "fixed_utc", "value": since.isoformat()}},
        })
    return {
        "query": {"type": "and", "queries": queries},
        "sort": [{"direction": "asc", "field": date_field}],
        "_limit": SEARCH_PAGE_SIZE,
        "_fields": {object_type: list(entry.search_fields or entry.fields)},
    }


# ---- single objects and derived collections -------------------------------------------------


def _organization(ctx: ReadContext) -> dict[str, Any]:
    return ctx.client.get(f"organization/{ctx.organization_id}/")


def read_organization(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    yield [_organization(ctx)]


def read_memberships(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    organization = _organization(ctx)
    page = [{**m, "is_active": True} for m in organization.get("memberships") or []]
    page += [{**m, "is_active": False} for m in organization.get("inactive_memberships") or []]
    if page:
        yield page


def read_users(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    listed: set[str] = set()
    for page in read_pages(ctx, entry):
        listed.update(user["id"] for user in page)
        yield page
    inactive = _organization(ctx).get("inactive_memberships") or []
    missing = dict.fromkeys(m["user_id"] for m in inactive if m.get("user_id") not in listed)
    yield from _by_id(ctx, entry, list(missing))


def _by_id(ctx: ReadContext, entry: Entry, object_ids: list[str],
           params: Mapping[str, str] | None = None) -> Iterator[Page]:
    """Objects fetched one by one; one that vanished meanwhile (404) is skipped."""
    found = []
    for object_id in object_ids:
        try:
            found.append(ctx.client.get(f"{entry.path}{object_id}/", params))
        except AccessDenied:
            log.info("%s %s disappeared while reading; skipped", entry.table, object_id)
    if found:
        yield found


ID_BATCH = 100  # ids per `id__in` request: a page, and a body far below any size limit


def fetch_by_ids(ctx: ReadContext, entry: Entry,
                 object_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """Objects as Close shows them now, by id; None for those that are gone (404).

    Batches of `id__in` on the list endpoint, sent in the body [003:11-22]. Only `/task/`
    documents `id__in` [003:3300]; an endpoint that ignores it (an id we did not ask for comes
    back) or refuses it (400) is read one object at a time from then on. An id a batch does not
    return is asked for alone, so only a 404 counts as deleted.
    """
    wanted = list(dict.fromkeys(object_ids))
    found: dict[str, dict[str, Any] | None] = {}
    size = min(entry.page_size, ID_BATCH)
    for start in range(0, len(wanted), size):
        if entry.path in ctx.no_id_filter:
            break
        batch = wanted[start:start + size]
        objects = _id_batch(ctx, entry, batch)
        if objects is None:
            ctx.no_id_filter.add(entry.path)
            log.info("/%s does not filter by id__in; fetching objects one by one",
                     entry.path.strip("/"))
            break
        found.update(objects)
    params = _with_fields({}, entry.fields)
    for object_id in wanted:
        if object_id in found:
            continue
        try:
            found[object_id] = ctx.client.get(f"{entry.path}{object_id}/", params)
        except AccessDenied as exc:
            if exc.status != 404:
                raise
            found[object_id] = None
    return found


def _id_batch(ctx: ReadContext, entry: Entry,
              batch: list[str]) -> dict[str, dict[str, Any]] | None:
    """One `id__in` request (paged, should it be); None when the endpoint does not filter."""
    params = {**_with_fields(entry.params, entry.fields), "id__in": ",".join(batch)}
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


def read_details(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    for page in read_pages(ctx, entry):
        yield from _by_id(ctx, entry, [obj["id"] for obj in page], entry.detail_params)


def read_per_parent(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    assert entry.parent is not None and entry.parent_param is not None
    parent = BY_TABLE[entry.parent]
    for parent_page in read_pages(ctx, parent):
        for obj in parent_page:
            params = {**entry.params, entry.parent_param: obj["id"]}
            try:
                yield from iter_pages(ctx.client, entry.path, params, entry.page_size,
                                      ctx.max_skip)
            except AccessDenied:
                log.info("%s of %s %s not readable; skipped", entry.table, parent.table, obj["id"])


def read_definitions(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    """Custom field definitions were read when the run began; rows name their columns."""
    if ctx.custom is None:
        raise CloseSyncError("custom field definitions were not loaded")
    yield list(ctx.custom.definition_rows())


_READERS: dict[str, Callable[[ReadContext, Entry], Iterator[Page]]] = {
    "pages": read_pages,
    "windows": read_windows,
    "keyset": read_keyset,
    "organization": read_organization,
    "memberships": read_memberships,
    "users": read_users,
    "detail": read_details,
    "per_parent": read_per_parent,
    "definitions": read_definitions,
}
