"""What every API write of the fake shares: its time, its Event Log request (the key's user
and API key id, the path) and the mapping of a change's errors to HTTP answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import events as ev
from ..common import ApiError
from ..org import FakeOrg
from ..request import Request


class Writes:
    """The half of `Router` every write handler uses."""

    org: FakeOrg
    clock: Callable[[], datetime] | None
    api_key_id: str | None

    def _now(self) -> datetime | None:
        return self.clock() if self.clock is not None else None

    def _change(self, req: Request, at: datetime | None) -> Any:
        """The Event Log request of a write: the key's user and API key id, the path."""
        return ev.request(
            self.org,
            req.method,
            "/api/v1" + req.path,
            user_id=req.user_id,
            api_key_id=self.api_key_id,
            at=at,
        )


def invalid_as_400(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a change; its ValueError is the client's fault (400), KeyError a 404."""
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    except KeyError as err:
        raise ApiError(404, str(err.args[0] if err.args else err)) from None
