"""`FakeClose`: the fake Close API as a real HTTP/1.1 server on loopback.

One `ThreadingHTTPServer` in a daemon thread; keep-alive works because every response
carries a Content-Length and is written in one piece (with TCP_NODELAY, so small responses
do not wait on delayed ACKs). Per request, in order: fault injection, authentication
(HTTP Basic, API key as username, blank password [003:2-6]), forbidden prefixes, routing
(404/405), the rate limiter (429), the handler. Every API response carries the
`x-rate-limit-*` and `ratelimit` headers [003:153-157]; every response a `Date` from the
fake's clock (`clock`, by default the organisation's clock `org.clock()`, ticking; tests
move it with `org.advance(...)`).

Export files are served by the same server under another host name (`exports`):
`/export-files/...` is outside `/api/v1`, needs no auth, gets no faults and no rate-limit
headers, and is streamed from disk in chunks (Range requests answer 206).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http
import math
import random
import socket
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from . import org as o
from .common import SHORT_ID, ApiError, http_date, make_id
from .events import EventSettings
from .exports.api import Exports
from .exports.host import FILES_PREFIX, FileAnswer
from .exports.settings import ExportSettings
from .faults import Faults, RateLimit, RateState, normalise_prefix
from .org import FakeOrg
from .params import Params
from .request import Request
from .routes import Router
from .search.engine import SearchEngine

DEFAULT_API_KEY = "fake_api_key_9f8e7d6c5b4a"
API_PREFIX = "/api/v1"
_CHUNK = 64 * 1024


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


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None  # "drop" / "partial": how to (not) send it
    file: FileAnswer | None = None  # a download-host answer instead of a JSON body


class FakeClose:
    """A seeded fake Close API server. Use as a context manager or call start()/stop().

    `admin=False` makes the API key belong to a non-admin user. `forbidden` holds path
    prefixes (e.g. "/webhook/") that answer 403 for this key. `page_caps` overrides the
    maximum `_limit` of list endpoints (`{"/lead/": 50}`). `export` configures the Export
    API (progress, file shape, failures, download host); `clock` gives the time of `Date`
    headers, export timestamps, the `date_updated` of custom field writes and the Event
    Log's notion of now; by default the organisation's clock, which `tick=True` makes
    follow the wall clock from here on (`tick=False` keeps it frozen: deterministic).
    `async_conversions=True`: a `PUT /custom_field/...` that changes a field's type answers
    with `converting_to_type` and leaves the values until `mutations.finish_conversion`.
    `events` shapes `GET /event/` answers (see `events.EventSettings`). `id_filters`:
    "documented" (only `/task/` takes `id__in`, as documented; other lists ignore it) or
    "all" (every list endpoint does). `on_request(record)` is called as each request
    arrives, before it is answered (tests use it to act at an exact point of a run).
    `date_skew` moves the `Date` headers away from every other time the fake shows (events,
    objects, exports), as when Close's web front ends and its database disagree on the time.

    `undocumented_filters`: "honor" (default) or "ignore": every paged list endpoint drops
    the query parameters the docs do not list for it (`routes.DOCUMENTED_PARAMS`), as a real
    server ignores unknown parameters. The ones the fake otherwise honours: `lead_id` on
    `/contact/` (no filter documented [003:663], only the live docs add it);
    `date_created__gte` / `__lte` on `/activity/` and the per-type activity endpoints (only
    `__gt` / `__lt` [003:1003, 1203-1904]); `is_archived` on `/sms_template/` (TOC-only: then
    every template is listed, archived or not, with or without the parameter);
    `pipeline_id` on `/status/opportunity/` (none documented [003:4808]); the `__in` forms
    the docs do not name, e.g. `lead_id__in` on `/activity/`, `/opportunity/` and `/task/`
    (only `user_id`, `status_*`, `value_period` take `__in` there [003:2949]; `/task/` lists
    `id__in` and `_type__in` [003:3239, 3300]), `user_id__in` on the per-type activity
    endpoints, `/connected_account/`, `/dialer/` and `/phone_number/`, `assigned_to__in` /
    `view__in` on `/task/`, `sequence_id__in` / `contact_id__in` on
    `/sequence_subscription/`. `id` / `id__in` follow `id_filters`; `_limit`, `_skip`,
    `_fields` always work; documented parameters the fake refuses (`query`, `_group_by`)
    still answer 400. The Event Log (`events`) and `/data/search/` are not affected.

    `page_overlap`: k > 0 makes offset paging shift like a list that gains k objects at its
    head between two pages: the n-th page (`_skip` = n * `_limit`) starts n * k objects
    earlier than asked, so the last k objects of the previous page come again; `has_more`
    stays true until the last object was sent, so none is missing. An int applies to every
    paged list endpoint, a dict to the named ones (`{"/lead/": 3}`, `"*"`: the others).
    """

    def __init__(
        self,
        org: FakeOrg,
        *,
        api_key: str = DEFAULT_API_KEY,
        admin: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        max_skip: int = 250_000,
        page_caps: dict[str, int] | None = None,
        faults: Faults | None = None,
        rate_limit: RateLimit | None = None,
        forbidden: Iterable[str] = frozenset(),
        search_cursor_ttl: float = 30.0,
        search_walk_max: int = 10_000,
        record_requests: bool = True,
        export: ExportSettings | None = None,
        clock: Callable[[], datetime] | None = None,
        async_conversions: bool = False,
        events: EventSettings | None = None,
        tick: bool = True,
        id_filters: str = "documented",
        undocumented_filters: str = "honor",
        page_overlap: int | dict[str, int] = 0,
        on_request: Callable[[RequestRecord], None] | None = None,
        date_skew: timedelta = timedelta(0),
    ) -> None:
        self.org = org
        self.api_key = api_key
        self.admin = admin
        self.host = host
        self.port = port
        self.faults = faults
        # Without an explicit limit, requests are counted but never refused, so the headers
        # are present and truthful.
        self.rate_limit = rate_limit or RateLimit(1000, 1.0, enforce=False)
        self.forbidden = tuple(normalise_prefix(p) for p in forbidden)
        self.record_requests = record_requests
        self.user_id = org.admin_user_id if admin else _non_admin_user(org)
        if clock is None and tick and not org.ticking:
            org.tick()
        self.clock = clock or org.clock
        # The id Close would log as the events' `api_key_id` (its shape is not documented).
        self.api_key_id = make_id(random.Random(api_key), "apikey", SHORT_ID)
        self.search = SearchEngine(org, cursor_ttl=search_cursor_ttl, walk_max=search_walk_max)
        self.exports = Exports(
            org, export or ExportSettings(), clock=self.clock, port=lambda: self.port
        )
        self.router = Router(
            org,
            max_skip=max_skip,
            page_caps=page_caps,
            search=self.search,
            exports=self.exports,
            clock=self.clock,
            async_conversions=async_conversions,
            events=events,
            api_key_id=self.api_key_id,
            id_filters=id_filters,
            undocumented_filters=undocumented_filters,
            page_overlap=page_overlap,
        )
        self.on_request = on_request
        self.date_skew = date_skew
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeClose:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-close:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; export writers stop and their temp files are deleted."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_all_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.exports.close()

    def __enter__(self) -> FakeClose:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """E.g. `http://127.0.0.1:54321/api/v1/`."""
        return f"http://{self.host}:{self.port}{API_PREFIX}/"

    def url(self, path: str) -> str:
        """Absolute URL of an API path such as "lead/" or "/lead/"."""
        return self.base_url + path.lstrip("/")

    @property
    def export_key_leaks(self) -> int:
        """Requests to the export file host that carried an `Authorization` header."""
        return self.exports.key_leaks

    @property
    def export_downloads(self) -> Counter[str]:
        """Outcomes of export file requests: ok, partial (206), broken, expired, ..."""
        return self.exports.downloads

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
            # Documented way to send long filters: POST + override + `_params` [003:11-22].
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
        rate = self.rate_limit.hit(f"{method} {route.template}")
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


def _non_admin_user(org: FakeOrg) -> str:
    """The first active member whose role is not the (non-editable) Admin role."""
    admin_roles = {r["id"] for r in org.all(o.ROLE) if r.get("name") == "Admin"}
    for member in org.all(o.MEMBERSHIP):
        if member["role_id"] not in admin_roles:
            return member["user_id"]
    return org.admin_user_id


class _Invalid:
    """Marker for a request body that is not valid JSON."""


_INVALID = _Invalid()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    fake: FakeClose

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def close_all_connections(self) -> None:
        """Close idle keep-alive connections so no handler thread outlives `stop()`."""
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._read_body()
        fake = self.server.fake
        reply = fake.process(self.command, self.path, self.headers, body)
        if reply.fault == "drop":
            self.close_connection = True
            return
        try:
            phrase = http.HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = ""
        date = f"date: {http_date(fake.clock() + fake.date_skew)}"
        if reply.file is not None:
            self._send_file(f"HTTP/1.1 {reply.status} {phrase}", date, reply.file)
            return
        payload = orjson.dumps(reply.body)
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            date,
            "content-type: application/json",
            f"content-length: {len(payload)}",
        ]
        lines += [f"{k}: {val}" for k, val in reply.headers.items()]
        if reply.fault == "partial" or self.close_connection:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if reply.fault == "partial":
            self.wfile.write(head + payload[: max(1, len(payload) // 2)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(head if self.command == "HEAD" else head + payload)
        self.wfile.flush()

    def _send_file(self, status_line: str, date: str, answer: FileAnswer) -> None:
        """A download-host answer: a small body, or a file range streamed in chunks; with
        `cut`, the connection closes after that many body bytes (a broken download)."""
        body = answer.body
        lines = [status_line, date]
        lines += [f"{k}: {val}" for k, val in answer.headers.items()]
        if "content-length" not in answer.headers:
            lines.append(f"content-length: {len(body)}")
        if answer.cut is not None:
            lines.append("connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if self.command == "HEAD":
            pass
        elif answer.path is None:
            self.wfile.write(body)
        else:
            left = answer.length if answer.cut is None else answer.cut
            with open(answer.path, "rb") as f:
                f.seek(answer.offset)
                while left > 0:
                    chunk = f.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        self.wfile.flush()
        if answer.cut is not None:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815
