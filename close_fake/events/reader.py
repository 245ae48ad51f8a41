"""Reading the Event Log: `GET /event/` and `GET /event/{id}/` (`EventReader`).

Cursor paging newest first, the documented filters and filter combinations, `_limit` up to
50, 30-day retention, `data` and `previous_data` only within one hour for non-admins;
answers shaped by `EventSettings`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from ..common import ApiError, iso, iso_naive
from ..org import FakeOrg
from ..params import Params
from .clock import _aware
from .kinds import _LEAD_NESTED, UNDOCUMENTED_OBJECT_TYPES
from .log import Event, log_of
from .settings import EventSettings

FILTERS = ("object_type", "object_id", "action", "lead_id", "user_id", "request_id")
DATE_FILTERS = ("date_updated__gte", "date_updated__gt", "date_updated__lte", "date_updated__lt")
# The supported combinations (Close API: Event Log, Retrieve a list of events); `date_updated` may
# join any of them.
DOCUMENTED_COMBINATIONS: frozenset[frozenset[str]] = frozenset(
    frozenset(c)
    for c in (
        ("object_type", "object_id"),
        ("object_type", "action"),
        ("object_id", "action"),
        ("lead_id", "object_type"),
        ("lead_id", "object_type", "action"),
        ("lead_id", "user_id", "object_type"),
        ("lead_id", "user_id", "object_type", "action"),
        ("lead_id", "user_id"),
        ("user_id", "object_id"),
        ("user_id", "object_id", "action"),
        ("user_id", "object_type"),
        ("user_id", "object_type", "action"),
        ("lead_id",),
        ("user_id",),
        ("request_id",),
    )
)


class EventReader:
    """`GET /event/` and `GET /event/{id}/` over an organisation's log."""

    def __init__(self, org: FakeOrg, settings: EventSettings, clock: Any) -> None:
        self.org = org
        self.settings = settings
        self.clock = clock  # () -> datetime: the server's clock

    # -- visibility -----------------------------------------------------------------------------

    def _ordered(self) -> tuple[list[Event], list[tuple[int, int]]]:
        """Every event newest first, and their negated positions (ascending, for bisect)."""
        log = log_of(self.org)

        def build() -> tuple[list[Event], list[tuple[int, int]]]:
            ordered = log.ordered()
            return ordered, [(-m, -n) for m, n in map(_key, ordered)]

        return self.org.memo(("events-ordered", log.version, len(log.events)), build)

    def _visible(self, e: Event, now: datetime) -> bool:
        s = self.settings
        if e.date_created < now - s.retention:
            return False
        if e.object_type in UNDOCUMENTED_OBJECT_TYPES and not s.undocumented:
            return False
        if s.late_every and e.n % s.late_every == s.late_every - 1:
            return now >= e.date_updated + s.late_by
        return True

    def render(self, e: Event, now: datetime, admin: bool) -> dict[str, Any]:
        s = self.settings
        fmt = iso_naive if s.dates == "naive" else iso
        data = e.data
        if data is not None and e.object_type == "lead" and s.lead_data == "flat":
            data = {k: val for k, val in data.items() if k not in _LEAD_NESTED}
        out: dict[str, Any] = {
            "action": e.action,
            "api_key_id": e.api_key_id,
            "changed_fields": list(e.changed_fields),
            "data": data,
            "date_created": fmt(e.date_created),
            "date_updated": fmt(e.date_updated),
            "id": e.id,
            "lead_id": e.lead_id,
            "meta": dict(e.meta),
            "object_id": e.object_id,
            "object_type": s.spelling(e.object_type),
            "organization_id": self.org.organization_id,
            "previous_data": e.previous_data,
            "request_id": e.request_id,
            "user_id": e.user_id,
        }
        age_from = e.date_created if s.private_age == "date_created" else e.date_updated
        if not admin and now - age_from >= s.private_after:
            for key in ("data", "previous_data"):
                if s.hidden == "omit":
                    del out[key]
                else:
                    out[key] = None
        return out

    # -- endpoints ------------------------------------------------------------------------------

    def get(self, event_id: str, admin: bool) -> dict[str, Any]:
        now = _aware(self.clock())
        e = log_of(self.org).events.get(event_id)
        if e is None or not self._visible(e, now):
            raise ApiError(404, f"Event {event_id} not found.")
        return self.render(e, now, admin)

    def list(self, params: Params, admin: bool) -> dict[str, Any]:
        s = self.settings
        now = _aware(self.clock())
        limit = params.int("_limit", s.max_limit)
        if limit < 1:
            raise ApiError(400, "_limit must be a positive integer.")
        if limit > s.max_limit:
            if s.over_limit == "error":
                raise ApiError(400, f"Invalid _limit {limit}: the maximum is {s.max_limit}.")
            limit = s.max_limit
        if params.has("_skip") and s.skip == "error":
            raise ApiError(400, "The event log does not support _skip; use _cursor.")
        used = {name: params.get(name) or "" for name in FILTERS if params.has(name)}
        self._check_combination(frozenset(used))
        signature = _signature(used)
        bounds = {name: params.get(name) for name in DATE_FILTERS if params.has(name)}
        anchor: tuple[int, int] | None = None
        backwards = False
        cursor = params.get("_cursor")
        if cursor:
            state = _decode_cursor(cursor)
            if state["f"] != signature and s.cursor_filters == "strict":
                raise ApiError(
                    400,
                    "The _cursor does not match the filters: send the same filters as the "
                    "request that returned it (date_updated may be left out).",
                )
            bounds = state["b"]  # the cursor carries the query's date_updated bounds
            anchor = (state["k"][0], state["k"][1])
            backwards = state["d"] == "prev"
        preds = _date_preds(Params(bounds)) + self._filter_preds(used)
        ordered, positions = self._ordered()

        def match(i: int) -> bool:
            e = ordered[i]
            return self._visible(e, now) and all(pred(e) for pred in preds)

        # Scan lazily from the cursor's position (bisect), only as far as the page needs.
        if backwards:
            assert anchor is not None
            i = bisect.bisect_left(positions, (-anchor[0], -anchor[1])) - 1
            picked: list[int] = []
            while i >= 0 and len(picked) < limit:
                if match(i):
                    picked.append(i)
                i -= 1
            picked.reverse()
        else:
            i = 0 if anchor is None else bisect.bisect_right(positions, (-anchor[0], -anchor[1]))
            picked = []
            while i < len(ordered) and len(picked) < limit:
                if match(i):
                    picked.append(i)
                i += 1
        page = [ordered[i] for i in picked]
        older = bool(picked) and any(match(i) for i in range(picked[-1] + 1, len(ordered)))
        newer = bool(picked) and any(match(i) for i in range(picked[0] - 1, -1, -1))
        out: dict[str, Any] = {"data": [self.render(e, now, admin) for e in page]}
        out["cursor_next"] = (
            _encode_cursor("next", _key(page[-1]), signature, bounds) if older else None
        )
        out["cursor_previous"] = (
            _encode_cursor("prev", _key(page[0]), signature, bounds) if newer else None
        )
        return out

    def _check_combination(self, used: frozenset[str]) -> None:
        mode = self.settings.filters
        if mode == "any" or used in DOCUMENTED_COMBINATIONS:
            return
        if mode == "unfiltered" and not used:
            return
        shown = ", ".join(sorted(used)) or "no filter (or only date_updated)"
        raise ApiError(
            400,
            f"Unsupported combination of event filters: {shown}. Supported: object_type + "
            "object_id, object_type + action, object_id + action, lead_id (+ object_type "
            "(+ action)), lead_id + user_id (+ object_type (+ action)), user_id (+ object_id "
            "or object_type (+ action)), request_id; date_updated may be added to any.",
        )

    def _filter_preds(self, used: Mapping[str, str]) -> list[Any]:
        preds: list[Any] = []
        for name, value in used.items():
            if name == "object_type":
                preds.append(lambda e, v=value: self.settings.spelling(e.object_type) == v)
            else:
                preds.append(lambda e, n=name, v=value: getattr(e, n) == v)
        return preds


