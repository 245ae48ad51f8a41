"""Reads past the `_skip` cap: adaptive `date_created` windows, and a keyset walk for leads
and contacts."""

from __future__ import annotations

import logging
from array import array
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from close_source.api.paging import SkipCapReached, iter_pages, with_fields
from close_source.api.search import SEARCH_PATH, search_walk
from close_source.catalog import Entry
from close_source.errors import CloseSyncError
from close_source.read.context import ReadContext
from close_source.read.window_ids import ONE_MICROSECOND, WindowIds, from_micros, to_micros
from close_source.records import Page
from close_source.timestamps import to_utc

log = logging.getLogger(__name__)


def lower_cap(entry: Entry, configured: int, reported: int) -> int:
    """The cap to page by from now on in this read: Close may report a lower one (400
    "max_skip = N") than configured."""
    if reported < configured:
        log.warning("%s: Close's _skip cap is %d, lower than the configured max_skip %d",
                    entry.table, reported, configured)
        return reported
    return configured


def read_windows(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    """Adaptive `date_created` windows: a window that would pass the cap is split in two."""
    yield from _read_window(ctx, entry, None, None, WindowIds(), ctx.max_skip)


def read_windows_since(ctx: ReadContext, entry: Entry, since: datetime) -> Iterator[Page]:
    """The same, for objects created at or after `since` only."""
    yield from _read_window(ctx, entry, since, None, WindowIds(), ctx.max_skip)


def _read_window(ctx: ReadContext, entry: Entry, lo: datetime | None, hi: datetime | None,
                 ids: WindowIds, max_skip: int) -> Iterator[Page]:
    """Read [lo, hi), skipping the ids an enclosing window yielded (`ids`, with their dates;
    those this window yields are added to them).

    Order-agnostic: nothing is assumed about how Close sorts the list. Memory stays bounded by
    the cap: a sub-window inherits only the ids whose date falls inside it.
    """
    params = {**entry.params, **_window_params(entry, lo, hi)}
    dates = array("q")  # of every object inside the window, in microseconds
    outside = 0
    try:
        for page in iter_pages(ctx.client, entry.path, params, entry.page_size, max_skip):
            inside, inside_dates = [], []
            for obj in page:
                created = to_utc(obj.get(entry.date_field))
                micros = to_micros(created)
                if created is not None:
                    if (lo is not None and created < lo) or (hi is not None and created >= hi):
                        outside += 1  # the server ignored the bounds: another window's object
                        continue
                    dates.append(micros)
                inside.append(obj)
                inside_dates.append(micros)
            new = ids.add_new([obj["id"] for obj in inside], inside_dates)
            fresh = [obj for obj, is_new in zip(inside, new, strict=True) if is_new]
            if fresh:
                yield fresh
        if outside:
            log.warning("%s: /%s returned %d objects outside the %s window [%s, %s) asked for "
                        "(the filter is ignored here); they were left to their own window",
                        entry.table, entry.path.strip("/"), outside, entry.date_field,
                        lo or "start", hi or "end")
    except SkipCapReached as reached:
        max_skip = lower_cap(entry, max_skip, reached.max_skip)
        split = _split_point(dates, lo, hi)
        if split is None:
            raise CloseSyncError(
                f"{entry.path}: more than {max_skip} objects share one {entry.date_field} "
                f"in [{lo}, {hi}); Close's _skip cap makes them unreadable by date windows"
            ) from None
        log.info("%s: window [%s, %s) passes the _skip cap; splitting at %s",
                 entry.table, lo or "start", hi or "end", split.isoformat())
        below, above = ids.split(to_micros(split))
        del ids, dates
        yield from _read_window(ctx, entry, lo, split, below, max_skip)
        yield from _read_window(ctx, entry, split, hi, above, max_skip)


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


def _split_point(dates: array[int], lo: datetime | None,
                 hi: datetime | None) -> datetime | None:
    """The median date seen, moved off the minimum so both halves shrink."""
    if not dates:
        return None
    ordered = np.sort(np.frombuffer(dates, dtype=np.int64))
    split = from_micros(int(ordered[len(ordered) // 2]))
    if split == from_micros(int(ordered[0])):
        split += ONE_MICROSECOND
    if (lo is not None and split <= lo) or (hi is not None and split >= hi):
        return None
    return split


def read_keyset(ctx: ReadContext, entry: Entry) -> Iterator[Page]:
    """Offset pages while below the cap, then a keyset walk over /data/search/ for the rest."""
    params = with_fields(entry.params, entry.fields)
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
        lower_cap(entry, ctx.max_skip, reached.max_skip)
        log.info("%s: more objects than the _skip cap allows; reading by a keyset walk over "
                 "POST /%s", entry.table, SEARCH_PATH)
    yield from search_walk(ctx.client, entry, paged)
