"""`EventSettings`: how one server's `GET /event/` answers (the docs' readings, switchable).

Only the answers change; the log itself is shaped by `configure` (see `log.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"EventSettings.{name} must be one of {allowed}, not {value!r}.")


@dataclass(frozen=True)
class EventSettings:
    """How `GET /event/` answers (defaults: the docs' plain reading).

    `filters`: "documented" (only the listed combinations; no filter at all, or only
    `date_updated`, is a 400), "unfiltered" (the listed ones plus no filter) or "any". `max_limit`
    [50] and `over_limit`: "cap" (a larger `_limit` is capped) or "error" (400). `skip`: "ignore"
    or "error" for `_skip` ("does not support _limit and _skip"). `dates`: "naive"
    (`2016-10-19T12:22:10.434000`, as the samples) or "utc" (`+00:00`). `object_types`: served
    spelling per canonical one (e.g. `SAMPLE_SPELLINGS`); filters match the served spelling.
    `retention` [30 days] by `date_created`. `private_after` [1 h] / `private_age` ("date_created"
    or "date_updated"): how old an event may be for a non-admin key to get `data` and
    `previous_data`; `hidden`: "omit" the two keys or "null" them. `lead_data`: "full" (as
    `GET /lead/{id}/`, with contacts, opportunities, tasks) or "flat" (without those three lists).
    `undocumented`: also serve `custom_fields.opportunity` / `custom_fields.shared`. `late_every` /
    `late_by`: every Nth event (by creation) is invisible until `late_by` after its `date_updated`
    ("events may be visible ... in a different order than they were triggered"; Close API: Event
    Log, Retrieve a list of events); 0 disables. `cursor_filters`: "strict" (a cursor used with
    other filters than the query that made it is a 400) or "request" (the request's filters apply,
    silently).
    """

    filters: str = "documented"
    max_limit: int = 50
    over_limit: str = "cap"
    skip: str = "ignore"
    dates: str = "naive"
    object_types: Mapping[str, str] = field(default_factory=dict)
    retention: timedelta = timedelta(days=30)
    private_after: timedelta = timedelta(hours=1)
    private_age: str = "date_created"
    hidden: str = "omit"
    lead_data: str = "full"
    undocumented: bool = False
    late_every: int = 0
    late_by: timedelta = timedelta(minutes=2)
    cursor_filters: str = "strict"

    def __post_init__(self) -> None:
        _check("filters", self.filters, ("documented", "unfiltered", "any"))
        _check("over_limit", self.over_limit, ("cap", "error"))
        _check("skip", self.skip, ("ignore", "error"))
        _check("dates", self.dates, ("naive", "utc"))
        _check("private_age", self.private_age, ("date_created", "date_updated"))
        _check("hidden", self.hidden, ("omit", "null"))
        _check("lead_data", self.lead_data, ("full", "flat"))
        _check("cursor_filters", self.cursor_filters, ("strict", "request"))
        if self.max_limit < 1 or self.late_every < 0:
            raise ValueError("max_limit must be positive and late_every not negative.")

    def spelling(self, canonical: str) -> str:
        return self.object_types.get(canonical, canonical)
