"""`merge_leads`: the source's children move to the destination, the source is deleted.

Every event of a merge carries `meta.merge_source_lead_id` / `merge_destination_lead_id`
(Close API: Event Log, List of events); the last one is `lead.merged`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import events as ev
from .. import org as o
from ..org import FakeOrg
from .deletes import _CHILDREN, _remove_all
from .objects import ADMIN, _audited


def merge_leads(
    org: FakeOrg,
    source_id: str,
    destination_id: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """`POST /lead/merge/` (Close API: Leads, Merge two leads): the source's contacts,
    opportunities, tasks and activities move to the destination (each `updated`: `lead_id`,
    `lead_name`), custom values the destination lacks and addresses it does not have are copied
    from the source, the source is deleted. Returns the destination."""
    if source_id == destination_id:
        raise ValueError("A lead cannot be merged into itself.")
    source, dest = org.get(o.LEAD, source_id), org.get(o.LEAD, destination_id)
    if source is None or dest is None:
        raise KeyError(f"Lead {source_id if source is None else destination_id} not found.")
    meta = {"merge_source_lead_id": source_id, "merge_destination_lead_id": destination_id}
    with ev.request(
        org, "POST", "/api/v1/lead/merge/", user_id=user_id, api_key_id=api_key_id, at=at,
        meta=meta,
    ) as rq:  # fmt: skip
        source, dest = org.get(o.LEAD, source_id) or source, org.get(o.LEAD, destination_id) or dest
        dest_before = ev.data_of(org, o.LEAD, dest)
        for coll in _CHILDREN:
            children = list(org.children(coll, "lead_id", source_id))
            befores = [ev.data_of(org, coll, x) for x in children]
            moved = []
            for child in children:
                new = {**child, "lead_id": destination_id}
                if "lead_name" in new:
                    new["lead_name"] = dest.get("display_name")
                moved.append(_audited(org, coll, new, rq))
            if moved:
                org.put_many(coll, moved)
            for new, before in zip(moved, befores, strict=True):
                ev.updated(org, coll, new, before)
        merged = dict(dest)
        for key, val in source.items():
            if key.startswith("custom.") and key not in merged:
                merged[key] = val
        addresses = list(dest.get("addresses") or [])
        addresses += [a for a in source.get("addresses") or [] if a not in addresses]
        merged["addresses"] = addresses
        merged = _audited(org, o.LEAD, merged, rq)
        org.put(o.LEAD, merged)
        ev.updated(org, o.LEAD, merged, dest_before, force=True)
        _remove_all(org, [(o.LEAD, source)])
        ev.action(org, o.LEAD, merged, "merged")
        return merged
