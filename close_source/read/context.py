"""What every read needs: the client, the configured `_skip` cap, the `/me/` answer, and for a
backup or a restore, where whole tables are kept or come from."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from close_source.api.client import CloseClient
from close_source.errors import CloseSyncError
from close_source.read.privacy import NO_PRIVACY, Privacy
from close_source.records import Page


class TableSource(Protocol):
    """Whole tables as a backup kept them: a restore reads these instead of Close."""

    def pages(self, table: str) -> Iterator[Page]: ...


class TableRecorder(Protocol):
    """A backup being written: every whole table read from Close passes through it."""

    def record(self, table: str, pages: Iterator[Page]) -> Iterator[Page]: ...


@dataclass(frozen=True)
class ReadContext:
    """Set once when the run begins; reads learn nothing onto it (a lower `_skip` cap Close
    reports, an endpoint that ignores `id__in`: the read that meets it keeps it)."""

    client: CloseClient
    max_skip: int
    me: Mapping[str, Any] = field(default_factory=dict)
    # a restore: every whole table comes from the backup, never from Close
    backup: TableSource | None = None
    # a backup: every whole table read from Close is also kept, as Close returned it
    recorder: TableRecorder | None = None
    # fields kept out and values hashed, by every read path as objects come in
    privacy: Privacy = NO_PRIVACY

    @property
    def organization_id(self) -> str:
        organizations = self.me.get("organizations") or []
        if organizations:
            return str(organizations[0]["id"])
        if self.me.get("organization_id"):
            return str(self.me["organization_id"])
        raise CloseSyncError("GET /me/ named no organization for this API key")
