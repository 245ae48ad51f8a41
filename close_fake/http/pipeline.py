"""What happens to one API request, in order: faults, auth, forbidden prefixes, routing
(404/405), the rate limiter (429), the handler; its reply, headers and the request log.

Every API reply carries the `x-rate-limit-*` and `ratelimit` headers (Close API: Rate
Limits); authentication is HTTP Basic with the API key as username and a blank password (Close
API: Authentication).
"""

from __future__ import annotations

import base64
import binascii
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from ..common import ApiError
from ..exports.api import Exports
from ..exports.host import FILES_PREFIX, FileAnswer
from ..org import FakeOrg
from ..params import Params
from ..request import Request
from .faults import Faults, RateLimit, RateState
from .routes import Router

API_PREFIX = "/api/v1"


@dataclass
class RequestRecord:
    """One request as the fake saw it. `status` is None when the connection was dropped."""

    method: str
    path: str  # as requested, without the query string
    endpoint: str | None  # route template, e.g. "/lead/{id}/"
    params: dict[str, str]
    status: int | None
    fault: str | None = None
    body: Any = None
    at: float = field(default_factory=time.monotonic)
    rate: RateState | None = None  # what the rate limiter counted it in, if it reached it


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None  # "drop" / "partial": how to (not) send it
    file: FileAnswer | None = None  # a download-host answer instead of a JSON body


