"""Writing the Event Log: a change runs in one `request(...)` and records what it did.

`created`, `updated` (with consolidation of repeated updates: Close API: Event Log, Event
consolidation), `deleted` and `action` append `Event`s through `emit`; `changes` and `mutations`
are the callers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from .. import org as o
from ..common import SHORT_ID, make_id
from ..org import FakeOrg
from .clock import _MS, _aware, _ms
from .kinds import _LEAD_NESTED, AUDIT_KEYS, NO_DELETE_EVENT, data_of, object_type
from .log import ChangeRequest, Event, log_of

ADMIN = "<admin>"  # `user_id` default: the organisation's admin user


@contextlib.contextmanager
def request(
    org: FakeOrg,
    method: str = "POST",
    path: str = "/api/v1/",
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Iterator[ChangeRequest]:
    """Run a change as one request: holds `org.lock`; every event inside shares the request
    id, user (`ADMIN`: the organisation's admin; None: a change no user made directly),
    API key id, time (`at`, else the clock) and `meta` (plus `request_method` /
    `request_path`: Close API: Event Log, Event format). Nested requests join the outer one."""
    with org.lock:
        log = log_of(org)
        if log.active is not None:
            yield log.active
            return
        if at is None:
            t = _ms(org.clock())
            if log.last is not None and t <= log.last:
                t = log.last + _MS
            log.last = t
            if t > org.clock():
                org.set_clock(t)  # a frozen clock moves on with the changes
        else:
            t = _aware(at)
        n = log.count("request")
        rq = ChangeRequest(
            id=make_id(random.Random(f"{org.organization_id}/req/{n}"), "req", SHORT_ID),
            at=t,
            user_id=org.admin_user_id if user_id == ADMIN else user_id,
            api_key_id=api_key_id,
            method=method,
            path=path,
            meta=dict(meta or {}),
        )
        log.active = rq
        try:
            yield rq
        finally:
            log.active = None


def emit(
    org: FakeOrg,
    object_type_: str,
    object_id: str,
    action: str,
    *,
    lead_id: str | None,
    data: dict[str, Any] | None,
    previous_data: dict[str, Any] | None = None,
    changed_fields: tuple[str, ...] = (),
    consolidate: bool = True,
) -> Event:
    """Append one event (or, for an `updated`, fold it into the object's latest event,
    which keeps its id, `date_created`, request id and meta)."""
    log = log_of(org)
    rq = log.active
    if rq is None:
        raise RuntimeError("events.emit() outside events.request(...)")
    meta = {"request_method": rq.method, "request_path": rq.path, **rq.meta}
    key = (object_type_, object_id)
    log.seq += 1
    log.version += 1
    last = log.events.get(log.latest.get(key, ""))
    if (
        consolidate
        and action == "updated"
        and last is not None
        and last.action == "updated"
        and last.user_id == rq.user_id
        and last.api_key_id == rq.api_key_id
        and _context(last.meta) == _context(meta)
        and log.consolidation_window is not None
        and last.date_updated <= rq.at <= last.date_created + log.consolidation_window
    ):
        # "the attributes in previous_data are merged": the earliest old value wins.
        merged_previous = {**(previous_data or {}), **(last.previous_data or {})}
        event = dataclasses.replace(
            last,
            seq=log.seq,
            date_updated=rq.at,
            changed_fields=tuple(sorted(set(last.changed_fields) | set(changed_fields))),
            previous_data=dict(sorted(merged_previous.items())),
            data=data,
            lead_id=lead_id,
        )
    else:
        n = log.count("event")
        event = Event(
            id=make_id(random.Random(f"{org.organization_id}/ev/{n}"), "ev", SHORT_ID),
            n=n,
            seq=log.seq,
            object_type=object_type_,
            object_id=object_id,
            action=action,
            lead_id=lead_id,
            user_id=rq.user_id,
            request_id=rq.id,
            api_key_id=rq.api_key_id,
            date_created=rq.at,
            date_updated=rq.at,
            changed_fields=tuple(changed_fields),
            previous_data=previous_data,
            data=data,
            meta=meta,
        )
    log.events[event.id] = event
    log.latest[key] = event.id
    return event


def _context(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Meta that ties an event to an operation (a merge, a bulk action): events of two
    different operations are never consolidated; request paths may differ."""
    return {k: val for k, val in meta.items() if k not in ("request_method", "request_path")}


def _lead_id_of(collection: str, obj: Mapping[str, Any]) -> str | None:
    if collection == o.LEAD:
        return obj["id"]
    return obj.get("lead_id")


def created(org: FakeOrg, collection: str, obj: dict[str, Any]) -> Event | None:
    """A `created` event for a stored object (None if its type has no events)."""
    return action(org, collection, obj, "created")


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], ignore: frozenset[str] = frozenset()
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(changed keys sorted, their previous values); a key that appeared was None before."""
    changed = sorted(
        k
        for k in set(before) | set(after)
        if k not in ignore and (k not in before or k not in after or before[k] != after[k])
    )
    return tuple(changed), {k: before.get(k) for k in changed}


def updated(
    org: FakeOrg,
    collection: str,
    obj: dict[str, Any],
    before: Mapping[str, Any],
    *,
    force: bool = False,
) -> Event | None:
    """An `updated` event for a stored object: `before` is its data (`data_of`) taken
    before the change. Nothing when only bookkeeping keys changed (`AUDIT_KEYS`) unless
    `force`, or when its type has no events."""
    type_ = object_type(collection, obj)
    if type_ is None:
        return None
    after = data_of(org, collection, obj)
    changed, previous = diff(before, after, _LEAD_NESTED if collection == o.LEAD else frozenset())
    if not force and not set(changed) - AUDIT_KEYS:
        return None
    return emit(
        org,
        type_,
        obj["id"],
        "updated",
        lead_id=_lead_id_of(collection, obj),
        data=after,
        previous_data=previous,
        changed_fields=changed,
    )


def deleted(org: FakeOrg, collection: str, before: dict[str, Any]) -> Event | None:
    """A `deleted` event: `data` null, `previous_data` every attribute (Close API: Event Log, Event
    format); `before` is the object's data taken before it was removed."""
    type_ = object_type(collection, before)
    if type_ is None or type_ in NO_DELETE_EVENT:
        return None
    return emit(
        org,
        type_,
        before["id"],
        "deleted",
        lead_id=_lead_id_of(collection, before),
        data=None,
        previous_data=before,
    )


def action(org: FakeOrg, collection: str, obj: dict[str, Any], name: str) -> Event | None:
    """Another documented action (`completed`, `sent`, `scheduled`, `merged`...), with the
    object's current data."""
    type_ = object_type(collection, obj)
    if type_ is None:
        return None
    return emit(
        org,
        type_,
        obj["id"],
        name,
        lead_id=_lead_id_of(collection, obj),
        data=data_of(org, collection, obj),
        previous_data={},
    )
