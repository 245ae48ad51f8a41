"""close_source: a dlt source for Close CRM, generated from one declarative catalog.

    from close_source import close_source
    pipeline.run(close_source())  # api_key from SOURCES__CLOSE__API_KEY or .dlt/secrets.toml

Data flows one way: catalog -> client -> read path (lists) -> shaping -> Arrow tables -> dlt.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dlt
from dlt.extract.resource import DltResource

from close_source.arrow_tables import ArrowBatcher
from close_source.catalog import CATALOG, Entry
from close_source.client import DEFAULT_BASE_URL, CloseClient
from close_source.errors import AccessDenied
from close_source.lists import ReadContext, read_entry
from close_source.shaping import shape

__all__ = ["close_source", "DEFAULT_BASE_URL"]

log = logging.getLogger(__name__)


@dlt.source(name="close", section="close")
def close_source(
    api_key: str = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    max_skip: int = 250_000,
    timeout: float = 60.0,
    max_attempts: int = 8,
) -> list[DltResource]:
    """Every Close object type as a resource, merged on its primary key.

    The `GET /me/` preflight fails fast, before any extraction, on a bad key or an unreachable
    API. Resources are parallelized: Close rate-limits per endpoint group, so independent
    endpoints are read at the same time (dlt's `[extract] workers` bounds how many).
    """
    client = CloseClient(api_key, base_url, timeout=timeout, max_attempts=max_attempts)
    ctx = ReadContext(client=client, max_skip=max_skip, me=client.get("me/"))
    return [_resource(ctx, entry) for entry in CATALOG]


def _resource(ctx: ReadContext, entry: Entry) -> DltResource:
    def read() -> Iterator[object]:
        batcher = ArrowBatcher.for_entries([entry])
        try:
            for page in read_entry(ctx, entry):
                for obj in page:
                    for table, row in shape(entry, obj):
                        yield from batcher.add(table, row)
        except AccessDenied as exc:
            log.warning("skipping %s: this API key may not read /%s (%s: %s)",
                        entry.table, exc.path.strip("/"), exc.status, exc.api_message)
        yield from batcher.flush()

    return dlt.resource(read, name=entry.table, parallelized=True)
