"""What the docs say about each list endpoint: `_limit` caps, the per-type activity paths,
and the query parameters documented per endpoint (`DOCUMENTED_PARAMS`)."""

from __future__ import annotations

from ..params import RANGE_OPS

DEFAULT_LIMIT = 100

# Maximum `_limit` per list endpoint. The docs only say it "varies per resource" (Close API:
# Pagination); big CRM collections get 200, everything else 100. Overridable via `page_caps`.
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

# Query parameters every paged list takes: paging and `_fields` (Close API: Pagination;
# Fields); `id` / `id__in` have their own switch (`id_filters`), so `undocumented_filters`
# leaves them alone.
ALWAYS_PARAMS = frozenset({"_limit", "_skip", "_fields", "id", "id__in"})
# The per-type activity endpoints' parameters (Close API: Activities, each type's list):
# `__gt` / `__lt` only.
_ACTIVITY_TYPE_PARAMS = frozenset({"lead_id", "user_id", "date_created__gt", "date_created__lt"})


def _ranges(*names: str) -> frozenset[str]:
    return frozenset(f"{name}__{op}" for name in names for op in RANGE_OPS)


# The filters the docs list per paged list endpoint (beyond `ALWAYS_PARAMS`), each in the
# endpoint's own section (Close API: Leads, Contacts, Opportunities, Tasks, Activities, ...);
# endpoints not named here document none. `FakeClose(undocumented_filters="ignore")` drops
# every other query parameter before filtering, as a server that does not know a parameter
# ignores it.
DOCUMENTED_PARAMS: dict[str, frozenset[str]] = {
    "/lead/": frozenset({"query"}),
    "/contact/": frozenset(),  # `lead_id`: newer docs only
    "/opportunity/": frozenset({
        "lead_id", "user_id", "status_id", "status_label", "status_type", "value_period",
        "user_id__in", "status_id__in", "status_label__in", "status_type__in",
        "value_period__in", "query", "lead_query", "_order_by", "_group_by",
    }) | _ranges("date_created", "date_updated", "date_won"),
    "/task/": frozenset({
        "_type", "_type__in", "lead_id", "membership_id", "is_complete", "assigned_to", "view",
        "_order_by",
    }) | _ranges("date", "date_created"),
    "/activity/": frozenset({
        "lead_id", "user_id", "user_id__in", "contact_id", "contact_id__in", "_type",
        "_type__in", "date_created__gt", "date_created__lt", "thread_emails",
    }),
    **{f"/activity/{segment}/": _ACTIVITY_TYPE_PARAMS for segment in ACTIVITY_ENDPOINTS},
    "/activity/status_change/opportunity/": _ACTIVITY_TYPE_PARAMS | {"opportunity_id"},
    "/activity/custom/": _ACTIVITY_TYPE_PARAMS
    | {"custom_activity_type_id", "custom_activity_type_id__in"},
    "/email_template/": frozenset({"is_archived"}),  # SMS templates: only a title in the docs
    "/connected_account/": frozenset({"user_id"}),
    "/sequence_subscription/": frozenset({"sequence_id", "contact_id", "lead_id"}),
    "/dialer/": frozenset({"status", "status__in", "saved_search_id", "user_id"}),
    "/phone_number/": frozenset({"number", "user_id", "is_group_number"}),
}
