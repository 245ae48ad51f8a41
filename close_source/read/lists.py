"""The list-endpoint read path: every catalog strategy, as pages (lists) of raw API objects.

Pages are yielded whole, never object by object: dlt hands each `next()` of a parallelized
resource to a worker thread, so the unit of work must be a page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from close_source.api.paging import SkipCapReached, iter_pages, with_fields
from close_source.catalog import BY_TABLE, Entry, Variant
from close_source.errors import AccessDenied, CloseSyncError
from close_source.read.context import ReadContext
from close_source.read.windows import read_keyset, read_windows
from close_source.records import Page

log = logging.getLogger(__name__)


def read_entry(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    """Every object of one catalog entry, as pages: from Close (kept as read, its excluded
    fields left out, when a backup is being written), or, in a restore, from the backup."""
    if ctx.backup is not None:
        yield from ctx.privacy.pages(entry.table, ctx.backup.pages(entry.table))
        return
    pages = ctx.privacy.pages(entry.table, _READERS[entry.read](ctx, entry))
    yield from pages if ctx.recorder is None else ctx.recorder.record(entry.table, pages)


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
        params = with_fields(variant.params, entry.fields)
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


_READERS: dict[str, Callable[[ReadContext, Entry], Iterator[Page]]] = {
    "pages": read_pages,
    "windows": read_windows,
    "keyset": read_keyset,
    "organization": read_organization,
    "memberships": read_memberships,
    "users": read_users,
    "detail": read_details,
    "per_parent": read_per_parent,
}
