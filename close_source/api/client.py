"""The HTTP client for Close: auth, retries, rate limits, error mapping.

Retries follow Close's documented rules (Close API: Rate Limits; HTTP Response Codes): on 429 wait
`error.rate_reset` (else the `retry-after` / `x-rate-limit-reset` / `ratelimit: ... reset=` headers)
before retrying that endpoint group; when a response says `remaining` is 0, hold the group until its
reset instead of running into a 429 (and, with `rate_limit_share` below 1, once that share of the
limit is used: `api/rate_limits.py`). 5xx, timeouts and dropped connections are retried with
exponential backoff and jitter (tenacity), a bounded number of times. Rate limits are per endpoint
group, so one `RateGate` per (method, path template) lets independent endpoints proceed
concurrently.

No connection before Close has answered once (the `GET /me/` preflight) is a wrong `base_url` or
an outage: it ends the run within seconds, saying why (`api/connection.py`). Once Close has
answered, the same failures are a restart or a blip, retried like a timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from close_source.api.connection import (
    FIRST_CONNECT_ATTEMPTS,
    cannot_connect,
    connect_failure,
    validate_base_url,
)
from close_source.api.rate_limits import RateGate, rate_limit_wait
from close_source.errors import AccessDenied, ApiError, AuthError, ConfigError, UnreachableError
from close_source.progress import Progress, megabytes
from close_source.stages import TALLY

DEFAULT_BASE_URL = "https://api.close.com/api/v1/"
KEY_HINT = "set SOURCES__CLOSE__API_KEY or `api_key` under [sources.close] in .dlt/secrets.toml"

log = logging.getLogger(__name__)

_ID_IN_PATH = re.compile(r"/[a-z]+_[A-Za-z0-9]{6,}(?=/|$)")


class _Retryable(Exception):
    """A failure worth another attempt; `delay` is the server-imposed wait, if any;
    `connecting`: no connection could be made and Close has not answered yet."""

    def __init__(self, reason: str, delay: float | None = None,
                 connecting: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        self.connecting = connecting


def _endpoint_group(method: str, path: str) -> str:
    return f"{method} {_ID_IN_PATH.sub('/{id}', '/' + path.strip('/'))}"


def _error_message(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    if error:
        return str(error)
    return str(body)[:300]


class CloseClient:
    """A thread-safe Close API client; one per sync run."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 60.0,
        max_attempts: int = 8,
        max_rate_limited: int = 50,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
        rate_limit_share: float = 1.0,
    ) -> None:
        """`transport`: httpx's seam, for tests (`httpx.MockTransport`) and benchmarks.
        `rate_limit_share`: the part of each endpoint group's limit this client uses."""
        if not api_key or not api_key.strip():
            raise ConfigError(f"No Close API key: {KEY_HINT}")
        if not 0 < rate_limit_share <= 1:
            raise ValueError(f"rate_limit_share must be in (0, 1], not {rate_limit_share!r}")
        self.rate_limit_share = rate_limit_share
        self.base_url = validate_base_url(base_url)
        self.max_attempts = max_attempts
        self.max_rate_limited = max_rate_limited
        self._backoff_initial, self._backoff_max = backoff_initial, backoff_max
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_initial, max=backoff_max, jitter=backoff_initial)
        self._gates: dict[str, RateGate] = {}
        self._gates_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.requests_sent = 0
        self.retries = 0
        self.server_time: datetime | None = None  # Close's clock: the last `Date` header
        # Close has answered (any status): from then on a failed connection is a blip
        self.answered = False
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=httpx.BasicAuth(api_key.strip(), ""),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            headers={"user-agent": "close-dlt/0.1", "accept": "application/json"},
            transport=transport,
        )

    def __enter__(self) -> CloseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def get_in_body(self, path: str, params: Mapping[str, Any]) -> Any:
        """A GET whose filters travel in the body (POST, `x-http-method-override: GET`, `_params`),
        Close's way for filters too long for a URL, like id lists (Close API: Filter
        Parameters)."""
        return self.request("POST", path, json={"_params": dict(params)},
                            headers={"x-http-method-override": "GET"})

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
        json: Any = None, headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one logical request, retrying what is retryable; return the decoded JSON."""
        gate = self._gate((headers or {}).get("x-http-method-override", method), path)
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            wait=self._wait,
            stop=self._stop,
            before_sleep=lambda state: self._log_retry(method, path, state),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send(method, path, params, json, gate, headers)
        except _Retryable as exc:
            if exc.connecting:
                raise cannot_connect(self.base_url, exc.reason) from None
            raise UnreachableError(
                f"Close API {method} {path} kept failing ({exc.reason}) after "
                f"{self.max_attempts} attempts; check {self.base_url} and try again later"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- internals ------------------------------------------------------------------------

    def _gate(self, method: str, path: str) -> RateGate:
        """A GET sent as a POST with `x-http-method-override` (Close API: Filter Parameters) is
        limited as the GET it is (the fake Close counts it so; one gate for both is the cautious
        reading)."""
        key = _endpoint_group(method, path)
        with self._gates_lock:
            if key not in self._gates:
                self._gates[key] = RateGate(self.rate_limit_share)
            return self._gates[key]

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
              gate: RateGate, headers: Mapping[str, str] | None = None) -> Any:
        sent_at = gate.enter()
        with self._stats_lock:
            self.requests_sent += 1
        response: httpx.Response | None = None
        TALLY.request()
        try:
            response = self._http.request(method, path, params=params, json=json,
                                          headers=headers)
        except httpx.TimeoutException:
            raise _Retryable("timeout") from None
        except httpx.TransportError as exc:
            failure = connect_failure(exc)
            if failure is None:
                raise _Retryable(f"connection error: {type(exc).__name__}") from None
            reason, transient = failure
            if not self.answered and not transient:
                raise cannot_connect(self.base_url, reason) from None
            raise _Retryable(reason, connecting=not self.answered) from None
        finally:  # a 5xx says nothing reliable of the window: counted as used, like no answer
            gate.leave(sent_at, response if response is not None
                       and response.status_code < 500 else None)

        self.answered = True
        status = response.status_code
        if status == 429:
            delay = rate_limit_wait(response)
            gate.hold(delay)
            raise _Retryable("rate limited (429)", delay=delay)
        if status >= 500:
            raise _Retryable(f"server error {status}")
        if status in (401, 403) and (status == 401 or path.strip("/") == "me"):
            raise AuthError(
                f"Close rejected the API key ({status}: {_error_message(response)}); {KEY_HINT}"
            )
        if status in (403, 404):
            raise AccessDenied(status, method, path, _error_message(response))
        if status >= 400:
            raise ApiError(status, method, path, _error_message(response))

        self._note_server_time(response)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise _Retryable("incomplete or invalid JSON body") from None

    def _note_server_time(self, response: httpx.Response) -> None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            self.server_time = parsedate_to_datetime(response.headers["date"])

    # ---- downloads ------------------------------------------------------------------------

    def download(self, url: str, path: str | os.PathLike[str], max_attempts: int = 6,
                 resume: bool = False) -> int:
        """Stream `url` to `path` byte for byte (no content decoding); resume broken transfers
        (and, with `resume`, the bytes an earlier run left in `path`).

        The key goes only to the API's own host: a pre-signed URL elsewhere gets no credentials.
        Returns the number of bytes written.
        """
        same_host = urlsplit(url)[:2] == urlsplit(self.base_url)[:2]
        http = self._http if same_host else httpx.Client(
            timeout=self._http.timeout, headers={"user-agent": "close-dlt/0.1"})
        try:
            with open(path, "ab" if resume else "wb") as sink:
                for attempt in range(1, max_attempts + 1):
                    try:
                        return self._download_once(http, url, sink)
                    except (httpx.TransportError, _Retryable) as exc:
                        written = sink.tell()
                        reason = getattr(exc, "reason", type(exc).__name__)
                        if attempt == max_attempts:
                            raise UnreachableError(
                                f"the export download kept failing ({reason}) after "
                                f"{max_attempts} attempts") from None
                        log.info("export download interrupted at %d bytes (%s); resuming",
                                 written, reason)
                        time.sleep(self._backoff_seconds(attempt))
        finally:
            if http is not self._http:
                http.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _download_once(self, http: httpx.Client, url: str, sink: Any) -> int:
        """One attempt, resuming at the sink's position; returns the file's size."""
        offset = sink.tell()
        TALLY.request()
        headers = {"range": f"bytes={offset}-"} if offset else {}
        with http.stream("GET", url, headers=headers) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retryable(f"status {response.status_code}")
            if offset and response.status_code == 416:  # nothing after `offset`
                if _range_total(response.headers.get("content-range")) == offset:
                    return offset  # an earlier run had downloaded it all
                sink.seek(0)
                sink.truncate()
                raise _Retryable("the bytes kept do not fit the file; downloading it again")
            if response.status_code >= 400:
                raise ApiError(response.status_code, "GET", "export download",
                               f"the download URL answered {response.status_code}")
            if offset and response.status_code != 206:
                sink.seek(0)
                sink.truncate()
                offset = 0
            expected = response.headers.get("content-length")
            progress = Progress("export download", offset + int(expected) if expected else None,
                                megabytes)
            for chunk in response.iter_raw():  # as received: a broken transfer keeps its bytes
                sink.write(chunk)
                progress.at(sink.tell())
            progress.finish()
            if expected is not None and sink.tell() - offset < int(expected):
                raise _Retryable("connection closed before the end of the file")
            return sink.tell()

    def _backoff_seconds(self, attempt: int) -> float:
        return min(self._backoff_max, self._backoff_initial * 2 ** (attempt - 1))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.delay is not None:
            return 0.0  # the gate already holds this endpoint group for `delay`
        return self._backoff(state)

    def _stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        rate_limited = getattr(state, "close_rate_limited", 0)
        if isinstance(exc, _Retryable) and exc.connecting:
            return state.attempt_number >= min(FIRST_CONNECT_ATTEMPTS, self.max_attempts)
        if isinstance(exc, _Retryable) and exc.delay is not None:
            rate_limited += 1
            state.close_rate_limited = rate_limited  # type: ignore[attr-defined]
            return rate_limited >= self.max_rate_limited
        return state.attempt_number - rate_limited >= self.max_attempts

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        with self._stats_lock:
            self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, _Retryable) else repr(exc)
        wait = exc.delay if isinstance(exc, _Retryable) and exc.delay else state.upcoming_sleep
        log.info("retrying %s %s in %.2fs: %s", method, path, wait or 0.0, reason)


def _range_total(content_range: str | None) -> int | None:
    """The file's size in a `Content-Range: bytes */<size>` answer."""
    total = (content_range or "").rpartition("/")[2]
    return int(total) if total.isdigit() else None
