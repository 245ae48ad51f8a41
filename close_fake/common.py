"""Small helpers shared by the fake Close API: ids, timestamps, money, errors.

Kept free of server and organisation logic so that the generator, the views and the
request handlers all format values the same way (one source of truth for formats).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from functools import lru_cache

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Lengths of the random part of ids, as seen in the doc samples: long ids on CRM objects
# (`lead_IIDHIStmFcFQZZP0BRe99V1MCoXWz2PGCm6EDmR9v2O`), short ones on newer objects
# (`pipe_6gV01if4wo7r2YTVQDWP2j`, `seq_1BTljGuCooX0nbFoPihl07`; Close API: Pipelines; Email
# Sequences).
LONG_ID = 43
SHORT_ID = 22


class ApiError(Exception):
    """An error answered as `{"error": message}` with an HTTP status (400, 403, 404...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Two base62 digits at once, least significant first: `_PAIRS[lo + 62 * hi]` = lo, hi.
_PAIRS = tuple(lo + hi for hi in _ALPHABET for lo in _ALPHABET)


def make_id(rng: random.Random, prefix: str, length: int = LONG_ID) -> str:
    """A Close-style id (`prefix_` + base62), drawn from `rng` so ids are seeded: the
    digits of `rng.getrandbits(6 * length)`, least significant first. Taken two at a time
    (half the divisions of the big number; ids are a third of a big org's generation)."""
    n = rng.getrandbits(6 * length)
    parts = [prefix, "_"]
    for _ in range(length // 2):
        n, r = divmod(n, 3844)
        parts.append(_PAIRS[r])
    if length % 2:
        parts.append(_ALPHABET[n % 62])
    return "".join(parts)


def iso(dt: datetime) -> str:
    """Aware UTC timestamp as Close writes it: `2013-02-01T00:54:51.333000+00:00`."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def iso_naive(dt: datetime) -> str:
    """Naive timestamp as the docs show for pipelines, custom activity types, dialer sessions and
    webhooks: `2019-11-04T11:04:13.014979` (Close API: Pipelines; Custom Activities; Dialer;
    Webhook Subscriptions)."""
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def iso_seconds(dt: datetime) -> str:
    """Aware timestamp without fraction, as on email `date_sent`: `2014-12-07T04:10:46+00:00`."""
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


@lru_cache(maxsize=500_000)
def parse_moment(value: str) -> float:
    """Epoch seconds of an ISO date or datetime string; naive and date-only mean UTC.

    Cached: the same timestamp strings are compared over and over by filters and sorts.
    Raises ValueError on garbage, which callers turn into a 400.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty date")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def format_money(cents: int | float, period: str | None = None) -> str:
    """`value_formatted` as in the samples: 50000 -> "$500", 5000 monthly -> "$50 monthly"
    (Close API: Opportunities). Annual values are shown without suffix, as in the list sample."""
    cents = int(round(cents))
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    text = f"{sign}${dollars:,}" if rest == 0 else f"{sign}${dollars:,}.{rest:02d}"
    if period == "monthly":
        text += " monthly"
    return text


def format_phone(e164: str) -> str:
    """`+16503334444` -> `+1 650-333-4444` (the samples' `phone_formatted`)."""
    digits = e164.lstrip("+")
    if len(digits) == 11 and digits.startswith("1"):
        return f"+1 {digits[1:4]}-{digits[4:7]}-{digits[7:]}"
    return f"+{digits[:2]} {digits[2:5]} {digits[5:]}"


def utc(year: int, month: int, day: int, *rest: int) -> datetime:
    """Shorthand for an aware UTC datetime."""
    return datetime(year, month, day, *rest, tzinfo=UTC)


def add_seconds(dt: datetime, seconds: float) -> datetime:
    """`dt` plus seconds, truncated to milliseconds like Close's stored timestamps."""
    out = dt + timedelta(seconds=seconds)
    return out.replace(microsecond=(out.microsecond // 1000) * 1000)


def org_clock(now: datetime) -> Callable[[], datetime]:
    """The fake's clock: the organisation's `now`, ticking from the moment it is made.
    All generated history lies before it, so exports and `Date` headers come after it."""
    started = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - started)


def http_date(dt: datetime) -> str:
    """RFC 7231 IMF-fixdate for `Date` headers: `Thu, 01 Oct 2026 00:00:00 GMT`."""
    return format_datetime(dt.astimezone(UTC), usegmt=True)
