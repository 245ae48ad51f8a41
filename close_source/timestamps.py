"""Close's timestamps -> aware UTC datetimes and dates.

Close mixes `+00:00` timestamps, naive ones (events, pipelines, webhooks: their samples in Close's
docs carry no offset; UTC assumed), other offsets (custom datetime fields) and date-only values
(task `date`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pendulum


def to_utc(value: Any) -> datetime | None:
    """Aware UTC datetime, or None for None/unparseable; date-only means midnight UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            try:
                parsed = pendulum.parse(value)  # type: ignore[assignment]
            except (ValueError, pendulum.parsing.exceptions.ParserError):
                return None
    else:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def to_date(value: Any) -> date | None:
    """The calendar date Close meant: date-only values as they are, datetimes in UTC."""
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    parsed = to_utc(value)
    return parsed.date() if parsed else None
