"""What Close holds, as cheaply as Close tells it: a table's total, or every object's key and
`date_updated` (`close-sync verify`).

Keys are read through the sync's own read paths (date windows, the keyset walk past the
`_skip` cap, variants, per-parent lists), asking only for the fields a comparison needs: a
server that ignores `_fields` costs bytes, not correctness.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from close_source.api.paging import with_fields
from close_source.catalog import Entry
from close_source.read.context import ReadContext
from close_source.read.custom_fields import definitions_by_table, fetch_definitions
from close_source.read.lists import read_entry
from close_source.timestamps import to_utc

KEY_FIELDS = ("id", "date_created", "date_updated", "lead_id")
# where the list answers `total_results` (Close API: Leads, List Leads; Opportunities, List or
# filter opportunities)
TOTALS = ("leads", "opportunities")


@dataclass(frozen=True)
class CloseKey:
    """One object as a comparison needs it."""

    key: str
    date_updated: datetime | None
    date_created: datetime | None
    lead_id: str | None


def close_total(ctx: ReadContext, entry: Entry) -> int | None:
    """Close's own count of the table's objects (one request), or None where the list
    answers none: never a guess."""
    if entry.table not in TOTALS:
        return None
    body = ctx.client.get(entry.path, with_fields({**entry.params, "_limit": "1"}, ("id",)))
    total = body.get("total_results") if isinstance(body, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def close_keys(ctx: ReadContext, entry: Entry) -> Iterator[list[CloseKey]]:
    """Every object's key, a page at a time (memory: a page)."""
    if entry.read == "definitions":
        yield list(_definition_keys(ctx))
        return
    for page in read_entry(ctx, narrowed(entry)):
        yield [CloseKey(str(obj["id"]), to_utc(obj.get("date_updated")),
                        to_utc(obj.get("date_created")), _text(obj.get("lead_id")))
               for obj in page if obj.get("id") is not None]


def narrowed(entry: Entry) -> Entry:
    """The entry reading only the key fields, by the same path a sync reads it."""
    fields = ",".join(KEY_FIELDS)
    if entry.read == "keyset":
        return replace(entry, fields=KEY_FIELDS, search_fields=KEY_FIELDS)
    if entry.read in ("windows", "per_parent"):  # these paths send `params` as they are
        return replace(entry, params={**entry.params, "_fields": fields})
    if entry.read in ("pages", "detail"):  # a group's list row has its id: no detail needed
        return replace(entry, read="pages", fields=KEY_FIELDS,
                       params={k: v for k, v in entry.params.items() if k != "_fields"})
    return entry  # one object or a few pages: read as the sync reads them


def _definition_keys(ctx: ReadContext) -> Iterator[CloseKey]:
    """Custom field definitions, one per field and object type, keyed as their rows are."""
    raw = fetch_definitions(ctx.client, ctx.max_skip)
    for fields in definitions_by_table(raw).values():
        for definition in fields:
            yield CloseKey(definition_key(definition.object_type, definition.id),
                           to_utc(definition.raw.get("date_updated")),
                           to_utc(definition.raw.get("date_created")), None)


def definition_key(object_type: str, field_id: str) -> str:
    return f"{object_type}:{field_id}"


def _text(value: object) -> str | None:
    return None if value is None else str(value)
