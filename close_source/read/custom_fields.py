"""Custom field definitions: what fields exist, their types, and which tables carry them.

Sources (Close API: Custom Fields): `/custom_field/{lead,contact,opportunity,activity}/`,
`/custom_field/shared/` (fields that apply to several object types, through `associations`)
and `/custom_field_schema/{lead,contact,opportunity}/` (every field that applies to one object
type, shared ones included). The docs at hand when this was written only named the last two, so
both are optional and read in every plausible shape; a shared field applies to the union of what
they say.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from close_source.api.client import CloseClient
from close_source.api.paging import iter_pages
from close_source.catalog import CATALOG
from close_source.errors import AccessDenied, ApiError

log = logging.getLogger(__name__)

OBJECT_TYPES = ("lead", "contact", "opportunity", "activity")
SCHEMA_OBJECT_TYPES = ("lead", "contact", "opportunity")
TABLE_OF_OBJECT_TYPE = {entry.custom_field_type: entry.table for entry in CATALOG
                 if entry.custom_field_type}
OBJECT_TYPE_OF_TABLE = {table: object_type for object_type, table in TABLE_OF_OBJECT_TYPE.items()}


@dataclass(frozen=True)
class FieldDefinition:
    """One custom field as it applies to one object type (a shared field gives several)."""

    object_type: str  # lead | contact | opportunity | activity
    id: str
    name: str
    type: str
    multi: bool
    shared: bool
    raw: Mapping[str, Any]

    @property
    def table(self) -> str:
        return TABLE_OF_OBJECT_TYPE[self.object_type]

    @property
    def order(self) -> tuple[str, str]:
        """Older fields first: who keeps the plain name when two names collide."""
        return (str(self.raw.get("date_created") or ""), self.id)


@dataclass(frozen=True)
class RawDefinitions:
    """Definitions as Close returned them, per endpoint object_type, plus the per-type schemas."""

    by_object_type: Mapping[str, list[Mapping[str, Any]]]
    schemas: Mapping[str, list[Mapping[str, Any]]]


def fetch_definitions(client: CloseClient, max_skip: int) -> RawDefinitions:
    """Every definition this key may read; a forbidden or missing endpoint is skipped. The
    eight reads go at once: one after the other they cost eight round trips before a run can
    plan (1.2 s over a 150 ms link)."""
    with ThreadPoolExecutor(max_workers=len(OBJECT_TYPES) + 1 + len(SCHEMA_OBJECT_TYPES)) as pool:
        fields = {object_type: pool.submit(_fields, client, object_type, max_skip)
                  for object_type in (*OBJECT_TYPES, "shared")}
        schemas = {object_type: pool.submit(_schema, client, object_type)
                   for object_type in SCHEMA_OBJECT_TYPES}
        by_object_type = {object_type: found for object_type, future in fields.items()
                          if (found := future.result()) is not None}
        return RawDefinitions(by_object_type, {object_type: found
                                               for object_type, future in schemas.items()
                                               if (found := future.result()) is not None})


def _fields(client: CloseClient, object_type: str,
            max_skip: int) -> list[Mapping[str, Any]] | None:
    try:
        return [definition
                for page in iter_pages(client, f"custom_field/{object_type}/", {}, 100, max_skip)
                for definition in page]
    except AccessDenied as exc:
        quiet = object_type == "shared" and exc.status == 404
        log.log(logging.DEBUG if quiet else logging.WARNING,
                "custom fields: cannot read /custom_field/%s/ (%s)", object_type, exc.status)
        return None


def _schema(client: CloseClient, object_type: str) -> list[Mapping[str, Any]] | None:
    try:
        return _schema_fields(client.get(f"custom_field_schema/{object_type}/"))
    except (AccessDenied, ApiError) as exc:
        log.debug("custom fields: no /custom_field_schema/%s/ (%s)", object_type, exc)
        return None


def _schema_fields(body: Any) -> list[Mapping[str, Any]]:
    """`{"fields": [...]}`, `{"data": [...]}` or a bare list; items are fields or `{"id"}`s."""
    if isinstance(body, Mapping):
        body = body.get("fields", body.get("data", []))
    return [item for item in body or [] if isinstance(item, Mapping) and item.get("id")]


def definitions_by_table(raw: RawDefinitions) -> dict[str, list[FieldDefinition]]:
    """Each table's fields. Shared fields apply where `associations` or a schema say so."""
    tables: dict[str, dict[str, FieldDefinition]] = {
        table: {} for table in TABLE_OF_OBJECT_TYPE.values()}
    known: dict[str, Mapping[str, Any]] = {}
    for object_type in OBJECT_TYPES:
        for definition in raw.by_object_type.get(object_type, []):
            if _add(tables, object_type, definition, shared=False):
                known[str(definition["id"])] = definition
    shared = {str(d["id"]): d for d in raw.by_object_type.get("shared", []) if d.get("id")}
    for definition in shared.values():
        for association in definition.get("associations") or []:
            object_type = (association.get("object_type")
                           if isinstance(association, Mapping) else None)
            if object_type in OBJECT_TYPES:
                _add(tables, object_type, definition, shared=True)
    for object_type, fields in raw.schemas.items():
        for item in fields:
            field_id = str(item["id"])
            definition = shared.get(field_id) or known.get(field_id) or item
            _add(tables, object_type, definition, shared=bool(item.get("is_shared")) or
                 field_id in shared)
    return {table: sorted(fields.values(), key=lambda f: f.order)
            for table, fields in tables.items()}


def _add(tables: dict[str, dict[str, FieldDefinition]], object_type: str,
         definition: Mapping[str, Any], *, shared: bool) -> bool:
    field_id, name = definition.get("id"), definition.get("name")
    if not field_id or not isinstance(name, str):
        return False
    fields = tables[TABLE_OF_OBJECT_TYPE[object_type]]
    if str(field_id) not in fields:
        fields[str(field_id)] = FieldDefinition(
            object_type=object_type, id=str(field_id), name=name,
            type=str(definition.get("type") or "text"),
            multi=bool(definition.get("accepts_multiple_values")), shared=shared, raw=definition)
    return True
