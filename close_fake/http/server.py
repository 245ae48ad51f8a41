"""`FakeClose`: the fake Close API as a real HTTP/1.1 server on loopback.

One `ThreadingHTTPServer` in a daemon thread; keep-alive works because every response carries a
Content-Length and is written in one piece (with TCP_NODELAY, so small responses do not wait on
delayed ACKs). Per request, in order: fault injection, authentication (HTTP Basic, API key as
username, blank password: Close API: Authentication), forbidden prefixes, routing (404/405), the
rate limiter (429), the handler. Every API response carries the `x-rate-limit-*` and `ratelimit`
headers (Close API: Rate Limits); every response a `Date` from the fake's clock (`clock`, by
default the organisation's clock `org.clock()`, ticking; tests move it with `org.advance(...)`).

Export files are served by the same server under another host name (`exports`):
`/export-files/...` is outside `/api/v1`, needs no auth, gets no faults and no rate-limit
headers, and is streamed from disk in chunks (Range requests answer 206).

Parts: `pipeline.py` (the steps above, replies, the request log), `wire.py` (sockets,
keep-alive, whole-piece writes, streamed files), `routes.py` (the endpoint table).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from .. import org as o
from ..common import SHORT_ID, make_id
from ..events import EventSettings
from ..exports.api import Exports
from ..exports.settings import ExportSettings
from ..org import FakeOrg
from ..search.engine import SearchEngine
from .faults import Faults, RateLimit, normalise_prefix
from .pipeline import API_PREFIX, RequestPipeline, RequestRecord
from .routes import Router
from .wire import _Handler, _Server

DEFAULT_API_KEY = "fake_api_key_9f8e7d6c5b4a"


class FakeClose(RequestPipeline):
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
    `latency` (seconds) is the round trip of a slow link: every request, the export download
    too, is answered that much later (half on the way in, before the rate limiter counts it,
    half on the way out), and a new connection waits one more round trip (its TCP handshake;
    TLS is not simulated). Each connection has its own thread, so the delays overlap.

    `undocumented_filters`: "honor" (default) or "ignore": every paged list endpoint drops the
    query parameters the docs do not list for it (`catalog.DOCUMENTED_PARAMS`), as a real server
    ignores unknown parameters. The ones the fake otherwise honours: `lead_id` on `/contact/` (no
    filter documented in Close API: Contacts, only newer docs add it); `date_created__gte` /
    `__lte` on `/activity/` and the per-type activity endpoints (only `__gt` / `__lt`: Close API:
    Activities); `is_archived` on `/sms_template/` (TOC-only: then every template is listed,
    archived or not, with or without the parameter); `pipeline_id` on `/status/opportunity/` (none
    documented: Close API: Opportunity Statuses); the `__in` forms the docs do not name, e.g.
    `lead_id__in` on `/activity/`, `/opportunity/` and `/task/` (only `user_id`, `status_*`,
    `value_period` take `__in` there: Close API: Opportunities; `/task/` lists `id__in` and
    `_type__in`: Close API: Tasks), `user_id__in` on the per-type activity endpoints,
    `/connected_account/`, `/dialer/` and `/phone_number/`, `assigned_to__in` / `view__in` on
    `/task/`, `sequence_id__in` / `contact_id__in` on `/sequence_subscription/`. `id` / `id__in`
    follow `id_filters`; `_limit`, `_skip`, `_fields` always work; documented parameters the fake
    refuses (`query`, `_group_by`) still answer 400. The Event Log (`events`) and `/data/search/`
    are not affected.

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
        latency: float = 0.0,
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
        if latency < 0:
            raise ValueError("latency must not be negative")
        self.latency = latency
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


def _non_admin_user(org: FakeOrg) -> str:
    """The first active member whose role is not the (non-editable) Admin role."""
    admin_roles = {r["id"] for r in org.all(o.ROLE) if r.get("name") == "Admin"}
    for member in org.all(o.MEMBERSHIP):
        if member["role_id"] not in admin_roles:
            return member["user_id"]
    return org.admin_user_id
