"""The building blocks of list and single-object endpoints: paging (`_skip` / `_limit` caps,
`max_skip`, `page_overlap`), the documented-only and `id` filters, `_fields`, caches."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from .. import org as o
from .. import views as v
from ..common import ApiError
from ..org import FakeOrg
from ..params import Params, Predicate, newest_first
from ..request import Request
from .catalog import ALWAYS_PARAMS, DEFAULT_LIMIT, DOCUMENTED_PARAMS, OTHER_PAGE_CAP

T = TypeVar("T")


class Listing:
    """The listing half of `Router`: generic handlers over the organisation."""

    org: FakeOrg
    max_skip: int
    page_caps: dict[str, int]
    page_overlap: dict[str, int]
    id_filters: str
    undocumented_filters: str
    _filtered: OrderedDict[Any, Any]

    @staticmethod
    def fields(req: Request) -> v.Fields:
        return v.parse_fields(req.params.get("_fields"))

    def cap(self, template: str) -> int:
        return self.page_caps.get(template, OTHER_PAGE_CAP)

    def filtered(self, items: list[dict], preds: list[Predicate]) -> list[dict]:
        if not preds:
            return items
        return [x for x in items if all(p(x) for p in preds)]

    def cached(self, key: Any, build: Callable[[], T]) -> T:
        """Filtered listings (and their aggregates) are reused across the pages of one scan
        (small LRU)."""
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
            if extras is not None:  # over every match: once per scan, not once per page
                out.update(self.cached((key, "extras"), lambda: extras(found)))
            out["has_more"] = start + len(page) < len(found)
            out["data"] = [render(x, fields) if render else v.project(x, fields) for x in page]
            return out

        return handle

    def documented_only(self, template: str, req: Request) -> Request:
        """With `undocumented_filters="ignore"`, the request without the query parameters the docs
        do not list for this endpoint (`DOCUMENTED_PARAMS`), as a server that does not know them
        ignores them. Among those the fake otherwise honours: `lead_id` on `/contact/` (none
        documented: Close API: Contacts), `date_created__gte` / `__lte` on the activity endpoints
        (only `__gt` / `__lt`: Close API: Activities), `is_archived` on `/sms_template/`
        (TOC-only), `pipeline_id` on `/status/opportunity/` (none: Close API: Opportunity
        Statuses), `__in` forms the docs do not name (`lead_id__in` on `/activity/`, the per-type
        activity endpoints, `/opportunity/` and `/task/`, see Close API: Opportunities and Tasks;
        `user_id__in` on the per-type activity endpoints, `/connected_account/`, `/dialer/`,
        `/phone_number/`; `opportunity_id__in`, `assigned_to__in`, `view__in`,
        `saved_search_id__in`, `number__in`, `sequence_id__in`, `contact_id__in` on
        `/sequence_subscription/`)."""
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
        """`id` / `id__in` on every list endpoint with `id_filters="all"` (the docs' general note
        on "filtering by a long list of IDs": Close API: Filter Parameters); otherwise only
        `/task/`, the one list that documents them (Close API: Tasks), takes them, and other lists
        ignore them as any unknown parameter."""
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
