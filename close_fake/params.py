"""Query-string parsing for the fake Close API: typed getters that answer 400 on bad input,
date-range filters and sort keys shared by the list endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from .common import ApiError, parse_moment

Predicate = Callable[[dict[str, Any]], bool]
RANGE_OPS = ("gt", "gte", "lt", "lte")


class Params:
    """The query parameters of one request (last value wins for repeated keys)."""

    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = raw

    def get(self, name: str) -> str | None:
        return self.raw.get(name)

    def has(self, name: str) -> bool:
        return name in self.raw

    def int(self, name: str, default: int) -> int:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, f"Invalid value for {name}: {value!r} is not an integer.") from None

    def bool(self, name: str) -> bool | None:
        value = self.raw.get(name)
        if value is None:
            return None
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ApiError(400, f"Invalid value for {name}: {value!r} is not a boolean.")

    def values(self, name: str) -> list[str] | None:
        """`name=x` and/or `name__in=x,y` merged; None when neither is given."""
        out: list[str] = []
        if name in self.raw:
            out.append(self.raw[name])
        if f"{name}__in" in self.raw:
            out.extend(v.strip() for v in self.raw[f"{name}__in"].split(",") if v.strip())
        return out if (name in self.raw or f"{name}__in" in self.raw) else None

    def moment(self, name: str) -> float | None:
        value = self.raw.get(name)
        if value is None:
            return None
        try:
            return parse_moment(value)
        except ValueError:
            raise ApiError(400, f"Invalid date for {name}: {value!r}.") from None


def moment_of(value: Any) -> float | None:
    """Epoch seconds of a stored date/datetime string (None stays None)."""
    if value is None or value == "":
        return None
    return parse_moment(value)


def range_filters(params: Params, field: str, ops: Iterable[str] = RANGE_OPS) -> list[Predicate]:
    """Predicates for `field__gt=...` etc. Objects without the field never match."""
    preds: list[Predicate] = []
    for op in ops:
        bound = params.moment(f"{field}__{op}")
        if bound is None:
            continue
        preds.append(_range_pred(field, op, bound))
    return preds


def _range_pred(field: str, op: str, bound: float) -> Predicate:
    def pred(obj: dict[str, Any]) -> bool:
        value = moment_of(obj.get(field))
        if value is None:
            return False
        if op == "gt":
            return value > bound
        if op == "gte":
            return value >= bound
        if op == "lt":
            return value < bound
        return value <= bound

    return pred


def equals_filter(params: Params, param: str, field: str | None = None) -> list[Predicate]:
    """`param=x` / `param__in=x,y` -> predicate on `field` (default: same name)."""
    wanted = params.values(param)
    if wanted is None:
        return []
    key, allowed = field or param, set(wanted)
    return [lambda obj: obj.get(key) in allowed]


def newest_first(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Close's list order: `date_created` descending, ties broken by id (descending)."""
    return sorted(
        items, key=lambda o: (moment_of(o.get("date_created")) or 0.0, o["id"]), reverse=True
    )


def task_date_key(value: Any) -> tuple[float, int, float]:
    """Order task `date`s: a date-only task sorts before datetime tasks of the same (UTC)
    day (Close API: Tasks); missing dates first."""
    if not value:
        return (float("-inf"), 0, 0.0)
    exact = parse_moment(value)
    day = datetime.fromtimestamp(exact, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day.timestamp(), 0 if len(str(value)) == 10 else 1, exact)


def sort_by(
    items: list[dict[str, Any]],
    field: str,
    descending: bool,
    key: Callable[[Any], Any] | None = None,
) -> list[dict[str, Any]]:
    """Sort on one field (missing values grouped), ties broken by id in the same direction."""

    def k(obj: dict[str, Any]) -> tuple:
        value = obj.get(field)
        if key is not None:
            return (0, key(value), obj["id"])
        if isinstance(value, str) and field.startswith("date"):
            return (value is not None, moment_of(value) or 0.0, obj["id"])
        if value is None:
            return (False, 0, obj["id"])
        return (True, value, obj["id"])

    return sorted(items, key=k, reverse=descending)
