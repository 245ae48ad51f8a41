"""Field conditions of a search query (`moment_range`, `text`, `term`, `number_range`,
`boolean`, `exists`) compiled into tests on a field value; lists match if any item does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..common import ApiError, parse_moment


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
