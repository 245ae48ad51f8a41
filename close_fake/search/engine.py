"""`SearchEngine`: one server's `POST /data/search/`: request checks, pages, cursors, walk cap.

Also selects the leads of an export's `s_query` / `sort` / `results_limit` (`select`), with
the same evaluation (`evaluation.py`).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .. import views as v
from ..common import ApiError
from ..org import FakeOrg
from ..request import Request
from .evaluation import Evaluator, _find_object_type

MAX_LIMIT = 200
DEFAULT_LIMIT = 100
MAX_FIELDS = 100


@dataclass
class _Cursor:
    fingerprint: str
    last_key: tuple
    issued_at: float
    walked: int


class SearchEngine(Evaluator):
    """Evaluates search bodies against the organisation and keeps cursor state."""

    def __init__(
        self,
        org: FakeOrg,
        *,
        cursor_ttl: float,
        walk_max: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.org = org
        self.cursor_ttl = cursor_ttl
        self.walk_max = walk_max
        self.clock = clock
        self._cursors: dict[str, _Cursor] = {}
        self._counter = 0
        self._evaluated: OrderedDict[tuple, tuple[list, list]] = OrderedDict()
        self._lock = threading.Lock()

    # -- request handling ---------------------------------------------------------------------

    def handle(self, req: Request) -> dict[str, Any]:
        body = req.body
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        query = body.get("query")
        if not isinstance(query, dict):
            raise ApiError(400, "`query` is required and must be an object.")
        limit = body.get("_limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ApiError(400, "_limit must be a positive integer.")
        if limit > MAX_LIMIT:
            raise ApiError(400, f"_limit must be less than or equal to {MAX_LIMIT}.")
        results_limit = body.get("results_limit")
        if results_limit is not None and (not isinstance(results_limit, int) or results_limit < 0):
            raise ApiError(400, "results_limit must be a non-negative integer or null.")
        sort = body.get("sort") or []
        if not isinstance(sort, list):
            raise ApiError(400, "`sort` must be a list.")
        object_type = _find_object_type(query) or "lead"
        fields = self._fields(body.get("_fields"), object_type)

        fingerprint = hashlib.sha1(orjson.dumps(
            {"q": query, "s": sort, "r": results_limit}, option=orjson.OPT_SORT_KEYS
        )).hexdigest()  # fmt: skip
        results, keys = self._results(fingerprint, object_type, query, sort)

        start, walked = 0, 0
        token = body.get("cursor")
        if token is not None:
            state = self._take_cursor(token, fingerprint)
            start = bisect.bisect_right(keys, state.last_key)
            walked = state.walked
        room = self.walk_max - walked
        if results_limit is not None:
            room = min(room, results_limit - walked)
        end = start + max(0, min(limit, room))
        page = results[start:end]
        walked += len(page)
        more = end < len(results)
        cursor = None
        if (
            page
            and more
            and walked < self.walk_max
            and (results_limit is None or walked < results_limit)
        ):
            cursor = self._issue_cursor(fingerprint, keys[end - 1], walked)
        return {"data": [self._render(object_type, obj, fields) for obj in page], "cursor": cursor}

    def select(self, query: Any, sort: Any, results_limit: Any) -> list[dict[str, Any]]:
        """Leads matching an export's `s_query`/`sort`/`results_limit` (same evaluation as
        the search; uncached: exports run once on a snapshot). 400 on a bad structure."""
        if not isinstance(query, dict):
            raise ApiError(400, "`s_query` must be an object.")
        if not isinstance(sort, list):
            raise ApiError(400, "`sort` must be a list.")
        if results_limit is not None and (
            not isinstance(results_limit, int)
            or isinstance(results_limit, bool)
            or results_limit < 0
        ):
            raise ApiError(400, "results_limit must be a non-negative integer or null.")
        if (_find_object_type(query) or "lead") != "lead":
            raise ApiError(400, "Lead exports need a query on object_type `lead`.")
        found, _keys = self._evaluate("lead", query, sort)
        return found if results_limit is None else found[:results_limit]

    def _results(self, fingerprint: str, object_type: str, query: dict, sort: list) -> tuple:
        """Sorted matches and their sort keys, reused across the pages of a walk (small LRU,
        dropped on any mutation of the organisation)."""
        key = (self.org.version, fingerprint)
        with self._lock:
            hit = self._evaluated.get(key)
            if hit is not None:
                self._evaluated.move_to_end(key)
                return hit
        result = self._evaluate(object_type, query, sort)
        with self._lock:
            self._evaluated[key] = result
            while len(self._evaluated) > 32:
                self._evaluated.popitem(last=False)
        return result

    def _fields(self, spec: Any, object_type: str) -> v.Fields:
        if spec is None:
            return None
        if isinstance(spec, list):
            spec = {object_type: spec}
        if not isinstance(spec, dict):
            raise ApiError(400, "_fields must map object types to lists of field names.")
        for names in spec.values():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ApiError(400, "_fields must map object types to lists of field names.")
            if len(names) > MAX_FIELDS:
                raise ApiError(400, "List is too long")
        names = spec.get(object_type)
        return frozenset(names) if names else None

    def _render(self, object_type: str, obj: dict[str, Any], fields: v.Fields) -> dict:
        out: dict[str, Any] = {"__object_type": object_type, "id": obj["id"]}
        if fields is None:
            return out
        if object_type == "lead":
            rendered = v.render_lead(self.org, obj, fields)
        else:
            rendered = v.render_contact(self.org, obj, fields, with_lead_id=False)
        out.update(rendered)
        return out

    # -- cursors --------------------------------------------------------------------------------

    def _issue_cursor(self, fingerprint: str, last_key: tuple, walked: int) -> str:
        with self._lock:
            self._counter += 1
            raw = f"{self._counter}:{fingerprint[:16]}".encode()
            token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
            now = self.clock()
            if len(self._cursors) > 10_000:
                self._cursors = {
                    k: c for k, c in self._cursors.items() if now - c.issued_at <= self.cursor_ttl
                }
            self._cursors[token] = _Cursor(fingerprint, last_key, now, walked)
            return token

    def _take_cursor(self, token: Any, fingerprint: str) -> _Cursor:
        with self._lock:
            state = self._cursors.get(token) if isinstance(token, str) else None
        if state is None:
            raise ApiError(400, "Invalid cursor.")
        if self.clock() - state.issued_at > self.cursor_ttl:
            raise ApiError(
                400,
                "The cursor has expired. Restart the search without a cursor "
                "(narrow the query to resume where you stopped).",
            )
        if state.fingerprint != fingerprint:
            raise ApiError(
                400,
                "The cursor does not belong to this query; send the same "
                "query, sort and results_limit with the cursor.",
            )
        return state
