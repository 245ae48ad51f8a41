"""How a search query is evaluated: nodes compiled into predicates, sort keys, related objects.

`Evaluator` is the part of `SearchEngine` that knows the query language; field conditions
are compiled in `conditions.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .. import org as o
from ..common import ApiError, parse_moment
from ..org import FakeOrg
from .conditions import _condition

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


class Evaluator:
    """Compiles query nodes and sort specs against the organisation (`org`)."""

    org: FakeOrg

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
