"""Keyset walks over `POST /data/search/`: reading past the `_skip` cap, by ascending date."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from close_source.api.client import CloseClient
from close_source.catalog import Entry
from close_source.errors import ApiError
from close_source.records import Page
from close_source.timestamps import to_utc

SEARCH_PATH = "data/search/"


SEARCH_PAGE_SIZE = 200


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
