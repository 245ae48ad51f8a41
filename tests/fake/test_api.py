"""Tests of the fake Close API (`close_fake`) over real loopback HTTP."""

from __future__ import annotations

import base64
import http.client
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from close_fake import FakeClose, FakeOrg, Faults, RateLimit, generate_org
from close_fake import org as o
from close_fake.common import parse_moment

SEED = 1


@pytest.fixture(scope="module")
def org() -> FakeOrg:
    return generate_org(seed=SEED)


@pytest.fixture(scope="module")
def fake(org: FakeOrg) -> Iterator[FakeClose]:
    with FakeClose(org) as server:
        yield server


@pytest.fixture()
def client(fake: FakeClose) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10) as c:
        yield c


def _client(fake: FakeClose) -> httpx.Client:
    return httpx.Client(base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10)


def _walk(client: httpx.Client, path: str, limit: int, **params: str) -> list[dict]:
    """Every object of a list endpoint via _skip/_limit."""
    out: list[dict] = []
    skip = 0
    while True:
        r = client.get(path, params={**params, "_skip": skip, "_limit": limit})
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body["data"])
        if not body["has_more"]:
            return out
        assert len(body["data"]) == limit
        skip += limit


# -- authentication, errors -------------------------------------------------------------------


def test_auth_required_and_key_never_echoed(fake: FakeClose) -> None:
    r = httpx.get(fake.url("lead/"))
    assert r.status_code == 401
    assert isinstance(r.json()["error"], str)
    wrong = httpx.get(fake.url("lead/"), auth=("wrong_key", ""))
    assert wrong.status_code == 401 and "wrong_key" not in wrong.text
    bearer = httpx.get(fake.url("me/"), headers={"authorization": f"Bearer {fake.api_key}"})
    assert bearer.status_code == 401
    garbage = httpx.get(fake.url("me/"), headers={"authorization": "Basic %%%"})
    assert garbage.status_code == 401
    token = base64.b64encode(f"{fake.api_key}:".encode()).decode()
    ok = httpx.get(fake.url("me/"), headers={"authorization": f"Basic {token}"})
    assert ok.status_code == 200
    assert fake.api_key not in r.text + wrong.text


def test_unknown_path_404_and_wrong_method_405(client: httpx.Client) -> None:
    r = client.get("no_such_thing/")
    assert r.status_code == 404 and "error" in r.json()
    assert client.post("lead/", json={"name": "x"}).status_code == 405
    assert client.get("data/search/").status_code == 405
    assert client.delete("pipeline/pipe_x/").status_code == 405
    assert client.delete("lead/").status_code == 405
    assert client.get("lead/lead_doesnotexist/").status_code == 404
    assert client.get("/api/v2/lead/").status_code == 404


def test_paths_with_and_without_trailing_slash(client: httpx.Client) -> None:
    a = client.get("lead/", params={"_limit": 3}).json()
    b = client.get("lead", params={"_limit": 3}).json()
    assert a == b and len(a["data"]) == 3


def test_forbidden_prefix_answers_403(org: FakeOrg) -> None:
    with FakeClose(org, forbidden={"/webhook/"}) as fake, _client(fake) as c:
        r = c.get("webhook/")
        assert r.status_code == 403 and isinstance(r.json()["error"], str)
        assert c.get("lead/", params={"_limit": 1}).status_code == 200


# -- every endpoint -----------------------------------------------------------------------------

LIST_ENDPOINTS = [
    "user/", "role/", "group/", "lead/", "contact/", "opportunity/", "task/", "activity/",
    "activity/note/", "activity/email/", "activity/emailthread/", "activity/call/",
    "activity/sms/", "activity/meeting/", "activity/status_change/lead/",
    "activity/status_change/opportunity/", "activity/task_completed/", "activity/created/",
    "activity/custom/", "status/lead/", "status/opportunity/", "pipeline/",
    "custom_field/lead/", "custom_field/contact/", "custom_field/opportunity/",
    "custom_field/activity/", "custom_field/shared/", "custom_activity/", "email_template/",
    "sms_template/", "sequence/", "sequence_schedule/", "saved_search/", "connected_account/",
    "send_as/", "phone_number/", "integration_link/", "dialer/", "webhook/",
]  # fmt: skip


