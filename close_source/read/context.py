"""What every read needs: the client, the configured `_skip` cap, the `/me/` answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from close_source.api.client import CloseClient
from close_source.errors import CloseSyncError


@dataclass(frozen=True)
class ReadContext:
    """Set once when the run begins; reads learn nothing onto it (a lower `_skip` cap Close
    reports, an endpoint that ignores `id__in`: the read that meets it keeps it)."""

    client: CloseClient
    max_skip: int
    me: Mapping[str, Any] = field(default_factory=dict)

    @property
    def organization_id(self) -> str:
        organizations = self.me.get("organizations") or []
        if organizations:
            return str(organizations[0]["id"])
        if self.me.get("organization_id"):
            return str(self.me["organization_id"])
        raise CloseSyncError("GET /me/ named no organization for this API key")
