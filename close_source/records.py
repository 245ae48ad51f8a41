"""Shared row types and markers: what every stage passes along, defined below all of them."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


POSITION = "_pos"


TOMBSTONE = "_deleted"


DELETED_AT = "_deleted_at"  # soft deletes: when Close deleted the row's object


SEPARATOR = "__"


class Json(str):
    """A value already serialised to JSON text (lists and deeper structures)."""


Page = list[dict[str, Any]]
