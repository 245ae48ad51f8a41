"""Fault injection and rate limiting for the fake Close API.

`Faults` makes requests fail on purpose, either with seeded probabilities (deterministic
for a given request sequence: one draw per eligible request from `random.Random(seed)`)
or from an explicit schedule (`fail_next("/lead/", ["429", "500", "drop"])`). Every
injected fault is counted in `injected`, so tests can prove a fault really happened.

`RateLimit` enforces a real fixed-window limit per endpoint group (method + path template), as
Close does (Close API: Rate Limits; a group may have a higher limit than the others: "a higher
limit on lightweight requests"), and feeds the `x-rate-limit-*` headers that every response
carries.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# "429": rate-limit answer with the documented body; "500"/"502"/"503": server errors;
# "drop": close the socket without answering; "partial": send the headers and part of the
# body, then close; "slow": answer normally after `slow_seconds`.
FAULT_KINDS = ("429", "500", "502", "503", "drop", "partial", "slow")


def normalise_prefix(prefix: str) -> str:
    """Accept "/api/v1/lead/", "lead/" or "/lead/" alike -> "/lead/"."""
    p = prefix.strip()
    if p.startswith("/api/v1"):
        p = p[len("/api/v1") :]
    if not p.startswith("/"):
        p = "/" + p
    return p


class Faults:
    """Seeded random and scheduled faults.

    Probabilities apply to every request whose path (without `/api/v1`) starts with one of
    `paths` (all requests when `paths` is empty). Scheduled faults take precedence and
    match their own prefix.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        p_429: float = 0.0,
        p_500: float = 0.0,
        p_502: float = 0.0,
        p_503: float = 0.0,
        p_drop: float = 0.0,
        p_partial: float = 0.0,
        rate_reset: float = 0.05,
        slow_seconds: float = 1.0,
        paths: Iterable[str] = (),
    ) -> None:
        self.seed = seed
        self.probabilities: dict[str, float] = {
            "429": p_429, "500": p_500, "502": p_502, "503": p_503,
            "drop": p_drop, "partial": p_partial,
        }  # fmt: skip
        if sum(self.probabilities.values()) > 1.0:
            raise ValueError("fault probabilities add up to more than 1")
        self.rate_reset = rate_reset
        self.slow_seconds = slow_seconds
        self.paths = tuple(normalise_prefix(p) for p in paths)
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._schedule: list[tuple[str, deque[str]]] = []
        self._lock = threading.Lock()

    def fail_next(self, prefix: str, kinds: Iterable[str]) -> None:
        """The next requests under `prefix` fail with `kinds`, in order."""
        kinds = [str(k) for k in kinds]
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {FAULT_KINDS}")
        with self._lock:
            self._schedule.append((normalise_prefix(prefix), deque(kinds)))

    def pending(self) -> int:
        """Scheduled faults not yet injected."""
        with self._lock:
            return sum(len(q) for _, q in self._schedule)

    def clear(self) -> None:
        """Drop the schedule and reset the counters (probabilities stay)."""
        with self._lock:
            self._schedule.clear()
            self.injected.clear()

    def pick(self, path: str) -> str | None:
        """The fault to inject for a request to `path` (normalised), or None; counts it."""
        with self._lock:
            for prefix, queue in self._schedule:
                if queue and path.startswith(prefix):
                    kind = queue.popleft()
                    self.injected[kind] += 1
                    return kind
            if self.paths and not any(path.startswith(p) for p in self.paths):
                return None
            if not any(self.probabilities.values()):
                return None
            draw = self._rng.random()
            total = 0.0
            for kind, p in self.probabilities.items():
                total += p
                if draw < total:
                    self.injected[kind] += 1
                    return kind
            return None


@dataclass(frozen=True)
class RateState:
    """What the limiter says about one request."""

    limit: int
    remaining: int
    reset: float  # seconds until the window ends
    window: float
    exceeded: bool
    group_id: str
    window_start: float = 0.0  # monotonic: with `group_id`, the window that counted the request


class RateLimit:
    """`requests` per `window` seconds for each endpoint group (fixed windows); `groups`
    gives some groups their own limit (`{"GET /lead/": 20}`: method and route template).

    With `enforce=False` requests are only counted (headers stay truthful, no 429).
    """

    def __init__(self, requests: int, window: float = 1.0, *, enforce: bool = True,
                 groups: Mapping[str, int] | None = None) -> None:
        if min([requests, *(groups or {}).values()]) < 1 or window <= 0:
            raise ValueError("requests must be >= 1 and window > 0")
        self.requests = requests
        self.window = window
        self.enforce = enforce
        self.groups = dict(groups or {})
        self.rejected: Counter[str] = Counter()
        self._state: dict[str, list[float]] = {}  # group -> [window_start, count]
        self._lock = threading.Lock()

    @staticmethod
    def group_id(group: str) -> str:
        """A stable hash id per endpoint group, like `rate_endpoint_group` (Close API: Rate
        Limits)."""
        return hashlib.md5(group.encode()).hexdigest()

    def hit(self, group: str) -> RateState:
        """Count one request to `group` and say whether it is over the limit."""
        now = time.monotonic()
        with self._lock:
            state = self._state.get(group)
            if state is None or now >= state[0] + self.window:
                state = self._state[group] = [now, 0.0]
            limit = self.groups.get(group, self.requests)
            exceeded = self.enforce and state[1] >= limit
            if exceeded:
                self.rejected[group] += 1
            else:
                state[1] += 1
            remaining = max(0, limit - int(state[1]))
            reset = max(0.0, state[0] + self.window - now)
        return RateState(
            limit, remaining, reset, self.window, exceeded, self.group_id(group),
            state[0],
        )
