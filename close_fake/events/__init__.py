"""The Event Log of the fake Close API (Close API: Event Log).

Writing: every change of the organisation runs inside a *request* (`request(...)`: one request id,
one acting user, one instant) and records what it did with `created`, `updated`, `deleted`,
`action` and `merged`; these append `Event`s to the organisation's `EventLog` (`org.events`), or,
for repeated updates of one object, rewrite the latest one (Close API: Event Log, Event
consolidation). The `changes` and `mutations` packages are the callers.

Reading: `EventReader` serves `GET /event/` (cursor paging newest first, the documented
filters and filter combinations, `_limit` up to 50, 30-day retention, `data` and
`previous_data` only within one hour for non-admins) and `GET /event/{id}/`. Settings that
only shape answers live in `EventSettings` (per server); consolidation, which rewrites the
log itself, is configured on the log (`configure(org, ...)`).

Times come from the organisation's clock (`org.clock()`, see `org.py`): a request without
`at=` takes the clock, truncated to milliseconds, and at least 1 ms after the previous
request, moving a frozen clock forward by that millisecond, so events never lie ahead of
the clock and ordering stays deterministic.

Modules: `kinds.py` (object types, spellings, API paths, `data`), `log.py` (the store and
its org-level settings), `clock.py` (request times, `date_updated` stamps), `record.py`
(writing), `settings.py` + `reader.py` (reading). This package is the namespace callers
use: `from close_fake import events as ev`.
"""

from .clock import advance, now, stamp
from .kinds import (
    ACTIVITY_OBJECT_TYPES,
    ACTIVITY_SEGMENTS,
    AUDIT_KEYS,
    COLLECTION_OBJECT_TYPES,
    NO_DELETE_EVENT,
    SAMPLE_SPELLINGS,
    UNDOCUMENTED_OBJECT_TYPES,
    api_path,
    data_of,
    object_type,
)
from .log import ChangeRequest, Event, EventLog, configure, events, log_of, new_id
from .reader import DATE_FILTERS, DOCUMENTED_COMBINATIONS, FILTERS, EventReader
from .record import ADMIN, action, created, deleted, diff, emit, request, updated
from .settings import EventSettings

__all__ = [
    "ACTIVITY_OBJECT_TYPES",
    "ACTIVITY_SEGMENTS",
    "ADMIN",
    "AUDIT_KEYS",
    "COLLECTION_OBJECT_TYPES",
    "DATE_FILTERS",
    "DOCUMENTED_COMBINATIONS",
    "FILTERS",
    "NO_DELETE_EVENT",
    "SAMPLE_SPELLINGS",
    "UNDOCUMENTED_OBJECT_TYPES",
    "ChangeRequest",
    "Event",
    "EventLog",
    "EventReader",
    "EventSettings",
    "action",
    "advance",
    "api_path",
    "configure",
    "created",
    "data_of",
    "deleted",
    "diff",
    "emit",
    "events",
    "log_of",
    "new_id",
    "now",
    "object_type",
    "request",
    "stamp",
    "updated",
]
