"""Endpoint table and handlers of the fake Close API (reads, `/data/search/`, exports, the
Event Log, the custom field writes `POST/PUT/DELETE /custom_field/{kind}/...` and the renames
of statuses and pipelines `PUT /status/{kind}/{id}/`, `PUT /pipeline/{id}/`).

Each route is a method + path template (`/lead/{id}/`); the template doubles as the
endpoint group for rate limiting. List endpoints share one paging routine: `_skip` /
`_limit` with a per-resource maximum `_limit` (400 above it: Close API: Pagination), a `_skip` cap
(400 mentioning `max_skip = N`), a stable newest-first order, and `_fields` projection.

Parts: `catalog.py` (what the docs say per endpoint), `listing.py` (paging and generic
handlers), `reads.py` (per-endpoint items), `field_writes.py` (custom field writes),
`status_writes.py` (statuses and pipelines), `writes.py` (what writes share).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import events as ev
from .. import org as o
from .. import views as v
from ..common import ApiError
from ..exports.api import Exports
from ..org import FakeOrg
from ..params import equals_filter
from ..request import Request
from ..search.engine import SearchEngine
from .catalog import ACTIVITY_ENDPOINTS, DEFAULT_PAGE_CAPS
from .faults import normalise_prefix
from .field_writes import FieldWrites, is_admin
from .reads import Reads, opportunity_aggregates
from .status_writes import StatusWrites


@dataclass
class Route:
    method: str
    template: str
    handler: Callable[[Request], Any] | None
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        self.regex = re.compile(f"^{pattern}$")


class Router(Reads, FieldWrites, StatusWrites):
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
        self._filtered: OrderedDict[Any, Any] = OrderedDict()
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
        self.routes.append(Route("PUT", "/status/lead/{id}/", self.rename_status(o.LEAD_STATUS)))
        self.routes.append(
            Route("PUT", "/status/opportunity/{id}/", self.rename_status(o.OPPORTUNITY_STATUS))
        )
        self.routes.append(Route("PUT", "/pipeline/{id}/", self.update_pipeline))
        # Documented paths we do not serve for reading: known, so other methods get 405.
        for template in (
            "/membership/",
            "/membership/{id}/",
            "/lead/merge/",
        ):
            self.routes.append(Route("PUT", template, None))


def _no_opportunity_export(req: Request) -> dict[str, Any]:
    raise ApiError(
        400, "The fake Close API does not implement opportunity exports; use /export/lead/."
    )


def _norm_template(path: str) -> str:
    p = normalise_prefix(path)
    return p if p.endswith("/") else p + "/"
