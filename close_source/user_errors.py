"""Exceptions the person running a sync can fix -> the one line `close-sync` prints for them.

Our own `CloseSyncError`s say it already; dlt's configuration and destination errors are
translated here so they name the setting to change. Nothing here may echo a secret: connection
strings in driver messages are redacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.destinations.exceptions import DestinationConnectionError
from dlt.pipeline.exceptions import PipelineStepFailed

from close_source.errors import CloseSyncError

_SECRETS = (
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),  # scheme://user:password@host
    (re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE), r"\1***"),
)


def user_error_message(exc: BaseException, pipeline: Any = None) -> str | None:
    """The one-line message for a user error anywhere in the exception chain, else None.

    `pipeline` (when the command made one) names the destination.
    """
    causes = list(_chain(exc))
    failed = next((c for c in causes if isinstance(c, PipelineStepFailed)), None)
    if failed is not None:
        pipeline = failed.pipeline
    for cause in causes:  # the precise causes first, wherever they are in the chain
        if isinstance(cause, CloseSyncError):
            return str(cause)
        if isinstance(cause, ConfigFieldMissingException):
            return _missing_config(cause)
        if isinstance(cause, UnknownDestinationModule):
            return (f"unknown destination {cause.ref!r}: use duckdb, postgres, "
                    "bigquery or another dlt destination name")
    for cause in causes:
        if isinstance(cause, PipelineStepFailed) and cause.step == "sync" or \
                isinstance(cause, DestinationConnectionError):
            return _unreachable_destination(exc, pipeline)
    return None


def _missing_config(cause: ConfigFieldMissingException) -> str:
    if "api_key" in cause.fields:
        return ("No Close API key: set SOURCES__CLOSE__API_KEY or `api_key` under "
                "[sources.close] in .dlt/secrets.toml")
    destination = _destination_section(cause.traces)
    if destination and "credentials" in cause.fields:
        return (f"no credentials for the {destination} destination: set "
                f"DESTINATION__{destination.upper()}__CREDENTIALS or "
                f"[destination.{destination}.credentials] in .dlt/secrets.toml "
                "(see README, Destinations)")
    return f"missing configuration: {', '.join(cause.fields)} (see README, Configuration)"


def _destination_section(traces: Any) -> str | None:
    """`postgres` from lookups under `destination.postgres...`, however deeply nested."""
    if isinstance(traces, dict):
        traces = list(traces.values())
    if isinstance(traces, list):
        return next((found for item in traces if (found := _destination_section(item))), None)
    if hasattr(traces, "traces"):  # a nested configuration's own lookups
        return _destination_section(traces.traces)
    sections = getattr(traces, "sections", None) or []
    if len(sections) >= 2 and sections[0] == "destination" and sections[1] != "credentials":
        return str(sections[1])
    return None


def _unreachable_destination(exc: BaseException, pipeline: Any) -> str:
    """The driver's first line (what failed, where), without any password in it."""
    name = "the"
    if pipeline is not None and pipeline.destination is not None:
        name = pipeline.destination.destination_name
    root = list(_chain(exc))[-1]
    detail = next((line.strip() for line in str(root).splitlines() if line.strip()),
                  type(root).__name__)
    for pattern, replacement in _SECRETS:
        detail = pattern.sub(replacement, detail)
    return (f"cannot connect to the {name} destination: {detail} (check "
            f"DESTINATION__{name.upper()}__CREDENTIALS, see README, Destinations)")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [current.__cause__, current.__context__, getattr(current, "exception", None)]
