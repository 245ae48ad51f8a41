"""One parsed API request as the handlers see it (routes, search, exports, the Event Log).

It lives below every handler so that none of them needs the router to name its argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .params import Params


@dataclass
class Request:
    """One parsed API request as handlers see it."""

    method: str
    path: str  # normalised: without /api/v1, with a trailing slash
    params: Params
    body: Any
    user_id: str
    match: dict[str, str] = field(default_factory=dict)
