"""Times of changes: the running request's instant, and `date_updated` stamps that move forward.

Times come from the organisation's clock (`org.clock()`, see `org.py`); a stamp keeps the
previous value's format (aware `+00:00` or naive) and is at least 1 ms after it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ..common import iso, iso_naive
from ..org import FakeOrg

_MS = timedelta(milliseconds=1)


def now(org: FakeOrg) -> datetime:
    """The time of the running request, or the organisation's clock outside one."""
    log = org.events
    if log is not None and log.active is not None:
        return log.active.at
    return org.clock()


def advance(org: FakeOrg, delta: timedelta) -> datetime:
    """Move the organisation's clock (and so the server's `Date`) forward."""
    return org.advance(delta)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def stamp(org: FakeOrg, previous: str | None, at: datetime | None = None) -> str:
    """A new `date_updated` in the previous value's format (aware `+00:00` or naive): `at`,
    else the request's time (`now`), or 1 ms after `previous` when that is not earlier, so
    repeated changes of one object always move its `date_updated` forward."""
    prev = _parse(previous) if previous else None
    if at is None:
        at = now(org)
        if prev is not None and prev >= at:
            at = prev + _MS
    at = _aware(at)
    naive = previous is not None and prev is not None and _is_naive(previous)
    return iso_naive(at) if naive else iso(at)


def _parse(text: str) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        return None


def _is_naive(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is None
    except ValueError:
        return False