@pytest.mark.parametrize("path", LIST_ENDPOINTS)
def test_every_list_endpoint_answers_with_data(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"], path
    assert all(isinstance(x, dict) and x.get("id") for x in body["data"])
    if path in ("pipeline/", "group/", "custom_activity/", "send_as/"):
        assert "has_more" not in body  # doc samples of these lists have no has_more
    else:
        assert isinstance(body["has_more"], bool)
    # Every listed object can be fetched alone (where the docs have a single GET).
    if path not in ("activity/", "status/lead/", "status/opportunity/", "pipeline/"):
        first = body["data"][0]["id"]
        single = client.get(f"{path}{first}/")
        assert single.status_code == 200, (path, single.text)
        assert single.json()["id"] == first


def test_single_object_endpoints(client: httpx.Client, org: FakeOrg) -> None:
    me = client.get("me/").json()
    assert me["id"] == org.admin_user_id
    assert me["organizations"][0]["id"] == org.organization_id
    assert me["memberships"][0]["organization_id"] == org.organization_id
    assert me["last_used_timezone"]
    for kind in ("lead", "contact", "opportunity"):
        r = client.get(f"custom_field_schema/{kind}/")
        fields = r.json()["fields"]
        assert (
            fields
            and any(f["is_shared"] for f in fields)
            and any(not f["is_shared"] for f in fields)
        )
    seq = client.get("sequence/").json()["data"][0]
    single = client.get(f"sequence/{seq['id']}/").json()
    assert "subscription_counts_by_status" in single and "subscription_counts_by_status" not in seq
    tmpl = client.get("email_template/").json()["data"][0]
    assert "used_by_sequences" in client.get(f"email_template/{tmpl['id']}/").json()


def test_object_shapes_follow_the_doc_samples(client: httpx.Client, org: FakeOrg) -> None:
    lead = client.get("lead/", params={"_limit": 1}).json()["data"][0]
    for key in (
        "id",
        "name",
        "display_name",
        "status_id",
        "status_label",
        "contacts",
        "opportunities",
        "tasks",
        "addresses",
        "contact_ids",
        "organization_id",
        "date_created",
        "date_updated",
        "created_by",
        "updated_by",
        "html_url",
    ):
        assert key in lead, key
    assert lead["id"].startswith("lead_") and lead["date_created"].endswith("+00:00")
    assert lead["contact_ids"] == [c["id"] for c in lead["contacts"]]
    assert all(c["id"].startswith("cont_") and "emails" in c for c in lead["contacts"])
    opp = client.get("opportunity/", params={"_limit": 1}).json()
    for key in (
        "total_results",
        "count_by_value_period",
        "total_value_one_time",
        "total_value_monthly",
        "total_value_annual",
        "total_value_annualized",
        "expected_value_one_time",
        "expected_value_annualized",
        "total_value_one_time_formatted",
    ):
        assert key in opp, key
    pipe = client.get("pipeline/").json()["data"][0]
    assert pipe["id"].startswith("pipe_") and pipe["statuses"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", pipe["date_created"])
    acttype = client.get("custom_activity/").json()["data"]
    assert any(t["fields"] for t in acttype)
    assert all(re.fullmatch(r"[^+]*\.\d{6}", t["date_created"]) for t in acttype)
    dialer = client.get("dialer/").json()["data"][0]
    assert "+" not in dialer["date_created"]
    call = client.get("activity/call/", params={"_limit": 1}).json()["data"][0]
    assert call["_type"] == "Call" and isinstance(call["cost"], str)
    email = client.get("activity/email/", params={"_limit": 1}).json()["data"][0]
    for key in ("to", "cc", "bcc", "envelope", "attachments", "opens", "thread_id", "sender"):
        assert key in email, key
    thread = client.get("activity/emailthread/", params={"_limit": 1}).json()["data"][0]
    assert thread["emails"] and thread["n_emails"] == len(thread["emails"])
    assert all(e["thread_id"] == thread["id"] for e in thread["emails"])
    assert "body_text" not in thread["emails"][0] and thread["participants"]
    meeting = client.get("activity/meeting/", params={"_limit": 1}).json()["data"][0]
    assert meeting["attendees"] and meeting["starts_at"]
    custom = client.get("activity/custom/").json()["data"]
    assert all(a["_type"] == "CustomActivity" and a["custom_activity_type_id"] for a in custom)
    assert any(k.startswith("custom.") for a in custom for k in a)
    shared = client.get("custom_field/shared/").json()["data"]
    assert all(f["associations"] and f["associations"][0]["object_type"] for f in shared)
    afield = client.get("custom_field/activity/").json()["data"][0]
    assert "custom_activity_type_id" in afield and "required" in afield


def test_organization_memberships_and_expand(client: httpx.Client, org: FakeOrg) -> None:
    body = client.get(f"organization/{org.organization_id}/").json()
    assert body["id"] == org.organization_id
    member = body["memberships"][0]
    assert member["id"].startswith("memb_") and member["user_full_name"]
    assert member["user_email"] and "user" not in member
    assert len(body["inactive_memberships"]) == 1
    expanded = client.get(
        f"organization/{org.organization_id}/",
        params={"_expand": "memberships__user,inactive_memberships__user"},
    ).json()
    m = expanded["memberships"][0]
    assert m["user"]["id"] == m["user_id"] and "user_email" not in m
    inactive_user = expanded["inactive_memberships"][0]["user"]["id"]
    listed = {u["id"] for u in client.get("user/").json()["data"]}
    assert inactive_user not in listed and org.admin_user_id in listed
    assert client.get(f"user/{inactive_user}/").status_code == 200
    assert client.get("organization/orga_other/").status_code == 404


# -- paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "expected"), [
    ("lead/", {}, lambda org: org.collections[o.LEAD]),
    ("contact/", {}, lambda org: org.collections[o.CONTACT]),
    ("task/", {"_type": "all"}, lambda org: org.collections[o.TASK]),
    ("activity/note/", {}, lambda org: {a["id"]: a for a in org.activities("Note")}),
    ("opportunity/", {}, lambda org: org.collections[o.OPPORTUNITY]),
])  # fmt: skip
def test_paging_returns_every_id_exactly_once(client, org, path, params, expected) -> None:
    items = _walk(client, path, 7, **params)
    ids = [x["id"] for x in items]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(expected(org))
    moments = [(parse_moment(x["date_created"]), x["id"]) for x in items]
    assert moments == sorted(moments, reverse=True)  # newest first, ties by id


