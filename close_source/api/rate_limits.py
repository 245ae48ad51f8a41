"""Close's rate limits: what its headers say, and the gate that keeps one endpoint group in them.

Limits are per endpoint group (Close API: Rate Limits). Most responses say, of the limit they
are closest to hitting, `x-rate-limit-limit`, `x-rate-limit-remaining` and `x-rate-limit-reset`
(seconds, a decimal); some clients see the same as one `ratelimit: limit=…, remaining=…,
reset=…` header (other Close connectors read it too). Both are read, the documented ones first.

A gate holds its group's requests back: until a 429's reset, until the reset of a window whose
`remaining` is 0, and, with a `share` below 1, once the window's use reaches `share` of its
limit (at least one request a window), leaving the rest to the organisation's other
integrations. That cap is strict with several threads in one group: a request goes only while
`used + in_flight < allowed`, where `used` is the most any response of the current window said
was used, and `in_flight` counts every request sent and not yet answered, since any of them may
be counted in this window.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass

import httpx
import orjson

_COMBINED = {name: re.compile(rf"(?:^|[\s,;]){name}=\s*([0-9.]+)")
             for name in ("limit", "remaining", "reset")}


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class RateHeaders:
    """One response's word on its window: None where it says nothing."""

    limit: float | None
    remaining: float | None
    reset: float | None  # seconds until the window ends

    @classmethod
    def of(cls, response: httpx.Response) -> RateHeaders:
        combined = response.headers.get("ratelimit", "")

        def read(name: str) -> float | None:
            documented = _float(response.headers.get(f"x-rate-limit-{name}"))
            if documented is not None:
                return documented
            match = _COMBINED[name].search(combined)
            return _float(match.group(1)) if match else None

        return cls(read("limit"), read("remaining"), read("reset"))


def rate_limit_wait(response: httpx.Response) -> float:
    """Seconds to wait after a 429: the body's `rate_reset` first, as the docs prefer (Close
    API: Rate Limits), then `retry-after`, then the headers' reset; 1 s when nothing says."""
    try:
        error = orjson.loads(response.content).get("error")
        if isinstance(error, dict) and _float(str(error.get("rate_reset"))) is not None:
            return float(error["rate_reset"])
    except (orjson.JSONDecodeError, AttributeError):
        pass
    retry_after = _float(response.headers.get("retry-after"))
    if retry_after is not None:
        return retry_after
    reset = RateHeaders.of(response).reset
    return reset if reset is not None else 1.0


@dataclass
class _Window:
    """The server's current window as the answers tell it: it ends within [`ends_after`,
    `ends_by`] (an answer sent at s and received at r with reset t: between s+t and r+t)."""

    ends_after: float
    ends_by: float
    used: float


class RateGate:
    """Holds back the requests of one endpoint group (see the module's docstring)."""

    def __init__(self, share: float = 1.0) -> None:
        self.share = share
        self._changed = threading.Condition()
        self._open_at = 0.0
        self._limit: float | None = None  # the last limit a response stated
        self._answered = False  # a response has said something (or nothing) of the limit
        self._window: _Window | None = None
        self._in_flight = 0

    def enter(self) -> float:
        """Wait until a request may go; count it in flight. Returns the time it went."""
        with self._changed:
            while (wait := self._wait(time.monotonic())) != 0.0:
                self._changed.wait(wait)
            self._in_flight += 1
            return time.monotonic()

    def leave(self, sent_at: float, response: httpx.Response | None) -> None:
        """The request is answered (`response`), or failed without an answer worth reading
        (None: it may still have counted, so it stays counted in the current window)."""
        received_at = time.monotonic()
        said = RateHeaders.of(response) if response is not None else None
        with self._changed:
            self._in_flight -= 1
            if said is None:
                if self._window is not None:
                    self._window.used += 1
            else:
                self._answered = True
                if said.remaining is not None and said.remaining <= 0 and said.reset:
                    self._open_at = max(self._open_at, received_at + said.reset)
                self._learn(sent_at, received_at, said)
            self._changed.notify_all()

    def hold(self, seconds: float) -> None:
        """Nothing goes for `seconds` (a 429's reset)."""
        with self._changed:
            self._open_at = max(self._open_at, time.monotonic() + seconds)

    @property
    def allowed(self) -> int | None:
        """Requests this run may have counted in one window; None: no cap of ours. Before
        the group's first answer the limit is unknown: one request goes alone to learn it."""
        if self.share >= 1.0:
            return None
        if self._limit is None:
            return None if self._answered else 1
        return max(1, math.floor(self.share * self._limit + 1e-9))

    def _wait(self, now: float) -> float | None:
        """0: go; seconds to wait; None: wait for an answer (the budget is all in flight)."""
        if now < self._open_at:
            return self._open_at - now
        allowed = self.allowed
        if allowed is None:
            return 0.0
        window = self._window
        if window is not None and now >= window.ends_by:
            window = self._window = None  # over: what is in flight may count in the next one
        used = window.used if window is not None else 0.0
        if used + self._in_flight < allowed:
            return 0.0
        return window.ends_by - now if window is not None else None

    def _learn(self, sent_at: float, received_at: float, said: RateHeaders) -> None:
        if said.limit is None or said.remaining is None or said.reset is None:
            return
        self._limit = said.limit
        if said.reset <= 0:
            return  # its window is over
        answer = _Window(sent_at + said.reset, received_at + said.reset,
                         max(0.0, said.limit - said.remaining))
        window = self._window
        if window is None or answer.ends_after > window.ends_by:
            self._window = answer  # a later window than the one known
        elif answer.ends_by >= window.ends_after:  # the same window, as far as one can tell
            window.used = max(window.used, answer.used)
            window.ends_after = max(window.ends_after, answer.ends_after)
            window.ends_by = max(window.ends_by, answer.ends_by)
        # else: an answer of an earlier window, come late: its request counted there
