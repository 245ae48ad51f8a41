"""Custom field definitions, and custom values brought to one form: `custom.<field id>` keys.

Close returns custom values as `custom.<id>` keys; exports may carry the deprecated `custom` dict
keyed by the field's display name instead, or both ([002:167], peers.md). Whatever the style,
shaping sees `custom.<id>` keys, so every read path gives the same columns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from close_source.client import CloseClient
from close_source.errors import AccessDenied
from close_source.lists import iter_pages

log = logging.getLogger(__name__)

KINDS = ("lead", "contact", "opportunity", "activity")
CUSTOM_PREFIX = "custom."


@dataclass
class CustomFieldIndex:
    """Field ids by display name, per object kind (activity fields also per activity type)."""

    by_name: dict[str, dict[str, str]] = field(default_factory=dict)
    by_activity_type: dict[tuple[str, str], str] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)

    @classmethod
    def from_definitions(
        cls, definitions: Iterable[tuple[str, Mapping[str, Any]]]
    ) -> CustomFieldIndex:
        """`definitions`: (kind, definition) pairs; kind "shared" applies via `associations`."""
        index = cls()
        for kind, definition in definitions:
            name, field_id = definition.get("name"), definition.get("id")
            if not name or not field_id:
                continue
            if kind == "shared":
                for association in definition.get("associations") or []:
                    index._add(association.get("object_type"), name, field_id,
                               association.get("custom_activity_type_id"))
            else:
                index._add(kind, name, field_id, definition.get("custom_activity_type_id"))
        return index

    def _add(self, kind: str | None, name: str, field_id: str, activity_type: str | None) -> None:
        if kind not in KINDS:
            return
        self.by_name.setdefault(kind, {}).setdefault(name, field_id)
        if kind == "activity" and activity_type:
            self.by_activity_type[(activity_type, name)] = field_id

    def field_id(self, kind: str, name: str, activity_type: str | None = None) -> str | None:
        if activity_type and (found := self.by_activity_type.get((activity_type, name))):
            return found
        return self.by_name.get(kind, {}).get(name)

    def normalize(self, obj: MutableMapping[str, Any], kind: str) -> None:
        """Replace a `custom` dict (display names) with `custom.<id>` keys, in place.

        `custom.<id>` keys already present win (they are the API's own style). A name no
        definition knows is kept as `custom.<name>`, never dropped, with one warning.
        """
        values = obj.pop("custom", None)
        if not isinstance(values, Mapping):
            if values is not None:
                obj["custom"] = values
            return
        activity_type = obj.get("custom_activity_type_id")
        for name, value in values.items():
            field_id = self.field_id(kind, name, activity_type)
            if field_id is None:
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("custom field %r of a %s matches no definition; kept as "
                                "custom.%s", name, kind, name)
                field_id = name
            obj.setdefault(f"{CUSTOM_PREFIX}{field_id}", value)


def fetch_definitions(client: CloseClient, max_skip: int) -> list[tuple[str, dict[str, Any]]]:
    """Every custom field definition the key may read, as (kind, definition) pairs."""
    definitions: list[tuple[str, dict[str, Any]]] = []
    for kind in (*KINDS, "shared"):
        try:
            for page in iter_pages(client, f"custom_field/{kind}/", {}, 100, max_skip):
                definitions += [(kind, definition) for definition in page]
        except AccessDenied:
            log.warning("this API key may not read /custom_field/%s/", kind)
    return definitions