def test_limit_above_cap_is_400_naming_the_maximum(client: httpx.Client, org: FakeOrg) -> None:
    r = client.get("lead/", params={"_limit": 201})
    assert r.status_code == 400
    assert "_limit" in r.json()["error"] and "200" in r.json()["error"]
    assert client.get("lead/", params={"_limit": 200}).status_code == 200
    r = client.get("role/", params={"_limit": 101})
    assert r.status_code == 400 and "100" in r.json()["error"]
    assert client.get("lead/", params={"_limit": "ten"}).status_code == 400
    with FakeClose(org, page_caps={"/lead/": 20}) as fake, _client(fake) as c:
        r = c.get("lead/", params={"_limit": 21})
        assert r.status_code == 400 and "20" in r.json()["error"]
        default = c.get("lead/").json()
        assert len(default["data"]) == 20 and default["has_more"] is True


def test_skip_cap_is_400_with_max_skip(org: FakeOrg) -> None:
    with FakeClose(org, max_skip=30) as fake, _client(fake) as c:
        assert c.get("lead/", params={"_skip": 30}).status_code == 200
        r = c.get("lead/", params={"_skip": 31})
        assert r.status_code == 400 and "max_skip = 30" in r.json()["error"]
        assert "max_skip = 30" in c.get("activity/note/", params={"_skip": 5000}).json()["error"]


# -- per-endpoint rules ----------------------------------------------------------------------