def _key(e: Event) -> tuple[int, int]:
    """A cursor position: `date_updated` in microseconds since the epoch, write number."""
    return (_micros(e.date_updated), e.seq)


def _micros(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _date_preds(params: Params) -> list[Any]:
    preds: list[Any] = []
    for name in DATE_FILTERS:
        bound = params.moment(name)
        if bound is None:
            continue
        micros = round(bound * 1_000_000)
        op = name.rsplit("__", 1)[1]
        if op == "gte":
            preds.append(lambda e, b=micros: _micros(e.date_updated) >= b)
        elif op == "gt":
            preds.append(lambda e, b=micros: _micros(e.date_updated) > b)
        elif op == "lte":
            preds.append(lambda e, b=micros: _micros(e.date_updated) <= b)
        else:
            preds.append(lambda e, b=micros: _micros(e.date_updated) < b)
    return preds


def _signature(used: Mapping[str, str]) -> str:
    text = "&".join(f"{k}={val}" for k, val in sorted(used.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _encode_cursor(
    direction: str, key: tuple[int, int], signature: str, bounds: Mapping[str, str | None]
) -> str:
    raw = orjson.dumps({"d": direction, "k": list(key), "f": signature, "b": dict(bounds)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = orjson.loads(raw)
        if (
            not isinstance(state, dict)
            or state.get("d") not in ("next", "prev")
            or not isinstance(state.get("f"), str)
            or not isinstance(state.get("b"), dict)
            or not (isinstance(state.get("k"), list) and len(state["k"]) == 2)
            or not all(isinstance(x, int) for x in state["k"])
        ):
            raise ValueError
        return state
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError(400, "Invalid _cursor.") from None
