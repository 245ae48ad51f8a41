"""Errors the CLI turns into one clear line and exit code 2.

Every message here is written for the person running the sync: it says what is wrong and what to
change. None of them may contain the API key.
"""

from collections.abc import Iterator


class CloseSyncError(Exception):
    """A failure the user can act on (bad key, bad config, unreachable API)."""


class ConfigError(CloseSyncError):
    """Missing or invalid configuration."""


class AuthError(CloseSyncError):
    """Close rejected the API key (401, or 403 on the very first call)."""


class UnreachableError(CloseSyncError):
    """The API could not be reached, or kept failing, after every retry."""


class ApiError(CloseSyncError):
    """Close answered with an error we cannot retry (e.g. 400)."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        self.status = status
        self.path = path
        self.api_message = message
        super().__init__(f"Close API {method} {path} failed with {status}: {message}")


class AccessDenied(ApiError):
    """403/404 on an endpoint: this key may not read it; the resource is skipped."""


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and what dlt wrapped (`.exception`), once each:
    what a failure was made of, for telling which it was."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [current.__cause__, current.__context__, getattr(current, "exception", None)]
