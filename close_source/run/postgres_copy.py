"""PostgreSQL loaded by COPY from CSV files, with empty strings kept apart from NULL.

dlt's `insert_values` format makes SQL text of every row in Python during normalize (20,000
leads: 32 s, 300,000: 586 s; bench/RESULTS.md); its `csv` format writes each Arrow table as CSV
in C++ (pyarrow) and loads it with COPY. But dlt's own COPY job adds FORCE_NULL for every
nullable column, which reads a quoted empty string as NULL: an empty string Close sent would
land as NULL. This destination is dlt's `postgres` with a COPY job without that clause
(`postgres_copy_job.py`). Its type ends in `.postgres` and its name is `postgres`, so the
`[destination.postgres]` settings and everything that tells destinations by type apply as
before. The job class is imported only when a load needs it: psycopg2 comes with the
`postgres` extra.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dlt.common.destination import Destination
from dlt.common.schema.typing import TFileFormat
from dlt.destinations import postgres as dlt_postgres

from close_source.running import running_pipeline


class postgres(dlt_postgres):  # noqa: N801 - the class name is the destination's name
    """dlt's PostgreSQL destination; CSV files are loaded by `postgres_copy_job.CsvCopyJob`."""

    @property
    def client_class(self) -> type[Any]:
        from close_source.run.postgres_copy_job import CopyClient

        return CopyClient


def with_copy(destination: Any) -> Any:
    """dlt's own PostgreSQL factory as this one, with the same settings (credentials, name,
    capabilities); any other destination, a subclass of dlt's among them, as it is."""
    if type(destination) is not dlt_postgres:
        return destination
    ours = postgres()
    ours.config_params = dict(destination.config_params)
    ours.caps_params = dict(destination.caps_params)
    return ours


class _TypeChange(logging.Filter):
    """dlt warns once that a working directory's state names dlt's own PostgreSQL type, which
    the pipeline "ignores": the pipeline takes this destination's, and loads as before."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("The destination dlt.destinations.postgres:")
                    and f" {__name__}.postgres:" in message)


@contextmanager
def quiet_type_change() -> Iterator[None]:
    """Around making a pipeline of a working directory an earlier version loaded from."""
    noise = _TypeChange()
    logging.getLogger("dlt").addFilter(noise)
    try:
        yield
    finally:
        logging.getLogger("dlt").removeFilter(noise)


def copies(destination: Destination[Any, Any] | None) -> bool:
    """Whether `destination` loads CSV files with this module's COPY job."""
    return isinstance(destination, postgres)


def rows_file_format() -> TFileFormat | None:
    """The loader file format of a table dlt gets as Python rows, not Arrow (lead merges, raw
    events, custom field changes): `insert_values` into this destination, else the run's
    (None). dlt writes rows to CSV with Python's csv module, which quotes None and "" alike
    (Python 3.11), so only FORCE_NULL, which makes both NULL, could load them."""
    pipeline = running_pipeline()
    return "insert_values" if pipeline is not None and copies(pipeline.destination) else None