class RequestPipeline:
    """The request-answering half of `FakeClose`: `process` computes the reply of one
    request and records it; the server (`wire.py`) only moves bytes."""

    org: FakeOrg
    api_key: str
    host: str
    faults: Faults | None
    rate_limit: RateLimit
    forbidden: tuple[str, ...]
    record_requests: bool
    user_id: str
    clock: Callable[[], datetime]
    date_skew: timedelta
    latency: float  # seconds of round trip; the wire (`wire.py`) waits it out
    exports: Exports
    router: Router
    on_request: Callable[[RequestRecord], None] | None
    _log: list[RequestRecord]
    _log_lock: threading.Lock

    # -- request log ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log."""
        with self._log_lock:
            return list(self._log)

    def reset_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _record(self, rec: RequestRecord) -> None:
        if self.record_requests:
            with self._log_lock:
                self._log.append(rec)

    # -- request processing ------------------------------------------------------------------------

    def process(self, method: str, target: str, headers: Any, raw_body: bytes) -> _Reply:
        """Compute the reply for one request (also records it in the log)."""
        split = urlsplit(target)
        raw_path = split.path
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        body: Any = None
        if raw_body:
            try:
                body = orjson.loads(raw_body)
            except orjson.JSONDecodeError:
                body = _INVALID
        override = headers.get("x-http-method-override")
        if method == "POST" and override:
            # Documented way to send long filters: POST + override + `_params` (Close API:
            # Filter Parameters).
            method = override.upper()
            if isinstance(body, dict) and isinstance(body.get("_params"), dict):
                for k, val in body["_params"].items():
                    params[k] = ",".join(map(str, val)) if isinstance(val, list) else str(val)
        record = RequestRecord(
            method, raw_path, None, params, None, body=None if body is _INVALID else body
        )
        if self.on_request is not None:
            self.on_request(record)
        try:
            if raw_path.startswith(FILES_PREFIX):
                record.endpoint = FILES_PREFIX + "{file}"
                answer = self.exports.download(method, raw_path, params, headers, self.host)
                reply = _Reply(answer.status, None, fault=answer.fault, file=answer)
            else:
                reply = self._process(method, raw_path, params, headers, body, record)
        except Exception:  # pragma: no cover - a bug in the fake; answer 500, keep serving
            traceback.print_exc(file=sys.stderr)
            reply = _Reply(500, {"error": "Internal error in the fake Close API."})
        record.status = None if reply.fault == "drop" else reply.status
        record.fault = record.fault or reply.fault
        self._record(record)
        return reply

    def _process(
        self,
        method: str,
        raw_path: str,
        params: dict[str, str],
        headers: Any,
        body: Any,
        record: RequestRecord,
    ) -> _Reply:
        if not (raw_path == API_PREFIX or raw_path.startswith(API_PREFIX + "/")):
            return self._with_rate(_Reply(404, {"error": "Not found."}), None)
        path = raw_path[len(API_PREFIX) :] or "/"
        if not path.endswith("/"):
            path += "/"

        route, match, known = self.router.resolve(method, path)
        if route is not None:
            record.endpoint = route.template  # also on faulted requests, for per-endpoint logs
        if self.faults is not None:
            fault = self.faults.pick(path)
            if fault is not None:
                record.fault = fault
                if fault == "slow":
                    time.sleep(self.faults.slow_seconds)
                else:
                    return self._fault_reply(fault)

        if not self._authorised(headers.get("authorization")):
            return self._with_rate(
                _Reply(401, {"error": "Unauthorized: invalid or missing API key."}), None
            )
        if any(path.startswith(p) for p in self.forbidden):
            return self._with_rate(
                _Reply(403, {"error": "This API key is not allowed to access this resource."}), None
            )
        if route is None:
            if known:
                return self._with_rate(
                    _Reply(405, {"error": f"Method {method} not allowed."}), None
                )
            return self._with_rate(_Reply(404, {"error": "Not found."}), None)
        rate = record.rate = self.rate_limit.hit(f"{method} {route.template}")
        if rate.exceeded:
            reply = _Reply(429, {"error": {
                "message": "API call count exceeded for this period",
                "rate_reset": round(rate.reset, 6),
                "rate_limit": rate.limit,
                "rate_window": _number(rate.window),
                "rate_limit_type": "key",
                "rate_endpoint_group": rate.group_id,
            }})  # fmt: skip
            reply.headers["retry-after"] = str(max(1, math.ceil(rate.reset)))
            return self._with_rate(reply, rate)
        if body is _INVALID:
            return self._with_rate(_Reply(400, {"error": "Invalid JSON body."}), rate)
        req = Request(
            method=method,
            path=path,
            params=Params(params),
            body=body,
            user_id=self.user_id,
            match=match,
        )
        try:
            with self.org.lock:
                result = route.handler(req)  # type: ignore[misc]
            reply = _Reply(200, result)
        except ApiError as err:
            reply = _Reply(err.status, {"error": err.message})
        return self._with_rate(reply, rate)

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, _, _password = decoded.partition(":")
        return username == self.api_key

    def _fault_reply(self, fault: str) -> _Reply:
        assert self.faults is not None
        if fault == "429":
            reset = self.faults.rate_reset
            reply = _Reply(429, {"error": {
                "message": "API call count exceeded for this period",
                "rate_reset": reset,
                "rate_limit": self.rate_limit.requests,
                "rate_window": _number(self.rate_limit.window),
                "rate_limit_type": "key",
                "rate_endpoint_group": RateLimit.group_id("injected"),
            }})  # fmt: skip
            reply.headers.update(_rate_headers(self.rate_limit.requests, 0, reset))
            reply.headers["retry-after"] = str(max(1, math.ceil(reset)))
            return reply
        if fault in ("500", "502", "503"):
            reply = _Reply(int(fault), {"error": f"Injected server error {fault}."})
            return self._with_rate(reply, None)
        reply = self._with_rate(
            _Reply(200, {"data": [], "has_more": False, "error": "injected partial response"}), None
        )
        reply.fault = fault  # "drop" or "partial"
        return reply

    def _with_rate(self, reply: _Reply, rate: RateState | None) -> _Reply:
        if rate is None:
            limit = self.rate_limit
            headers = _rate_headers(limit.requests, limit.requests, limit.window)
        else:
            headers = _rate_headers(rate.limit, rate.remaining, rate.reset)
        for k, val in headers.items():
            reply.headers.setdefault(k, val)
        return reply


def _decimal(seconds: float) -> str:
    """Seconds as a decimal string, e.g. "0.870663", "1.0" (docs: "as a decimal")."""
    text = f"{seconds:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _number(value: float) -> int | float:
    """1.0 -> 1 (the docs' sample shows `"rate_window": 1`)."""
    return int(value) if float(value).is_integer() else value


def _rate_headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
    reset_s = _decimal(reset)
    return {
        "x-rate-limit-limit": str(limit),
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": reset_s,
        "ratelimit": f"limit={limit}, remaining={remaining}, reset={reset_s}",
    }


class _Invalid:
    """Marker for a request body that is not valid JSON."""


_INVALID = _Invalid()
