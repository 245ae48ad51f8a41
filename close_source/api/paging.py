"""`_skip`/`_limit` paging of Close's list endpoints, within the `_skip` cap.

The cap (400 "... max_skip = 250000 ...") is never run into: `iter_pages` stops before a
request would pass it and raises `SkipCapReached`; callers read the rest another way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from close_source.api.client import CloseClient
from close_source.errors import ApiError
from close_source.records import Page

log = logging.getLogger(__name__)


_MAX_SKIP_IN_ERROR = re.compile(r"max_skip\s*=\s*(\d+)")


_NUMBER = re.compile(r"\d+")


class SkipCapReached(Exception):
    """Paging further would pass Close's `_skip` cap."""

    def __init__(self, max_skip: int) -> None:
        super().__init__(max_skip)
        self.max_skip = max_skip


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


def with_fields(params: Mapping[str, str], fields: tuple[str, ...]) -> dict[str, str]:
    return {**params, "_fields": ",".join(fields)} if fields else dict(params)