def test_tasks_default_to_lead_type_only(client: httpx.Client, org: FakeOrg) -> None:
    default = _walk(client, "task/", 200)
    assert default and {t["_type"] for t in default} == {"lead"}
    everything = _walk(client, "task/", 200, _type="all")
    assert len(everything) == org.count(o.TASK) > len(default)
    assert {t["_type"] for t in everything} == set(o.TASK_TYPES)
    assert all(t["id"].startswith("task_" if t["_type"] == "lead" else "noti_") for t in everything)
    assert any(t["lead_id"] is None for t in everything)
    dates = [t["date"] for t in everything if t["date"]]
    assert any(len(d) == 10 for d in dates) and any("T" in d for d in dates)
    vm = client.get("task/", params={"_type": "voicemail"}).json()["data"]
    assert vm and {t["_type"] for t in vm} == {"voicemail"}
    some = _walk(client, "task/", 200, _type__in="missed_call,voicemail")
    assert {t["_type"] for t in some} == {"missed_call", "voicemail"}
    done = _walk(client, "task/", 200, _type="all", is_complete="true")
    assert done and all(t["is_complete"] for t in done)
    lead_id = next(t["lead_id"] for t in everything if t["lead_id"])
    mine = _walk(client, "task/", 200, _type="all", lead_id=lead_id)
    assert mine and all(t["lead_id"] == lead_id for t in mine)
    pivot = sorted(parse_moment(t["date_created"]) for t in everything)[len(everything) // 2]
    newer = _walk(
        client,
        "task/",
        200,
        _type="all",
        date_created__gte=datetime.fromtimestamp(pivot, UTC).isoformat(),
    )
    assert newer and all(parse_moment(t["date_created"]) >= pivot for t in newer)


def test_activity_date_filters(client: httpx.Client, org: FakeOrg) -> None:
    notes = org.activities("Note")
    stamps = sorted(a["date_created"] for a in notes)
    tie = next(s for s, c in Counter(stamps).items() if c > 1)  # generator guarantees ties
    t = parse_moment(tie)
    expect = {
        "date_created__gt": {a["id"] for a in notes if parse_moment(a["date_created"]) > t},
        "date_created__gte": {a["id"] for a in notes if parse_moment(a["date_created"]) >= t},
        "date_created__lt": {a["id"] for a in notes if parse_moment(a["date_created"]) < t},
        "date_created__lte": {a["id"] for a in notes if parse_moment(a["date_created"]) <= t},
    }
    for param, ids in expect.items():
        got = {a["id"] for a in _walk(client, "activity/note/", 200, **{param: tie})}
        assert got == ids, param
    assert len(expect["date_created__gte"]) - len(expect["date_created__gt"]) >= 2
    both = _walk(
        client, "activity/note/", 200, date_created__gt=stamps[5], date_created__lt=stamps[-5]
    )
    assert {a["id"] for a in both} == {
        a["id"] for a in notes if stamps[5] < a["date_created"] < stamps[-5]
    }
    assert client.get("activity/note/", params={"date_created__gt": "yesterday"}).status_code == 400
    lead_id = notes[0]["lead_id"]
    by_lead = client.get("activity/call/", params={"lead_id": lead_id}).json()["data"]
    assert by_lead and all(a["lead_id"] == lead_id for a in by_lead)


def test_meetings_created_in_the_future(client: httpx.Client, org: FakeOrg) -> None:
    meetings = _walk(client, "activity/meeting/", 200)
    future = [m for m in meetings if parse_moment(m["date_created"]) > org.now.timestamp()]
    assert future and all(m["status"] == "upcoming" for m in future)
    assert all(parse_moment(m["date_updated"]) < parse_moment(m["date_created"]) for m in future)
    assert all(m["date_created"].startswith(m["starts_at"][:19]) for m in meetings)


def test_generic_activity_endpoint_rules(client: httpx.Client, org: FakeOrg) -> None:
    r = client.get("activity/", params={"_type": "Note"})
    assert r.status_code == 400 and "lead_id" in r.json()["error"]
    lead_id = org.activities("Note")[0]["lead_id"]
    notes = client.get("activity/", params={"lead_id": lead_id, "_type": "Note"}).json()["data"]
    assert notes and {a["_type"] for a in notes} == {"Note"}
    default = client.get("activity/", params={"lead_id": lead_id}).json()["data"]
    assert "Email" in {a["_type"] for a in default}
    assert "EmailThread" not in {a["_type"] for a in default}
    only = client.get("activity/", params={"lead_id": lead_id, "thread_emails": "only"}).json()
    assert "EmailThread" in {a["_type"] for a in only["data"]}
    assert "Email" not in {a["_type"] for a in only["data"]}


def test_contact_lead_id_only_when_asked_in_lists(client: httpx.Client) -> None:
    listed = client.get("contact/", params={"_limit": 5}).json()["data"]
    assert listed and all("lead_id" not in c for c in listed)
    asked = client.get("contact/", params={"_limit": 5, "_fields": "id,name,lead_id"}).json()
    assert all(set(c) == {"id", "name", "lead_id"} and c["lead_id"] for c in asked["data"])
    single = client.get(f"contact/{listed[0]['id']}/").json()
    assert single["lead_id"].startswith("lead_")
    lead = client.get(f"lead/{single['lead_id']}/").json()
    assert all("lead_id" not in c for c in lead["contacts"])
    assert single["id"] in lead["contact_ids"]


def test_fields_projection_on_get(client: httpx.Client, org: FakeOrg) -> None:
    rows = client.get("lead/", params={"_fields": "id,custom", "_limit": 20}).json()["data"]
    assert all(
        set(r) - {"id"} and all(k.startswith("custom.") for k in r if k != "id") for r in rows
    )
    cf = org.all(o.CUSTOM_FIELD_LEAD)[0]["id"]
    one = client.get("lead/", params={"_fields": f"id,custom.{cf}", "_limit": 50}).json()
    assert all(set(r) <= {"id", f"custom.{cf}"} for r in one["data"])
    assert any(f"custom.{cf}" in r for r in one["data"])
    assert any(f"custom.{cf}" not in r for r in one["data"])  # empty values are omitted


def test_custom_values_of_every_type(org: FakeOrg) -> None:
    fields = {f["id"]: f for f in org.all(o.CUSTOM_FIELD_LEAD) + org.all(o.CUSTOM_FIELD_SHARED)}
    seen: dict[str, list] = {}
    for lead in org.all(o.LEAD):
        for k, value in lead.items():
            if k.startswith("custom."):
                f = fields[k[7:]]
                seen.setdefault(f"{f['type']}:{f['accepts_multiple_values']}", []).append(value)
    for key in (
        "text:False",
        "number:False",
        "date:False",
        "datetime:False",
        "choices:False",
        "choices:True",
        "user:False",
        "user:True",
        "hidden:False",
    ):
        assert key in seen, key
    assert any(isinstance(x, float) for x in seen["number:False"])
    assert any(isinstance(x, int) for x in seen["number:False"])
    assert all(isinstance(x, list) for x in seen["choices:True"] + seen["user:True"])
    assert any(not x.endswith("+00:00") for x in seen["datetime:False"])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", x) for x in seen["date:False"])


def test_opportunity_filters_order_and_aggregates(client: httpx.Client, org: FakeOrg) -> None:
    opps = org.all(o.OPPORTUNITY)
    pivot = sorted(x["date_updated"] for x in opps)[len(opps) // 2]
    body = client.get("opportunity/", params={"date_updated__gte": pivot, "_limit": 200}).json()
    want = [x for x in opps if x["date_updated"] >= pivot]
    assert {x["id"] for x in body["data"]} == {x["id"] for x in want}
    assert body["total_results"] == len(want)
    assert body["total_value_one_time"] == sum(
        x["value"] for x in want if x["value_period"] == "one_time"
    )
    assert sum(body["count_by_value_period"].values()) == len(want)
    ordered = client.get("opportunity/", params={"_order_by": "-value", "_limit": 200}).json()
    values = [x["value"] for x in ordered["data"]]
    assert values == sorted(values, reverse=True)
    status = opps[0]["status_id"]
    same = client.get("opportunity/", params={"status_id": status, "_limit": 200}).json()
    assert same["data"] and all(x["status_id"] == status for x in same["data"])
    assert client.get("opportunity/", params={"_order_by": "name"}).status_code == 400


def test_opportunity_aggregates_on_every_page_follow_changes() -> None:
    """The aggregates are computed once per scan (a full read of 100,000 opportunities
    summed them on every page: 100 ms a page), and still over every match, after a change
    too."""
    org = generate_org(seed=11, leads=30)

    def one_time() -> int:
        return sum(x["value"] for x in org.all(o.OPPORTUNITY) if x["value_period"] == "one_time")

    with FakeClose(org) as fake, _client(fake) as client:
        pages = [client.get("opportunity/", params={"_limit": 10, "_skip": skip}).json()
                 for skip in (0, 10)]
        before = one_time()
        assert [page["total_value_one_time"] for page in pages] == [before, before]
        opp = next(x for x in org.all(o.OPPORTUNITY) if x["value_period"] == "one_time")
        org.put(o.OPPORTUNITY, {**opp, "value": opp["value"] + 1000})
        later = client.get("opportunity/", params={"_limit": 10, "_skip": 10}).json()
        assert later["total_value_one_time"] == before + 1000 == one_time()


def test_sequence_subscription_requires_a_filter(client: httpx.Client, org: FakeOrg) -> None:
    r = client.get("sequence_subscription/")
    assert r.status_code == 400 and "sequence_id" in r.json()["error"]
    seq = org.all(o.SEQUENCE_SUBSCRIPTION)[0]
    by_seq = client.get("sequence_subscription/", params={"sequence_id": seq["sequence_id"]})
    assert by_seq.status_code == 200
    assert by_seq.json()["data"] and all(
        s["sequence_id"] == seq["sequence_id"] for s in by_seq.json()["data"]
    )
    lead_id = org.get(o.CONTACT, seq["contact_id"])["lead_id"]
    by_lead = client.get("sequence_subscription/", params={"lead_id": lead_id}).json()["data"]
    assert seq["id"] in {s["id"] for s in by_lead}


def test_group_members_only_from_the_single_endpoint(client: httpx.Client) -> None:
    listed = client.get("group/", params={"_fields": "name,members"}).json()["data"]
    assert listed and all(set(g) == {"id", "name"} for g in listed)
    plain = client.get("group/").json()["data"]
    assert all(set(g) == {"id", "name", "organization_id"} for g in plain)
    gid = plain[0]["id"]
    assert "members" not in client.get(f"group/{gid}/").json()
    full = client.get(f"group/{gid}/", params={"_fields": "name,members"}).json()
    assert full["name"] and full["members"] and full["members"][0]["user_id"].startswith("user_")


def test_email_templates_hide_archived_by_default(client: httpx.Client, org: FakeOrg) -> None:
    default = client.get("email_template/").json()["data"]
    archived = client.get("email_template/", params={"is_archived": "true"}).json()["data"]
    assert default and archived
    assert not any(t["is_archived"] for t in default) and all(t["is_archived"] for t in archived)
    assert len(default) + len(archived) == org.count(o.EMAIL_TEMPLATE)


def test_method_override_with_params_in_body(client: httpx.Client, org: FakeOrg) -> None:
    lead_id = org.all(o.LEAD)[3]["id"]
    r = client.post(
        "contact/",
        headers={"x-http-method-override": "GET"},
        json={"_params": {"lead_id": lead_id}},
    )
    assert r.status_code == 200
    assert {c["id"] for c in r.json()["data"]} == {
        c["id"] for c in org.children(o.CONTACT, "lead_id", lead_id)
    }


# -- /data/search/ ------------------------------------------------------------------------------


def _lead_query(*conditions: dict) -> dict:
    return {"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}, *conditions]}


def _field(name: str, object_type: str = "lead") -> dict:
    return {"type": "regular_field", "object_type": object_type, "field_name": name}


def test_search_returns_ids_only_by_default(client: httpx.Client, org: FakeOrg) -> None:
    r = client.post("data/search/", json={"query": _lead_query(), "_limit": 200})
    assert r.status_code == 200
    body = r.json()
    assert body["cursor"] is None
    assert all(
        set(x) == {"__object_type", "id"} and x["__object_type"] == "lead" for x in body["data"]
    )
    assert {x["id"] for x in body["data"]} == set(org.collections[o.LEAD])


def test_search_fields_projection_and_limits(client: httpx.Client) -> None:
    body = client.post(
        "data/search/",
        json={
            "query": _lead_query(),
            "_limit": 5,
            "_fields": {"lead": ["id", "name", "date_updated", "custom", "contacts"]},
        },
    ).json()
    assert len(body["data"]) == 5 and body["cursor"]
    for item in body["data"]:
        assert {"__object_type", "id", "name", "date_updated", "contacts"} <= set(item)
        assert set(item) - {"__object_type", "id", "name", "date_updated", "contacts"} <= {
            k for k in item if k.startswith("custom.")
        }
        assert all(c["id"].startswith("cont_") for c in item["contacts"])
    too_long = client.post(
        "data/search/",
        json={"query": _lead_query(), "_fields": {"lead": [f"f{i}" for i in range(101)]}},
    )
    assert too_long.status_code == 400 and too_long.json() == {"error": "List is too long"}
    big = client.post("data/search/", json={"query": _lead_query(), "_limit": 201})
    assert big.status_code == 400 and "200" in big.json()["error"]
    bad = client.post("data/search/", json={"query": {"type": "frobnicate"}})
    assert bad.status_code == 400


def test_search_sort_and_moment_range_keyset_walk(client: httpx.Client, org: FakeOrg) -> None:
    leads = org.all(o.LEAD)
    start = sorted(x["date_updated"] for x in leads)[10]
    condition = {
        "type": "field_condition",
        "field": _field("date_updated"),
        "condition": {"type": "moment_range", "on_or_after": {"type": "fixed_utc", "value": start}},
    }
    sort = [{"direction": "asc", "field": _field("date_updated")}]
    seen: list[dict] = []
    cursor = None
    while True:
        body = client.post(
            "data/search/",
            json={
                "query": _lead_query(condition),
                "sort": sort,
                "_limit": 7,
                "cursor": cursor,
                "_fields": {"lead": ["id", "date_updated"]},
            },
        ).json()
        seen.extend(body["data"])
        cursor = body["cursor"]
        if cursor is None:
            break
    want = sorted(
        (x for x in leads if parse_moment(x["date_updated"]) >= parse_moment(start)),
        key=lambda x: (parse_moment(x["date_updated"]), x["id"]),
    )
    assert [x["id"] for x in seen] == [x["id"] for x in want]
    # A bare ISO string is accepted as a bound too; `before` excludes the bound.
    bare = {
        "type": "field_condition",
        "field": _field("date_updated"),
        "condition": {"type": "moment_range", "before": start},
    }
    older = client.post("data/search/", json={"query": _lead_query(bare), "_limit": 200})
    assert len(older.json()["data"]) == len(leads) - len(want)


def test_search_text_term_and_contacts(client: httpx.Client, org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    by_name = client.post(
        "data/search/",
        json={
            "query": _lead_query(
                {
                    "type": "field_condition",
                    "field": _field("name"),
                    "condition": {"type": "text", "mode": "exact_value", "value": lead["name"]},
                }
            )
        },
    ).json()
    assert lead["id"] in {x["id"] for x in by_name["data"]}
    assert all(org.get(o.LEAD, x["id"])["name"] == lead["name"] for x in by_name["data"])
    by_status = client.post(
        "data/search/",
        json={
            "query": _lead_query(
                {
                    "type": "field_condition",
                    "field": _field("status_id"),
                    "condition": {"type": "term", "values": [lead["status_id"]]},
                }
            ),
            "_limit": 200,
        },
    ).json()
    assert {x["id"] for x in by_status["data"]} == {
        x["id"] for x in org.all(o.LEAD) if x["status_id"] == lead["status_id"]
    }
    contacts = client.post(
        "data/search/",
        json={
            "query": {
                "type": "and",
                "queries": [
                    {"type": "object_type", "object_type": "contact"},
                    {
                        "type": "field_condition",
                        "field": _field("id", "lead"),
                        "condition": {"type": "term", "values": [lead["id"]]},
                    },
                ],
            },
            "_fields": {"contact": ["id", "lead_id", "emails"]},
        },
    ).json()
    assert {x["id"] for x in contacts["data"]} == {
        c["id"] for c in org.children(o.CONTACT, "lead_id", lead["id"])
    }
    assert all(
        x["__object_type"] == "contact" and x["lead_id"] == lead["id"] for x in contacts["data"]
    )


def test_search_cursor_expires(org: FakeOrg) -> None:
    with FakeClose(org, search_cursor_ttl=0.5) as fake, _client(fake) as c:
        first = c.post("data/search/", json={"query": _lead_query(), "_limit": 10}).json()
        fresh = c.post(
            "data/search/", json={"query": _lead_query(), "_limit": 10, "cursor": first["cursor"]}
        )
        assert fresh.status_code == 200
        time.sleep(0.6)  # wait past the TTL of the cursor `fresh` just issued
        stale = c.post(
            "data/search/",
            json={"query": _lead_query(), "_limit": 10, "cursor": fresh.json()["cursor"]},
        )
        assert stale.status_code == 400 and "expired" in stale.json()["error"]
        unknown = c.post("data/search/", json={"query": _lead_query(), "cursor": "nope"})
        assert unknown.status_code == 400


def test_search_walk_stops_at_walk_max(org: FakeOrg) -> None:
    sort = [{"direction": "asc", "field": _field("date_created")}]
    with FakeClose(org, search_walk_max=20) as fake, _client(fake) as c:
        pages, cursor = [], None
        while True:
            body = c.post(
                "data/search/",
                json={
                    "query": _lead_query(),
                    "sort": sort,
                    "_limit": 7,
                    "cursor": cursor,
                    "_fields": {"lead": ["date_created"]},
                },
            ).json()
            pages.append(body["data"])
            cursor = body["cursor"]
            if cursor is None:
                break
        assert [len(p) for p in pages] == [7, 7, 6]  # capped at 20 of 50 matches
        # A client restarts with a narrower query from the last date seen (inclusive,
        # because of ties) and de-duplicates; the walks together cover every lead.
        ids = {x["id"] for p in pages for x in p}
        walked = sum(len(p) for p in pages)
        last = pages[-1][-1]["date_created"]
        restarts = 0
        while walked == 20:
            restarts += 1
            narrower = _lead_query(
                {
                    "type": "field_condition",
                    "field": _field("date_created"),
                    "condition": {
                        "type": "moment_range",
                        "on_or_after": {"type": "fixed_utc", "value": last},
                    },
                }
            )
            walked, cursor = 0, None
            while True:
                body = c.post(
                    "data/search/",
                    json={
                        "query": narrower,
                        "sort": sort,
                        "_limit": 200,
                        "cursor": cursor,
                        "_fields": {"lead": ["date_created"]},
                    },
                ).json()
                walked += len(body["data"])
                ids |= {x["id"] for x in body["data"]}
                last = body["data"][-1]["date_created"] if body["data"] else last
                cursor = body["cursor"]
                if cursor is None:
                    break
        assert restarts >= 2
        assert ids == set(org.collections[o.LEAD])


# -- rate limits and faults --------------------------------------------------------------------


def test_rate_limit_headers_on_every_response(client: httpx.Client) -> None:
    for path in ("lead/", "me/", "nope/"):
        r = client.get(path)
        assert int(r.headers["x-rate-limit-limit"]) > 0
        assert int(r.headers["x-rate-limit-remaining"]) >= 0
        float(r.headers["x-rate-limit-reset"])
        assert re.fullmatch(r"limit=\d+, remaining=\d+, reset=[\d.]+", r.headers["ratelimit"])


def test_rate_limit_429_body_and_headers(org: FakeOrg) -> None:
    with FakeClose(org, rate_limit=RateLimit(3, window=0.5)) as fake, _client(fake) as c:
        remaining = [int(c.get("me/").headers["x-rate-limit-remaining"]) for _ in range(3)]
        assert remaining == [2, 1, 0]
        r = c.get("me/")
        assert r.status_code == 429
        err = r.json()["error"]
        assert set(err) == {
            "message",
            "rate_reset",
            "rate_limit",
            "rate_window",
            "rate_limit_type",
            "rate_endpoint_group",
        }
        assert err["rate_limit"] == 3 and err["rate_window"] == 0.5
        assert err["rate_limit_type"] == "key" and re.fullmatch(
            r"[0-9a-f]{32}", err["rate_endpoint_group"]
        )
        assert 0 < err["rate_reset"] <= 0.5
        assert r.headers["retry-after"] == str(math.ceil(err["rate_reset"]))
        assert 0 < float(r.headers["x-rate-limit-reset"]) <= 0.5
        assert c.get("lead/", params={"_limit": 1}).status_code == 200  # another group
        time.sleep(err["rate_reset"] + 0.02)  # the documented way: wait rate_reset
        assert c.get("me/").status_code == 200
        assert sum(fake.rate_limit.rejected.values()) == 1


def test_each_endpoint_group_has_its_own_limit_and_window(org: FakeOrg) -> None:
    """Limits differ per group (Close API: Rate Limits); the request log says which window
    counted what."""
    limit = RateLimit(3, window=30, enforce=False, groups={"GET /lead/": 5})
    with FakeClose(org, rate_limit=limit) as fake, _client(fake) as c:
        leads = [c.get("lead/", params={"_limit": 1}).headers for _ in range(6)]
        me = c.get("me/").headers
    assert [h["x-rate-limit-limit"] for h in leads] == ["5"] * 6
    assert [h["x-rate-limit-remaining"] for h in leads] == ["4", "3", "2", "1", "0", "0"]
    assert (me["x-rate-limit-limit"], me["x-rate-limit-remaining"]) == ("3", "2")
    assert me["ratelimit"].startswith("limit=3, remaining=2, reset=")
    windows = {(r.rate.group_id, r.rate.window_start) for r in fake.requests if r.rate}
    assert len(windows) == 2 and all(r.status == 200 for r in fake.requests)
    assert not fake.rate_limit.rejected  # enforce=False: counted, never refused


def test_scheduled_faults_are_observed_by_the_client(org: FakeOrg) -> None:
    faults = Faults(rate_reset=0.05)
    faults.fail_next("/lead/", ["500", "drop", "partial", "429", "503"])
    with FakeClose(org, faults=faults) as fake, _client(fake) as c:
        assert c.get("lead/").status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("lead/")
        with pytest.raises(httpx.HTTPError):
            c.get("lead/")
        r = c.get("lead/")
        assert r.status_code == 429
        assert r.json()["error"]["rate_reset"] == 0.05 and r.headers["retry-after"] == "1"
        assert r.headers["x-rate-limit-reset"] == "0.05"
        assert c.get("contact/", params={"_limit": 1}).status_code == 200  # other prefix
        assert c.get("lead/").status_code == 503
        assert c.get("lead/", params={"_limit": 1}).status_code == 200
        assert faults.injected == Counter({"500": 1, "drop": 1, "partial": 1, "429": 1, "503": 1})
        assert faults.pending() == 0
        statuses = [(r.path, r.status, r.fault) for r in fake.requests]
        assert ("/api/v1/lead/", None, "drop") in statuses
        assert ("/api/v1/lead/", 500, "500") in statuses
        assert all(r.endpoint == "/lead/" for r in fake.requests if r.path == "/api/v1/lead/")


def test_slow_fault_trips_client_timeouts(org: FakeOrg) -> None:
    faults = Faults(slow_seconds=0.3)
    faults.fail_next("/me/", ["slow"])
    with FakeClose(org, faults=faults) as fake:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(fake.url("me/"), auth=(fake.api_key, ""), timeout=0.1)
        assert httpx.get(fake.url("me/"), auth=(fake.api_key, ""), timeout=2).status_code == 200
        assert faults.injected["slow"] == 1


def test_random_faults_are_seeded_and_path_restricted(org: FakeOrg) -> None:
    def run() -> tuple[list[int], Counter]:
        faults = Faults(seed=7, p_500=0.3, p_502=0.1, p_429=0.1, paths=["/contact/"])
        with FakeClose(org, faults=faults) as fake, _client(fake) as c:
            codes = [c.get("contact/", params={"_limit": 1}).status_code for _ in range(30)]
            assert all(c.get("lead/", params={"_limit": 1}).status_code == 200 for _ in range(5))
            return codes, faults.injected

    first, injected = run()
    second, _ = run()
    assert first == second
    assert sum(injected.values()) == sum(1 for x in first if x != 200) > 0
    assert set(first) <= {200, 500, 502, 429}


def test_request_log(org: FakeOrg) -> None:
    with FakeClose(org) as fake, _client(fake) as c:
        c.get("lead/", params={"_limit": 2, "_skip": 4})
        c.post("data/search/", json={"query": _lead_query(), "_limit": 1})
        log = fake.requests
        assert [(r.method, r.path, r.status) for r in log] == [
            ("GET", "/api/v1/lead/", 200),
            ("POST", "/api/v1/data/search/", 200),
        ]
        assert log[0].params == {"_limit": "2", "_skip": "4"} and log[0].endpoint == "/lead/"
        assert log[1].body["_limit"] == 1
        fake.reset_log()
        assert fake.requests == []


def test_keep_alive_reuses_one_connection(fake: FakeClose) -> None:
    conn = http.client.HTTPConnection(fake.host, fake.port, timeout=5)
    token = base64.b64encode(f"{fake.api_key}:".encode()).decode()
    socks = []
    for _ in range(3):
        conn.request("GET", "/api/v1/role/", headers={"authorization": f"Basic {token}"})
        resp = conn.getresponse()
        assert resp.status == 200 and orjson.loads(resp.read())["data"]
        socks.append(conn.sock)
    assert socks[0] is not None and socks[0] is socks[1] is socks[2]
    conn.close()


def test_stop_closes_the_server(org: FakeOrg) -> None:
    fake = FakeClose(org).start()
    url = fake.url("me/")
    with _client(fake) as c:
        assert c.get("me/").status_code == 200
        fake.stop()
        with pytest.raises(httpx.TransportError):
            httpx.get(url, auth=(fake.api_key, ""), timeout=2)


def test_non_admin_key_belongs_to_another_user(org: FakeOrg) -> None:
    with FakeClose(org, admin=False) as fake, _client(fake) as c:
        me = c.get("me/").json()
        assert me["id"] != org.admin_user_id
        assert c.get("send_as/", params={"allowing_user_id": org.admin_user_id}).status_code == 403


# -- generator ------------------------------------------------------------------------------------


def test_generation_is_deterministic() -> None:
    a = generate_org(seed=5, leads=20)
    b = generate_org(seed=5, leads=20)
    c = generate_org(seed=6, leads=20)
    dump = lambda x: orjson.dumps(x.collections, option=orjson.OPT_SORT_KEYS)  # noqa: E731
    assert dump(a) == dump(b) and a.organization_id == b.organization_id
    assert dump(a) != dump(c)


def test_same_seed_serves_identical_json() -> None:
    bodies = []
    for _ in range(2):
        with FakeClose(generate_org(seed=9, leads=15)) as fake, _client(fake) as c:
            bodies.append(
                (
                    c.get("lead/").content,
                    c.get("activity/emailthread/").content,
                    c.get("opportunity/").content,
                )
            )
    assert bodies[0] == bodies[1]


def test_generator_sizes_skew_ties_and_defaults() -> None:
    org = generate_org(
        seed=2,
        leads=200,
        notes_per_lead=100,
        activities_per_lead=1,
        contacts_per_lead=1,
        tasks_per_lead=0,
        opportunities_per_lead=0,
    )
    assert len(org.activities("Note")) == 20_000
    assert len(org.activities("Created")) == 200
    assert generate_org(seed=2, leads=3, per_lead={"call": 4}).activities("Call").__len__() == 12
    with pytest.raises(TypeError):
        generate_org(widgets_per_lead=3)
    default = generate_org()
    for name in o.COLLECTIONS:
        assert default.count(name) > 0, name
    for type_ in o.ACTIVITY_TYPES:
        assert default.activities(type_), type_
    for coll in (o.LEAD, o.CONTACT, o.OPPORTUNITY, o.TASK):
        stamps = Counter(x["date_created"] for x in default.all(coll))
        assert max(stamps.values()) >= 2, coll
    assert max(Counter(a["date_created"] for a in default.activities("Created")).values()) >= 2
