"""`POST /data/search/` (Advanced Filtering) for the fake Close API.

Not in the scraped docs; shaped after the export's `s_query`/`sort` structures [000:120-157]
and what is known about the endpoint (see `peers.md`):

- body `{"query": {...}, "sort": [...], "_limit": N, "cursor": str|null,
  "_fields": {"lead": [...]}, "results_limit": N|null}`;
- results are `{"__object_type": "lead", "id": ...}` unless `_fields` names fields
  (a `_fields` list of more than 100 names -> 400 "List is too long");
- `_limit` at most 200; cursor paging; a cursor expires `cursor_ttl` seconds after it was
  issued; one walk (a query followed through its cursors) stops after `walk_max` results
  with `cursor: null` even when more objects match — a client must restart with a
  narrower query (e.g. a `moment_range` on the sort field).

Query nodes: `and`/`or` (`queries`), `negate`/`not` (`query`), `match_all`, `object_type`,
`has_related`, `field_condition` with `regular_field` or `custom_field` fields and the
conditions `moment_range`, `text`, `term`, `number_range`, `boolean`, `exists`.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from . import org as o
from . import views as v
from .common import ApiError, parse_moment
from .org import FakeOrg
from .request import Request

MAX_LIMIT = 200
DEFAULT_LIMIT = 100
MAX_FIELDS = 100
OBJECT_TYPES = {"lead": o.LEAD, "contact": o.CONTACT}

Pred = Callable[[dict[str, Any]], bool]


@functools.total_ordering
class _Desc:
    """Reverses the order of the wrapped value inside sort-key tuples."""

    __slots__ = ("v",)

    def __init__(self, value: Any) -> None:
        self.v = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.v == other.v

    def __lt__(self, other: _Desc) -> bool:
        return other.v < self.v

    def __hash__(self) -> int:
        return hash(self.v)


@dataclass
class _Cursor:
    fingerprint: str
    last_key: tuple
    issued_at: float
    walked: int


class SearchEngine:
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

    # -- evaluation -------------------------------------------------------------------------------

    def _evaluate(self, object_type: str, query: dict, sort: list) -> tuple[list, list]:
        pred = self._compile(query, object_type)
        matches = [x for x in self.org.all(OBJECT_TYPES[object_type]) if pred(x)]
        keyfn = self._sort_key(sort, object_type)
        decorated = sorted(((keyfn(x), x) for x in matches), key=lambda kx: kx[0])
        return [x for _, x in decorated], [k for k, _ in decorated]

    def _sort_key(self, sort: list, object_type: str) -> Callable[[dict], tuple]:
        specs: list[tuple[Callable[[dict], Any], bool]] = []
        for item in sort:
            if not isinstance(item, dict) or not isinstance(item.get("field"), dict):
                raise ApiError(400, "Each sort item needs a `field` and a `direction`.")
            direction = item.get("direction", "asc")
            if direction not in ("asc", "desc"):
                raise ApiError(400, f"Invalid sort direction {direction!r}.")
            getter, _owner = self._getter(item["field"], object_type)
            specs.append((getter, direction == "desc"))
        if not specs:
            specs = [(lambda x: x.get("date_created"), True)]
        id_desc = specs[0][1]

        def key(obj: dict) -> tuple:
            parts: list[Any] = []
            for getter, desc in specs:
                missing, comparable = _sortable(getter(obj))
                parts.append((missing, _Desc(comparable) if desc else comparable))
            parts.append(_Desc(obj["id"]) if id_desc else obj["id"])
            return tuple(parts)

        return key

    def _getter(self, spec: dict, object_type: str) -> tuple[Callable[[dict], Any], str]:
        """Value getter for a field spec, and the object type the field belongs to."""
        ftype = spec.get("type")
        owner = spec.get("object_type", object_type)
        if owner not in OBJECT_TYPES:
            raise ApiError(400, f"Unsupported object_type {owner!r} in field.")
        if ftype == "regular_field":
            name = spec.get("field_name")
            if not isinstance(name, str):
                raise ApiError(400, "regular_field needs a field_name.")
            if name.startswith("custom."):
                return (lambda x: x.get(name)), owner
            if owner == "contact" and name in ("email", "emails"):
                return (lambda x: [e["email"] for e in x.get("emails", [])]), owner
            if owner == "contact" and name in ("phone", "phones"):
                return (lambda x: [p["phone"] for p in x.get("phones", [])]), owner
            return (lambda x: x.get(name)), owner
        if ftype == "custom_field":
            cf = spec.get("custom_field_id") or spec.get("id")
            if not isinstance(cf, str):
                raise ApiError(400, "custom_field needs a custom_field_id.")
            key = cf if cf.startswith("custom.") else f"custom.{cf}"
            return (lambda x: x.get(key)), owner
        raise ApiError(400, f"Unsupported field type {ftype!r}.")

    def _compile(self, node: Any, object_type: str) -> Pred:
        if not isinstance(node, dict):
            raise ApiError(400, "Each query node must be an object with a `type`.")
        kind = node.get("type")
        if kind in ("and", "or"):
            subs = node.get("queries")
            if not isinstance(subs, list):
                raise ApiError(400, f"`{kind}` needs a `queries` list.")
            preds = [self._compile(s, object_type) for s in subs]
            if kind == "and":
                return lambda x: all(p(x) for p in preds)
            return lambda x: any(p(x) for p in preds)
        if kind in ("negate", "not"):
            inner = self._compile(node.get("query"), object_type)
            return lambda x: not inner(x)
        if kind == "match_all":
            return lambda x: True
        if kind == "object_type":
            wanted = node.get("object_type")
            if wanted not in OBJECT_TYPES:
                raise ApiError(400, f"Unsupported object_type {wanted!r}.")
            return lambda x: wanted == object_type
        if kind == "has_related":
            related = node.get("related_object_type")
            if related not in OBJECT_TYPES:
                raise ApiError(400, f"Unsupported related_object_type {related!r}.")
            inner = self._compile(node.get("related_query") or {"type": "match_all"}, related)
            hop = self._hop(object_type, related)
            return lambda x: any(inner(r) for r in hop(x))
        if kind == "field_condition":
            field = node.get("field")
            if not isinstance(field, dict):
                raise ApiError(400, "field_condition needs a `field`.")
            getter, owner = self._getter(field, object_type)
            test = _condition(node.get("condition"))
            if owner == object_type:
                return lambda x: test(getter(x))
            hop = self._hop(object_type, owner)
            return lambda x: any(test(getter(r)) for r in hop(x))
        raise ApiError(400, f"Unsupported query type {kind!r}.")

    def _hop(self, source: str, target: str) -> Callable[[dict], list[dict]]:
        """Objects of `target` type related to an object of `source` type."""
        org = self.org
        if source == target:
            return lambda x: [x]
        if source == "lead" and target == "contact":
            return lambda x: org.children(o.CONTACT, "lead_id", x["id"])
        return lambda x: [lead] if (lead := org.get(o.LEAD, x.get("lead_id"))) else []


def _find_object_type(node: Any) -> str | None:
    """The result object type: the first `object_type` node at the top level (or in a
    top-level `and`)."""
    if not isinstance(node, dict):
        return None
    if node.get("type") == "object_type":
        return node.get("object_type")
    if node.get("type") == "and":
        for sub in node.get("queries") or []:
            if isinstance(sub, dict) and sub.get("type") == "object_type":
                return sub.get("object_type")
    return None


def _sortable(value: Any) -> tuple[bool, Any]:
    """(missing, comparable) with dates as epoch seconds; lists sort by their first item."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return True, (0, 0)
    if isinstance(value, bool):
        return False, (0, int(value))
    if isinstance(value, int | float):
        return False, (0, float(value))
    text = str(value)
    if len(text) >= 10 and text[4:5] == "-" and text[7:8] == "-":
        try:
            return False, (0, parse_moment(text))
        except ValueError:
            pass
    return False, (1, text.casefold())


