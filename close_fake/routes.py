"""Endpoint table and handlers of the fake Close API (reads, `/data/search/`, exports, the
Event Log and the custom field writes `POST/PUT/DELETE /custom_field/{kind}/...`).

Each route is a method + path template (`/lead/{id}/`); the template doubles as the
endpoint group for rate limiting. List endpoints share one paging routine: `_skip` /
`_limit` with a per-resource maximum `_limit` (400 above it, [003:59]), a `_skip` cap
(400 mentioning `max_skip = N`), a stable newest-first order, and `_fields` projection.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import events as ev
from . import mutations as m
from . import org as o
from . import views as v
from .common import ApiError, format_money
from .exports.api import Exports
from .faults import normalise_prefix
from .org import FakeOrg
from .params import (
    RANGE_OPS,
    Params,
    Predicate,
    equals_filter,
    newest_first,
    range_filters,
    sort_by,
    task_date_key,
)
from .request import Request
from .search.engine import SearchEngine

DEFAULT_LIMIT = 100

# Maximum `_limit` per list endpoint. The docs only say it "varies per resource" [003:59];
# big CRM collections get 200, everything else 100. Overridable via `page_caps`.
DEFAULT_PAGE_CAPS: dict[str, int] = {
    "/lead/": 200,
    "/contact/": 200,
    "/opportunity/": 200,
    "/task/": 200,
    **{f"/activity/{k}/": 200 for k in (
        "note", "email", "emailthread", "call", "sms", "meeting", "status_change/lead",
        "status_change/opportunity", "task_completed", "created", "custom")},
}  # fmt: skip
OTHER_PAGE_CAP = 100

# Per-type activity endpoints: path segment -> `_type`.
ACTIVITY_ENDPOINTS: dict[str, str] = {
    "note": "Note",
    "email": "Email",
    "emailthread": "EmailThread",
    "call": "Call",
    "sms": "SMS",
    "meeting": "Meeting",
    "status_change/lead": "LeadStatusChange",
    "status_change/opportunity": "OpportunityStatusChange",
    "task_completed": "TaskCompleted",
    "created": "Created",
    "custom": "CustomActivity",
}

# Query parameters every paged list takes: paging and `_fields` [003:37-59]; `id` / `id__in`
# have their own switch (`id_filters`), so `undocumented_filters` leaves them alone.
ALWAYS_PARAMS = frozenset({"_limit", "_skip", "_fields", "id", "id__in"})
# The per-type activity endpoints' parameters [003:1203, 1232, 1260, 1512, 1657, 1715, 1777,
# 1835, 1904]: `__gt` / `__lt` only.
_ACTIVITY_TYPE_PARAMS = frozenset({"lead_id", "user_id", "date_created__gt", "date_created__lt"})


def _ranges(*names: str) -> frozenset[str]:
    return frozenset(f"{name}__{op}" for name in names for op in RANGE_OPS)


# The filters the docs list per paged list endpoint (beyond `ALWAYS_PARAMS`); endpoints not
# named here document none. `FakeClose(undocumented_filters="ignore")` drops every other
# query parameter before filtering, as a server that does not know a parameter ignores it.
DOCUMENTED_PARAMS: dict[str, frozenset[str]] = {
    "/lead/": frozenset({"query"}),  # [003:227]
    "/contact/": frozenset(),  # [003:663]: `lead_id` is only in the live docs
    "/opportunity/": frozenset({
        "lead_id", "user_id", "status_id", "status_label", "status_type", "value_period",
        "user_id__in", "status_id__in", "status_label__in", "status_type__in",
        "value_period__in", "query", "lead_query", "_order_by", "_group_by",
    }) | _ranges("date_created", "date_updated", "date_won"),  # [003:2949, 2986]
    "/task/": frozenset({
        "_type", "_type__in", "lead_id", "membership_id", "is_complete", "assigned_to", "view",
        "_order_by",
    }) | _ranges("date", "date_created"),  # [003:3236-3240, 3300]
    "/activity/": frozenset({
        "lead_id", "user_id", "user_id__in", "contact_id", "contact_id__in", "_type",
        "_type__in", "date_created__gt", "date_created__lt", "thread_emails",
    }),  # [003:990-1003]
    **{f"/activity/{segment}/": _ACTIVITY_TYPE_PARAMS for segment in ACTIVITY_ENDPOINTS},
    "/activity/status_change/opportunity/": _ACTIVITY_TYPE_PARAMS | {"opportunity_id"},  # [1865]
    "/activity/custom/": _ACTIVITY_TYPE_PARAMS
    | {"custom_activity_type_id", "custom_activity_type_id__in"},  # [003:9202]
    "/email_template/": frozenset({"is_archived"}),  # [003:6170]; SMS templates: TOC-only
    "/connected_account/": frozenset({"user_id"}),  # [003:6321]
    "/sequence_subscription/": frozenset({"sequence_id", "contact_id", "lead_id"}),  # [003:6772]
    "/dialer/": frozenset({"status", "status__in", "saved_search_id", "user_id"}),  # [003:6887]
    "/phone_number/": frozenset({"number", "user_id", "is_group_number"}),  # [003:7901]
}


@dataclass
class Route:
    method: str
    template: str
    handler: Callable[[Request], Any] | None
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        self.regex = re.compile(f"^{pattern}$")


class Router:
    """Holds the organisation and the listing configuration; dispatches requests."""

    def __init__(
        self,
        org: FakeOrg,
        *,
        max_skip: int,
        page_caps: dict[str, int] | None,
        search: SearchEngine,
        exports: Exports | None = None,
        clock: Callable[[], datetime] | None = None,
        async_conversions: bool = False,
        events: ev.EventSettings | None = None,
        api_key_id: str | None = None,
        id_filters: str = "documented",
        undocumented_filters: str = "honor",
        page_overlap: int | dict[str, int] = 0,
    ) -> None:
        if id_filters not in ("documented", "all"):
            raise ValueError("id_filters must be 'documented' or 'all'.")
        if undocumented_filters not in ("honor", "ignore"):
            raise ValueError("undocumented_filters must be 'honor' or 'ignore'.")
        self.id_filters = id_filters
        self.undocumented_filters = undocumented_filters
        overlaps = page_overlap if isinstance(page_overlap, dict) else {"*": page_overlap}
        if any(k < 0 for k in overlaps.values()):
            raise ValueError("page_overlap must not be negative.")
        self.page_overlap = {
            (path if path == "*" else _norm_template(path)): k for path, k in overlaps.items()
        }
        self.org = org
        self.exports = exports
        self.clock = clock
        self.async_conversions = async_conversions
        self.api_key_id = api_key_id
        self.events = ev.EventReader(org, events or ev.EventSettings(), clock or org.clock)
        self.max_skip = max_skip
        self.page_caps = dict(DEFAULT_PAGE_CAPS)
        for path, cap in (page_caps or {}).items():
            self.page_caps[_norm_template(path)] = cap
        self.search = search
        self._filtered: OrderedDict[Any, list[dict]] = OrderedDict()
        self.routes: list[Route] = []
        self._build()

    # -- routing ------------------------------------------------------------------------------

    def resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, path_known). path_known with route None means 405."""
        known = False
        for route in self.routes:
            m = route.regex.match(path)
            if not m:
                continue
            known = True
            if route.method == method and route.handler is not None:
                return route, m.groupdict(), True
        return None, {}, known

    def _get(self, template: str, handler: Callable[[Request], Any]) -> None:
        self.routes.append(Route("GET", template, handler))

    def _build(self) -> None:
        org = self.org
        g = self._get
        g("/me/", lambda r: v.render_me(org, r.user_id, self.fields(r)))
        g("/organization/{id}/", self.organization)
        g(
            "/user/",
            self.list_handler(
                "/user/",
                lambda r: [
                    u for u in org.all(o.USER) if org.children(o.MEMBERSHIP, "user_id", u["id"])
                ],
                render=lambda u, f: v.render_user(u, f),
            ),
        )
        g("/user/{id}/", self.single(o.USER, lambda u, f, r: v.render_user(u, f)))
        g("/role/", self.list_handler("/role/", lambda r: org.all(o.ROLE)))
        g("/role/{id}/", self.single(o.ROLE))
        g(
            "/group/",
            self.unpaged(
                lambda r: [
                    v.render_group(gr, self.fields(r), single=False) for gr in org.all(o.GROUP)
                ]
            ),
        )
        g("/group/{id}/", self.single(o.GROUP, lambda gr, f, r: v.render_group(gr, f, single=True)))

        g(
            "/lead/",
            self.list_handler(
                "/lead/",
                self.lead_items,
                total_results=True,
                render=lambda x, f: v.render_lead(org, x, f),
            ),
        )
        g("/lead/{id}/", self.single(o.LEAD, lambda x, f, r: v.render_lead(org, x, f)))
        g(
            "/contact/",
            self.list_handler(
                "/contact/",
                self.contact_items,
                render=lambda x, f: v.render_contact(org, x, f, with_lead_id=False),
            ),
        )
        g("/contact/{id}/", self.single(o.CONTACT, lambda x, f, r: v.render_contact(org, x, f)))
        g(
            "/opportunity/",
            self.list_handler(
                "/opportunity/",
                self.opportunity_items,
                total_results=True,
                extras=opportunity_aggregates,
            ),
        )
        g("/opportunity/{id}/", self.single(o.OPPORTUNITY))
        g("/task/", self.list_handler("/task/", self.task_items))
        g("/task/{id}/", self.single(o.TASK))

        g(
            "/activity/",
            self.list_handler(
                "/activity/",
                self.generic_activity_items,
                render=lambda x, f: v.render_activity(org, x, f),
            ),
        )
        for segment, type_ in ACTIVITY_ENDPOINTS.items():
            g(
                f"/activity/{segment}/",
                self.list_handler(
                    f"/activity/{segment}/",
                    self.activity_items(type_),
                    render=lambda x, f: v.render_activity(org, x, f),
                ),
            )
            g(f"/activity/{segment}/{{id}}/", self.single_activity(type_))

        g("/status/lead/", self.list_handler("/status/lead/", lambda r: org.all(o.LEAD_STATUS)))
        g(
            "/status/opportunity/",
            self.list_handler(
                "/status/opportunity/",
                lambda r: self.filtered(
                    org.all(o.OPPORTUNITY_STATUS), equals_filter(r.params, "pipeline_id")
                ),
            ),
        )
        g(
            "/pipeline/",
            self.unpaged(
                lambda r: [v.render_pipeline(org, p, self.fields(r)) for p in org.all(o.PIPELINE)]
            ),
        )
        for kind in ("lead", "contact", "opportunity", "activity", "shared"):
            coll = f"custom_field.{kind}"
            g(
                f"/custom_field/{kind}/",
                self.list_handler(f"/custom_field/{kind}/", self.custom_field_items(coll)),
            )
            g(f"/custom_field/{kind}/{{id}}/", self.single(coll))
            self.routes.append(Route("POST", f"/custom_field/{kind}/", self.create_field(kind)))
            for method, handler in (("PUT", self.update_field), ("DELETE", self.delete_field)):
                self.routes.append(Route(method, f"/custom_field/{kind}/{{id}}/", handler(kind)))
        for kind in ("lead", "contact", "opportunity"):
            g(f"/custom_field_schema/{kind}/", lambda r, kind=kind: v.render_schema(org, kind))
        g(
            "/custom_activity/",
            self.unpaged(
                lambda r: [
                    v.render_custom_activity_type(org, t, self.fields(r))
                    for t in org.all(o.CUSTOM_ACTIVITY_TYPE)
                ]
            ),
        )
        g(
            "/custom_activity/{id}/",
            self.single(
                o.CUSTOM_ACTIVITY_TYPE, lambda t, f, r: v.render_custom_activity_type(org, t, f)
            ),
        )

        g(
            "/email_template/",
            self.list_handler(
                "/email_template/", self.archivable(o.EMAIL_TEMPLATE, "/email_template/")
            ),
        )
        g(
            "/email_template/{id}/",
            self.single(
                o.EMAIL_TEMPLATE, lambda t, f, r: v.render_email_template(org, t, f, single=True)
            ),
        )
        g(
            "/sms_template/",
            self.list_handler("/sms_template/", self.archivable(o.SMS_TEMPLATE, "/sms_template/")),
        )
        g("/sms_template/{id}/", self.single(o.SMS_TEMPLATE))
        g("/sequence/", self.list_handler("/sequence/", lambda r: org.all(o.SEQUENCE)))
        g(
            "/sequence/{id}/",
            self.single(o.SEQUENCE, lambda s, f, r: v.render_sequence(org, s, f, single=True)),
        )
        g(
            "/sequence_schedule/",
            self.list_handler("/sequence_schedule/", lambda r: org.all(o.SEQUENCE_SCHEDULE)),
        )
        g("/sequence_schedule/{id}/", self.single(o.SEQUENCE_SCHEDULE))
        g(
            "/sequence_subscription/",
            self.list_handler("/sequence_subscription/", self.subscription_items),
        )
        g("/sequence_subscription/{id}/", self.single(o.SEQUENCE_SUBSCRIPTION))
        g("/saved_search/", self.list_handler("/saved_search/", lambda r: org.all(o.SAVED_SEARCH)))
        g("/saved_search/{id}/", self.single(o.SAVED_SEARCH))
        g(
            "/connected_account/",
            self.list_handler(
                "/connected_account/",
                lambda r: self.filtered(
                    org.all(o.CONNECTED_ACCOUNT), equals_filter(r.params, "user_id")
                ),
            ),
        )
        g("/connected_account/{id}/", self.single(o.CONNECTED_ACCOUNT))
        g("/send_as/", self.unpaged(self.send_as_items))
        g("/send_as/{id}/", self.single(o.SEND_AS))
        g("/phone_number/", self.list_handler("/phone_number/", self.phone_items))
        g("/phone_number/{id}/", self.single(o.PHONE_NUMBER))
        g(
            "/integration_link/",
            self.list_handler("/integration_link/", lambda r: org.all(o.INTEGRATION_LINK)),
        )
        g("/integration_link/{id}/", self.single(o.INTEGRATION_LINK))
        g(
            "/dialer/",
            self.list_handler(
                "/dialer/",
                lambda r: self.filtered(
                    org.all(o.DIALER),
                    equals_filter(r.params, "status")
                    + equals_filter(r.params, "saved_search_id")
                    + equals_filter(r.params, "user_id"),
                ),
            ),
        )
        g("/dialer/{id}/", self.single(o.DIALER))
        g("/webhook/", self.list_handler("/webhook/", lambda r: org.all(o.WEBHOOK)))
        g("/webhook/{id}/", self.single(o.WEBHOOK))

        g("/event/", lambda r: self.events.list(r.params, is_admin(org, r.user_id)))
        g("/event/{id}/", lambda r: self.events.get(r.match["id"], is_admin(org, r.user_id)))

        self.routes.append(Route("POST", "/data/search/", lambda r: self.search.handle(r)))
        if self.exports is not None:
            exports = self.exports
            self.routes.append(Route("POST", "/export/lead/", exports.create))
            self.routes.append(Route("POST", "/export/opportunity/", _no_opportunity_export))
            g("/export/", exports.list)
            g("/export/{id}/", exports.get)
        # Documented paths we do not serve for reading: known, so other methods get 405.
        for template in (
            "/pipeline/{id}/",
            "/status/lead/{id}/",
            "/status/opportunity/{id}/",
            "/membership/",
            "/membership/{id}/",
            "/lead/merge/",
        ):
            self.routes.append(Route("PUT", template, None))

    # -- generic building blocks --------------------------------------------------------------

    @staticmethod
    def fields(req: Request) -> v.Fields:
        return v.parse_fields(req.params.get("_fields"))

    def cap(self, template: str) -> int:
        return self.page_caps.get(template, OTHER_PAGE_CAP)

    def filtered(self, items: list[dict], preds: list[Predicate]) -> list[dict]:
        if not preds:
            return items
        return [x for x in items if all(p(x) for p in preds)]

    def cached(self, key: Any, build: Callable[[], list[dict]]) -> list[dict]:
        """Filtered listings are reused across the pages of one scan (small LRU)."""
        key = (self.org.version, key)
        hit = self._filtered.get(key)
        if hit is not None:
            self._filtered.move_to_end(key)
            return hit
        result = build()
        self._filtered[key] = result
        while len(self._filtered) > 64:
            self._filtered.popitem(last=False)
        return result

    def list_handler(
        self,
        template: str,
        items: Callable[[Request], list[dict]],
        *,
        render: Callable[[dict, v.Fields], dict] | None = None,
        total_results: bool = False,
        extras: Callable[[list[dict]], dict] | None = None,
    ) -> Callable[[Request], dict]:
        """A paged list endpoint: `{"data": [...], "has_more": ...}` (+ extras)."""

        def handle(req: Request) -> dict[str, Any]:
            cap = self.cap(template)
            limit = req.params.int("_limit", min(DEFAULT_LIMIT, cap))
            skip = req.params.int("_skip", 0)
            if limit < 0 or skip < 0:
                raise ApiError(400, "_limit and _skip must not be negative.")
            if limit > cap:
                raise ApiError(
                    400, f"Invalid _limit {limit}: the maximum _limit for {template} is {cap}."
                )
            if skip > self.max_skip:
                raise ApiError(
                    400,
                    f"Invalid _skip {skip}: paginating this deep is not "
                    f"supported (max_skip = {self.max_skip}). Narrow the "
                    f"query, e.g. with date filters, or use the Export API.",
                )
            req = self.documented_only(template, req)
            key = (
                template,
                tuple(
                    sorted(
                        (k, val)
                        for k, val in req.params.raw.items()
                        if k not in ("_limit", "_skip", "_fields")
                    )
                ),
            )
            found = self.cached(key, lambda: self.by_ids(template, req, items(req)))
            start = self.page_start(template, skip, limit)
            page = found[start : start + limit]
            fields = self.fields(req)
            out: dict[str, Any] = {}
            if total_results:
                out["total_results"] = len(found)
            if extras is not None:
                out.update(extras(found))
            out["has_more"] = start + len(page) < len(found)
            out["data"] = [render(x, fields) if render else v.project(x, fields) for x in page]
            return out

        return handle

    def documented_only(self, template: str, req: Request) -> Request:
        """With `undocumented_filters="ignore"`, the request without the query parameters
        the docs do not list for this endpoint (`DOCUMENTED_PARAMS`), as a server that does
        not know them ignores them. Among those the fake otherwise honours: `lead_id` on
        `/contact/` (none documented [003:663]), `date_created__gte` / `__lte` on the activity
        endpoints (only `__gt` / `__lt` [003:1003, 1203-1904]), `is_archived` on
        `/sms_template/` (TOC-only), `pipeline_id` on `/status/opportunity/` (none [003:4808]),
        `__in` forms the docs do not name (`lead_id__in` on `/activity/`, the per-type activity
        endpoints, `/opportunity/` and `/task/` [003:2949, 3300]; `user_id__in` on the per-type
        activity endpoints, `/connected_account/`, `/dialer/`, `/phone_number/`;
        `opportunity_id__in`, `assigned_to__in`, `view__in`, `saved_search_id__in`,
        `number__in`, `sequence_id__in`, `contact_id__in` on `/sequence_subscription/`)."""
        if self.undocumented_filters == "honor":
            return req
        allowed = ALWAYS_PARAMS | DOCUMENTED_PARAMS.get(template, frozenset())
        raw = {k: val for k, val in req.params.raw.items() if k in allowed}
        if len(raw) == len(req.params.raw):
            return req
        return dataclasses.replace(req, params=Params(raw))

    def page_start(self, template: str, skip: int, limit: int) -> int:
        """Where a page starts. With `page_overlap=k`, the n-th page (`_skip` = n * `_limit`)
        starts n * k objects earlier than asked, as offset paging does while k objects are
        inserted at the head of the list between two pages: the last k objects of the
        previous page come again, none is skipped (k is capped at `_limit` - 1 so paging
        moves on); `has_more` counts from the real start."""
        k = self.page_overlap.get(template, self.page_overlap.get("*", 0))
        if not k or skip <= 0 or limit <= 1:
            return skip
        pages_before = -(-skip // limit)
        return max(0, skip - min(k, limit - 1) * pages_before)

    def by_ids(self, template: str, req: Request, items: list[dict]) -> list[dict]:
        """`id` / `id__in` on every list endpoint with `id_filters="all"` (the docs' general
        note on "filtering by a long list of IDs" [003:12]); otherwise only `/task/`, the one
        list that documents them [003:3300], takes them, and other lists ignore them as any
        unknown parameter."""
        if self.id_filters != "all" or template == "/task/":
            return items
        wanted = req.params.values("id")
        if wanted is None:
            return items
        allowed = set(wanted)
        return [x for x in items if x.get("id") in allowed]

    def unpaged(self, items: Callable[[Request], list[dict]]) -> Callable[[Request], dict]:
        """Lists whose doc samples show no `has_more` (pipelines, groups, custom activity
        types, send-as): everything in one `{"data": [...]}`; `_skip`/`_limit` ignored."""
        return lambda req: {"data": items(req)}

    def single(
        self, collection: str, render: Callable[[dict, v.Fields, Request], dict] | None = None
    ) -> Callable[[Request], dict]:
        def handle(req: Request) -> dict[str, Any]:
            obj = self.org.get(collection, req.match["id"])
            if obj is None:
                raise ApiError(404, f"Object {req.match['id']} not found.")
            fields = self.fields(req)
            return render(obj, fields, req) if render else v.project(obj, fields)

        return handle

    def single_activity(self, type_: str) -> Callable[[Request], dict]:
        def handle(req: Request) -> dict[str, Any]:
            act = self.org.get(o.ACTIVITY, req.match["id"])
            if act is None or act["_type"] != type_:
                raise ApiError(404, f"{type_} activity {req.match['id']} not found.")
            return v.render_activity(self.org, act, self.fields(req))

        return handle

    def newest(self, collection: str, items: Callable[[], list[dict]] | None = None) -> list:
        """Memoised newest-first listing of a collection (or of `items()`)."""
        return self.org.memo(
            ("newest", collection),
            lambda: newest_first(items() if items else self.org.all(collection)),
        )

    # -- endpoint-specific item builders -------------------------------------------------------

    def organization(self, req: Request) -> dict[str, Any]:
        if req.match["id"] != self.org.organization_id:
            raise ApiError(404, f"Organization {req.match['id']} not found.")
        expand = frozenset(x.strip() for x in (req.params.get("_expand") or "").split(","))
        return v.render_organization(self.org, expand, self.fields(req))

    def lead_items(self, req: Request) -> list[dict]:
        if req.params.has("query"):
            raise ApiError(
                400,
                "The fake Close API does not implement the search `query` "
                "parameter (deprecated); use POST /data/search/.",
            )
        return self.newest(o.LEAD)

    def contact_items(self, req: Request) -> list[dict]:
        # No filters are documented [003:663]; `lead_id` is accepted as the live docs add it
        # (unless `undocumented_filters="ignore"` dropped it).
        return self.filtered(self.newest(o.CONTACT), equals_filter(req.params, "lead_id"))

    def opportunity_items(self, req: Request) -> list[dict]:
        p = req.params
        for unsupported in ("query", "lead_query", "_group_by"):
            if p.has(unsupported):
                raise ApiError(400, f"The fake Close API does not implement `{unsupported}`.")
        preds = (
            range_filters(p, "date_created")
            + range_filters(p, "date_updated")
            + range_filters(p, "date_won")
        )
        for name in (
            "lead_id",
            "user_id",
            "status_id",
            "status_label",
            "status_type",
            "value_period",
        ):
            preds += equals_filter(p, name)
        items = self.filtered(self.newest(o.OPPORTUNITY), preds)
        order = p.get("_order_by")
        if order:
            desc = order.startswith("-")
            name = order.lstrip("-")
            allowed = (
                "date_won",
                "date_updated",
                "date_created",
                "confidence",
                "user_name",
                "value",
                "annualized_value",
                "annualized_expected_value",
            )
            if name not in allowed:
                raise ApiError(400, f"Invalid _order_by {order!r}; allowed: {', '.join(allowed)}.")
            items = sort_by(items, name, desc)
        return items

    def task_items(self, req: Request) -> list[dict]:
        p = req.params
        # Without `_type`, only tasks of type `lead` are listed; `_type=all` lists all
        # [003:3236-3238].
        type_ = p.get("_type")
        types_in = p.get("_type__in")
        if types_in:
            allowed = {t.strip() for t in types_in.split(",") if t.strip()}
            unknown = allowed - set(o.TASK_TYPES)
            if unknown:
                raise ApiError(400, f"Unknown task _type__in values: {sorted(unknown)}.")
            preds: list[Predicate] = [lambda t: t["_type"] in allowed]
        elif type_ == "all":
            preds = []
        else:
            wanted = type_ or "lead"
            if wanted not in o.TASK_TYPES:
                raise ApiError(400, f"Unknown task _type {wanted!r}.")
            preds = [lambda t: t["_type"] == wanted]
        preds += range_filters(p, "date") + range_filters(p, "date_created")
        preds += equals_filter(p, "id") + equals_filter(p, "lead_id")
        preds += equals_filter(p, "assigned_to") + equals_filter(p, "view")
        complete = p.bool("is_complete")
        if complete is not None:
            preds.append(lambda t: t["is_complete"] is complete)
        membership = p.get("membership_id")
        if membership is not None:
            m = self.org.get(o.MEMBERSHIP, membership) or self.org.get(
                o.INACTIVE_MEMBERSHIP, membership
            )
            user = m["user_id"] if m else None
            preds.append(lambda t: t["assigned_to"] == user)
        items = self.filtered(self.newest(o.TASK), preds)
        order = p.get("_order_by")
        if order:
            desc, name = order.startswith("-"), order.lstrip("-")
            if name not in ("date", "date_created"):
                raise ApiError(400, f"Invalid _order_by {order!r}; allowed: date, date_created.")
            items = sort_by(items, name, desc, key=task_date_key if name == "date" else None)
        return items

    def activity_date_filters(self, p: Params) -> list[Predicate]:
        # Documented: date_created__gt / __lt [003:1003]; __gte / __lte also accepted (unless
        # `undocumented_filters="ignore"` dropped them).
        return range_filters(p, "date_created")

    def activity_items(self, type_: str) -> Callable[[Request], list[dict]]:
        def items(req: Request) -> list[dict]:
            p = req.params
            preds = self.activity_date_filters(p)
            preds += equals_filter(p, "lead_id") + equals_filter(p, "user_id")
            if type_ == "OpportunityStatusChange":
                preds += equals_filter(p, "opportunity_id")
            if type_ == "CustomActivity":
                preds += equals_filter(p, "custom_activity_type_id")
            base = self.org.memo(
                ("newest-activity", type_), lambda: newest_first(self.org.activities(type_))
            )
            return self.filtered(base, preds)

        return items

    def generic_activity_items(self, req: Request) -> list[dict]:
        """`GET /activity/`: `user_id`, `contact_id`, `_type` filters only work together with
        `lead_id` [003:982-989]; `thread_emails` picks Email vs EmailThread [003:990-1002]."""
        p = req.params
        lead_only = ("user_id", "user_id__in", "contact_id", "contact_id__in", "_type", "_type__in")
        if not p.has("lead_id"):
            used = [name for name in lead_only if p.has(name)]
            if used:
                raise ApiError(400, f"{', '.join(used)} can only be used together with lead_id.")
        mode = (p.get("thread_emails") or "").lower()
        if mode not in ("", "true", "only"):
            raise ApiError(400, "thread_emails must be 'true' or 'only'.")
        if mode == "only":
            allowed = {t for t in o.ACTIVITY_TYPES if t != "Email"}
        elif mode == "true":
            allowed = set(o.ACTIVITY_TYPES)
        else:
            allowed = {t for t in o.ACTIVITY_TYPES if t != "EmailThread"}
        types = p.values("_type")
        type_preds: list[Predicate] = []
        if types is not None:
            wanted_types = {("CustomActivity" if t == "Custom" else t) for t in types}
            type_preds.append(
                lambda a: (
                    a["_type"] in wanted_types or a.get("custom_activity_type_id") in wanted_types
                )
            )
        preds = self.activity_date_filters(p) + equals_filter(p, "lead_id") + type_preds
        preds += equals_filter(p, "user_id") + equals_filter(p, "contact_id")
        base = self.org.memo(
            ("newest-activity", "*"), lambda: newest_first(self.org.all(o.ACTIVITY))
        )
        items = self.filtered(base, [lambda a: a["_type"] in allowed, *preds])
        if mode == "true":
            items = [v.strip_email(a) if a["_type"] == "Email" else a for a in items]
        return items

    def custom_field_items(self, collection: str) -> Callable[[Request], list[dict]]:
        return lambda req: self.org.all(collection)

    # -- custom field writes ("only ... if you're an admin" [003:4292]) ------------------------

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

    def _field_write(self, req: Request, kind: str) -> dict[str, Any]:
        """Checks shared by the three writes; returns the JSON body (`{}` for DELETE)."""
        if not is_admin(self.org, req.user_id):
            raise ApiError(403, "You can only create/edit/delete custom fields if you're an admin.")
        if "id" in req.match:
            try:
                found = m.field_collection(self.org, req.match["id"])
            except KeyError:
                found = None
            if found != m.FIELD_COLLECTIONS[kind]:
                raise ApiError(404, f"Custom field {req.match['id']} not found.")
        if req.method == "DELETE":
            return {}
        if not isinstance(req.body, dict):
            raise ApiError(400, "A JSON object body is required.")
        return req.body

    def create_field(self, kind: str) -> Callable[[Request], dict]:
        """`POST /custom_field/{kind}/`: name, type, choices, accepts_multiple_values,
        description, editable_with_roles; custom_activity_type_id + required (activity);
        associations (shared)."""

        def handle(req: Request) -> dict[str, Any]:
            body = self._field_write(req, kind)
            if "type" not in body:
                raise ApiError(400, "`type` is required.")
            extra: dict[str, Any] = {}
            if kind == "activity":
                extra["custom_activity_type_id"] = body.get("custom_activity_type_id")
                extra["required"] = body.get("required", False)
            elif "custom_activity_type_id" in body:
                extra["custom_activity_type_id"] = body["custom_activity_type_id"]
            if kind == "shared" or "associations" in body:
                extra["associations"] = body.get("associations")
            at = self._now()
            with self._change(req, at):
                return _invalid_as_400(
                    m.add_field,
                    self.org,
                    kind,
                    body.get("name"),
                    body["type"],
                    choices=body.get("choices"),
                    multi=body.get("accepts_multiple_values", False),
                    description=body.get("description"),
                    editable_with_roles=_string_list(body, "editable_with_roles"),
                    user_id=req.user_id,
                    at=at,
                    **extra,
                )

        return handle

    def update_field(self, kind: str) -> Callable[[Request], dict]:
        """`PUT /custom_field/{kind}/{id}/`: rename, retype, accepts_multiple_values, choices,
        description, required (activity). With `async_conversions`, a type change answers
        with `converting_to_type` and values wait for `mutations.finish_conversion`."""

        def handle(req: Request) -> dict[str, Any]:
            body = self._field_write(req, kind)
            field_id = req.match["id"]
            current = self.org.get(m.FIELD_COLLECTIONS[kind], field_id) or {}
            if "custom_activity_type_id" in body and body["custom_activity_type_id"] != (
                current.get("custom_activity_type_id")
            ):
                raise ApiError(400, "The custom_activity_type_id value cannot be changed.")
            if "associations" in body:
                raise ApiError(
                    400, "The fake Close API does not implement changing `associations`."
                )
            if "name" in body and not isinstance(body["name"], str):
                raise ApiError(400, "`name` must be a non-empty string.")
            if "required" in body and kind != "activity":
                raise ApiError(400, "`required` only applies to activity fields.")
            options: dict[str, Any] = {}
            if "description" in body:
                options["description"] = body["description"]
            new_type = body.get("type")
            at = self._now()
            with self._change(req, at):
                return _invalid_as_400(
                    m.update_field,
                    self.org,
                    field_id,
                    name=body.get("name"),
                    type_=new_type,
                    multi=body.get("accepts_multiple_values"),
                    choices=body.get("choices"),
                    required=body.get("required"),
                    converting=self.async_conversions
                    and new_type is not None
                    and new_type != current.get("type"),
                    user_id=req.user_id,
                    at=at,
                    **options,
                )

        return handle

    def delete_field(self, kind: str) -> Callable[[Request], dict]:
        """`DELETE /custom_field/{kind}/{id}/`: answers `{}`."""

        def handle(req: Request) -> dict[str, Any]:
            self._field_write(req, kind)
            at = self._now()
            with self._change(req, at):
                _invalid_as_400(m.delete_field, self.org, req.match["id"], at=at)
            return {}

        return handle

    def archivable(self, collection: str, template: str) -> Callable[[Request], list[dict]]:
        """Templates: `is_archived` filter. The default is not documented; when absent we
        return only non-archived templates (the stricter reading) [003:6170]. A server that
        ignores the (for SMS templates undocumented) parameter lists every template."""
        ignored = self.undocumented_filters == "ignore" and (
            "is_archived" not in DOCUMENTED_PARAMS.get(template, frozenset())
        )

        def items(req: Request) -> list[dict]:
            if ignored:
                return self.org.all(collection)
            archived = req.params.bool("is_archived")
            wanted = bool(archived)
            return [t for t in self.org.all(collection) if bool(t.get("is_archived")) is wanted]

        return items

    def subscription_items(self, req: Request) -> list[dict]:
        p = req.params
        if not any(p.get(k) for k in ("sequence_id", "contact_id", "lead_id")):
            raise ApiError(400, "At least one of sequence_id, contact_id, and lead_id is required.")
        preds = equals_filter(p, "sequence_id") + equals_filter(p, "contact_id")
        lead_id = p.get("lead_id")
        if lead_id:
            contacts = {c["id"] for c in self.org.children(o.CONTACT, "lead_id", lead_id)}
            preds.append(lambda s: s["contact_id"] in contacts)
        return self.filtered(self.org.all(o.SEQUENCE_SUBSCRIPTION), preds)

    def send_as_items(self, req: Request) -> list[dict]:
        """Only associations involving the key's user are visible; the filter must equal
        that user's id; `allowing_user_id` is assumed by default [003:6402-6405]."""
        p = req.params
        allowed = p.get("allowed_user_id")
        allowing = p.get("allowing_user_id")
        if allowed is None and allowing is None:
            allowing = req.user_id
        for value in (allowed, allowing):
            if value is not None and value != req.user_id:
                raise ApiError(
                    403, "You can only list Send As associations involving your own user."
                )
        key, value = ("allowed_user_id", allowed) if allowed else ("allowing_user_id", allowing)
        return [s for s in self.org.all(o.SEND_AS) if s[key] == value]

    def phone_items(self, req: Request) -> list[dict]:
        p = req.params
        preds = equals_filter(p, "number") + equals_filter(p, "user_id")
        group = p.bool("is_group_number")
        if group is not None:
            preds.append(lambda n: bool(n.get("is_group_number")) is group)
        return self.filtered(self.org.all(o.PHONE_NUMBER), preds)


def opportunity_aggregates(items: list[dict]) -> dict[str, Any]:
    """The aggregate keys of the opportunity list, over all matches [003:2910-3013]."""
    counts = {"one_time": 0, "monthly": 0, "annual": 0}
    totals = dict.fromkeys(counts, 0)
    expected = dict.fromkeys(counts, 0)
    for opp in items:
        period = opp.get("value_period") or "one_time"
        value = opp.get("value") or 0
        counts[period] = counts.get(period, 0) + 1
        totals[period] = totals.get(period, 0) + value
        expected[period] = expected.get(period, 0) + value * (opp.get("confidence") or 0) // 100
    out: dict[str, Any] = {"count_by_value_period": counts}
    for prefix, sums in (("total_value", totals), ("expected_value", expected)):
        for period in ("one_time", "monthly", "annual"):
            out[f"{prefix}_{period}"] = sums[period]
            out[f"{prefix}_{period}_formatted"] = format_money(sums[period])
        annualized = sums["one_time"] + sums["monthly"] * 12 + sums["annual"]
        out[f"{prefix}_annualized"] = annualized
        out[f"{prefix}_annualized_formatted"] = format_money(annualized)
    return out


def is_admin(org: FakeOrg, user_id: str) -> bool:
    """Whether the user is an active member with the Admin role."""
    admin_roles = {r["id"] for r in org.all(o.ROLE) if r.get("name") == "Admin"}
    return any(
        mb["role_id"] in admin_roles for mb in org.children(o.MEMBERSHIP, "user_id", user_id)
    )


def _invalid_as_400(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a mutation; its ValueError is the client's fault (400), KeyError a 404."""
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    except KeyError as err:
        raise ApiError(404, str(err.args[0] if err.args else err)) from None


def _string_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ApiError(400, f"`{key}` must be a list of strings.")
    return value


def _no_opportunity_export(req: Request) -> dict[str, Any]:
    raise ApiError(
        400, "The fake Close API does not implement opportunity exports; use /export/lead/."
    )


def _norm_template(path: str) -> str:
    p = normalise_prefix(path)
    return p if p.endswith("/") else p + "/"
