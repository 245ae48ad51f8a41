"""What each read endpoint lists: its items, filters, sort orders and the documented readings
(`GET /lead/`, `/contact/`, `/opportunity/` with aggregates, `/task/`, `/activity/`...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import org as o
from .. import views as v
from ..common import ApiError, format_money
from ..params import (
    Params,
    Predicate,
    equals_filter,
    newest_first,
    range_filters,
    sort_by,
    task_date_key,
)
from ..request import Request
from .catalog import DOCUMENTED_PARAMS
from .listing import Listing


class Reads(Listing):
    """The endpoint-specific item builders of `Router`."""

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
        # No filters are documented (Close API: Contacts); `lead_id` is accepted as the live docs
        # add it (unless `undocumented_filters="ignore"` dropped it).
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
        # (Close API: Tasks).
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
        # Documented: date_created__gt / __lt (Close API: Activities); __gte / __lte also accepted
        # (unless `undocumented_filters="ignore"` dropped them).
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
        `lead_id`; `thread_emails` picks Email vs EmailThread (Close API: Activities)."""
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

    def archivable(self, collection: str, template: str) -> Callable[[Request], list[dict]]:
        """Templates: `is_archived` filter. The default is not documented; when absent we return
        only non-archived templates (the stricter reading; Close API: Email Templates). A server
        that ignores the (for SMS templates undocumented) parameter lists every template."""
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
        that user's id; `allowing_user_id` is assumed by default (Close API: Send As)."""
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
    """The aggregate keys of the opportunity list, over all matches (Close API: Opportunities)."""
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