def _moment_bound(raw: Any, key: str) -> float:
    if isinstance(raw, dict):
        kind = raw.get("type", "fixed_utc")
        if kind not in ("fixed_utc", "fixed_local_date", "fixed_local_datetime"):
            raise ApiError(400, f"Unsupported moment type {kind!r} in {key}.")
        raw = raw.get("value")
    if not isinstance(raw, str):
        raise ApiError(400, f"moment_range.{key} needs an ISO date value.")
    try:
        return parse_moment(raw)
    except ValueError:
        raise ApiError(400, f"Invalid date in moment_range.{key}: {raw!r}.") from None


def _condition(cond: Any) -> Callable[[Any], bool]:
    """Compile a condition into a test on a field value (lists match if any item does)."""
    if not isinstance(cond, dict):
        raise ApiError(400, "field_condition needs a `condition`.")
    kind = cond.get("type")
    if kind == "moment_range":
        ops = []
        for key, cmp in (
            ("on_or_after", lambda a, b: a >= b),
            ("after", lambda a, b: a > b),
            ("before", lambda a, b: a < b),
            ("on_or_before", lambda a, b: a <= b),
        ):
            if cond.get(key) is not None:
                ops.append((cmp, _moment_bound(cond[key], key)))

        def moment_test(value: Any) -> bool:
            try:
                t = parse_moment(value) if isinstance(value, str) and value else None
            except ValueError:
                t = None
            return t is not None and all(cmp(t, bound) for cmp, bound in ops)

        return _any(moment_test)
    if kind == "text":
        mode = cond.get("mode", "full_words")
        needle = str(cond.get("value", "")).casefold()
        words = needle.split()

        def text_test(value: Any) -> bool:
            if value is None:
                return False
            hay = str(value).casefold()
            if mode == "exact_value":
                return hay == needle
            if mode == "phrase":
                return needle in hay
            hay_words = hay.replace(",", " ").split()
            if mode == "beginning_of_words":
                return all(any(h.startswith(w) for h in hay_words) for w in words)
            return all(w in hay_words for w in words)  # full_words

        if mode not in ("exact_value", "phrase", "beginning_of_words", "full_words"):
            raise ApiError(400, f"Unsupported text mode {mode!r}.")
        return _any(text_test)
    if kind == "term":
        values = cond.get("values")
        if values is None and "value" in cond:
            values = [cond["value"]]
        if not isinstance(values, list):
            raise ApiError(400, "term needs `values`.")
        allowed = set(map(_hashable, values))
        return _any(lambda value: _hashable(value) in allowed)
    if kind == "number_range":
        bounds = [(k, cond[k]) for k in ("gt", "gte", "lt", "lte") if cond.get(k) is not None]

        def number_test(value: Any) -> bool:
            if not isinstance(value, int | float) or isinstance(value, bool):
                return False
            return all(
                {"gt": value > b, "gte": value >= b, "lt": value < b, "lte": value <= b}[k]
                for k, b in bounds
            )

        return _any(number_test)
    if kind == "boolean":
        wanted = bool(cond.get("value"))
        return lambda value: bool(value) is wanted
    if kind == "exists":
        return lambda value: value not in (None, "", [])
    raise ApiError(400, f"Unsupported condition type {kind!r}.")


def _any(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def wrapped(value: Any) -> bool:
        if isinstance(value, list):
            return any(test(item) for item in value)
        return test(value)

    return wrapped


def _hashable(value: Any) -> Any:
    return orjson.dumps(value) if isinstance(value, dict | list) else value
