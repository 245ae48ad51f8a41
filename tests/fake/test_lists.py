"""Fake Close list endpoints that behave like other plausible servers: undocumented filters
ignored (`undocumented_filters="ignore"`) and offset pages that shift while they are read
(`page_overlap`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import org as o
from close_fake.common import parse_moment


@pytest.fixture(scope="module")
def org() -> FakeOrg:
    return generate_org(seed=3, leads=40)


@contextmanager
def serve(org: FakeOrg, **options: Any) -> Iterator[httpx.Client]:
    with FakeClose(org, tick=False, **options) as fake, httpx.Client(
        base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10
    ) as client:
        yield client


def pages(client: httpx.Client, path: str, limit: int, **params: Any) -> list[list[dict]]:
    """Every page of a list, `_skip` moved on by the length of each page, until `has_more`
    is false."""
    out: list[list[dict]] = []
    skip = 0
    while True:
        r = client.get(path, params={**params, "_skip": skip, "_limit": limit})
        assert r.status_code == 200, r.text
        body = r.json()
        out.append(body["data"])
        if not body["has_more"]:
            return out
        skip += len(body["data"])
        assert len(out) < 1000


def ids(client: httpx.Client, path: str, **params: Any) -> list[str]:
    return [x["id"] for page in pages(client, path, 100, **params) for x in page]


# -- undocumented filters -------------------------------------------------------------------


def test_sms_template_is_archived_is_ignored_as_the_docs_do_not_list_it(org: FakeOrg) -> None:
    every = {t["id"] for t in org.all(o.SMS_TEMPLATE)}
    archived = {t["id"] for t in org.all(o.SMS_TEMPLATE) if t["is_archived"]}
    assert archived and archived != every
    with serve(org) as client:
        assert set(ids(client, "sms_template/", is_archived="true")) == archived
        assert set(ids(client, "sms_template/")) == every - archived
    with serve(org, undocumented_filters="ignore") as client:
        for value in ("true", "false", None):
            params = {} if value is None else {"is_archived": value}
            assert set(ids(client, "sms_template/", **params)) == every, value
        # Documented for email templates (Close API: Email Templates): still honoured.
        listed = ids(client, "email_template/", is_archived="true")
        assert listed and all(org.get(o.EMAIL_TEMPLATE, i)["is_archived"] for i in listed)  # type: ignore[index]


def test_contact_lead_id_and_status_pipeline_id_are_ignored(org: FakeOrg) -> None:
    lead_id = org.all(o.CONTACT)[0]["lead_id"]
    pipeline_id = org.all(o.PIPELINE)[0]["id"]
    with serve(org) as client:
        mine = ids(client, "contact/", lead_id=lead_id)
        assert mine and len(mine) < org.count(o.CONTACT)
        statuses = ids(client, "status/opportunity/", pipeline_id=pipeline_id)
        assert len(statuses) < org.count(o.OPPORTUNITY_STATUS)
    with serve(org, undocumented_filters="ignore") as client:
        assert len(ids(client, "contact/", lead_id=lead_id)) == org.count(o.CONTACT)
        got = ids(client, "status/opportunity/", pipeline_id=pipeline_id)
        assert len(got) == org.count(o.OPPORTUNITY_STATUS)


def test_activity_gte_lte_are_ignored_gt_lt_honoured(org: FakeOrg) -> None:
    notes = org.activities("Note")
    pivot = sorted(a["date_created"] for a in notes)[len(notes) // 2]
    t = parse_moment(pivot)
    newer = {a["id"] for a in notes if parse_moment(a["date_created"]) > t}
    at_or_after = {a["id"] for a in notes if parse_moment(a["date_created"]) >= t}
    with serve(org) as client:
        assert set(ids(client, "activity/note/", date_created__gte=pivot)) == at_or_after
    with serve(org, undocumented_filters="ignore") as client:
        assert len(ids(client, "activity/note/", date_created__gte=pivot)) == len(notes)
        assert len(ids(client, "activity/note/", date_created__lte=pivot)) == len(notes)
        assert set(ids(client, "activity/note/", date_created__gt=pivot)) == newer
        lead_id = notes[0]["lead_id"]
        generic = ids(client, "activity/", lead_id=lead_id, date_created__gte=pivot)
        assert len(generic) == len(ids(client, "activity/", lead_id=lead_id))


def test_undocumented_in_forms_are_ignored_documented_ones_kept(org: FakeOrg) -> None:
    opps = org.all(o.OPPORTUNITY)
    lead_id = opps[0]["lead_id"]
    with serve(org) as client:
        assert len(ids(client, "opportunity/", lead_id__in=lead_id)) < len(opps)
        assert len(ids(client, "task/", _type="all", view__in="archive")) < org.count(o.TASK)
    with serve(org, undocumented_filters="ignore") as client:
        assert len(ids(client, "opportunity/", lead_id__in=lead_id)) == len(opps)
        assert len(ids(client, "opportunity/", lead_id=lead_id)) < len(opps)
        # `status_type__in` is documented (Close API: Opportunities)
        won = ids(client, "opportunity/", status_type__in="won")
        assert won and len(won) == sum(x["status_type"] == "won" for x in opps)
        assert len(ids(client, "task/", _type="all", view__in="archive")) == org.count(o.TASK)
        some = ids(client, "task/", _type__in="missed_call,voicemail")
        assert some and all(
            org.get(o.TASK, i)["_type"] in ("missed_call", "voicemail") for i in some  # type: ignore[index]
        )
        task = org.all(o.TASK)[0]  # `id` is documented (Close API: Tasks)
        assert ids(client, "task/", _type="all", id=task["id"]) == [task["id"]]
        # Long filters in the body are parameters like any other.
        r = client.post(
            "contact/",
            headers={"x-http-method-override": "GET"},
            json={"_params": {"lead_id": lead_id, "_limit": 200}},
        )
        assert r.status_code == 200 and len(r.json()["data"]) == min(200, org.count(o.CONTACT))


def test_documented_refusals_stay_and_bad_options_fail(org: FakeOrg) -> None:
    with serve(org, undocumented_filters="ignore") as client:
        r = client.get("sequence_subscription/", params={"sequence_id__in": "seq_x"})
        assert r.status_code == 400  # the only filter given is unknown: none given
        assert client.get("opportunity/", params={"_group_by": "user_id"}).status_code == 400
        assert client.get("activity/", params={"_type": "Note"}).status_code == 400
    with pytest.raises(ValueError, match="undocumented_filters"):
        FakeClose(org, undocumented_filters="strict")
    with pytest.raises(ValueError, match="page_overlap"):
        FakeClose(org, page_overlap=-1)


# -- pages that shift -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "collection"), [
    ("lead/", {}, o.LEAD),
    ("contact/", {}, o.CONTACT),
    ("task/", {"_type": "all"}, o.TASK),
])  # fmt: skip
def test_page_overlap_repeats_the_end_of_each_page_and_misses_nothing(
    org: FakeOrg, path: str, params: dict[str, str], collection: str
) -> None:
    k, limit = 3, 10
    with serve(org) as client:
        plain = [x["id"] for page in pages(client, path, limit, **params) for x in page]
    with serve(org, page_overlap=k) as client:
        shifted = pages(client, path, limit, **params)
    assert len(shifted) > 2
    for before, page in zip(shifted, shifted[1:], strict=False):
        assert [x["id"] for x in page[:k]] == [x["id"] for x in before[-k:]]
    got = [x["id"] for page in shifted for x in page]
    assert len(got) == len(plain) + k * (len(shifted) - 1)
    assert set(got) == set(plain) == set(org.collections[collection])
    # In order: dropping the repeats gives the plain walk.
    deduped = [i for n, i in enumerate(got) if i not in got[:n]]
    assert deduped == plain


def test_page_overlap_per_endpoint_and_capped_below_the_limit(org: FakeOrg) -> None:
    with serve(org, page_overlap={"/lead/": 2}) as client:
        leads = [x["id"] for p in pages(client, "lead/", 10) for x in p]
        contacts = [x["id"] for p in pages(client, "contact/", 10) for x in p]
        assert len(leads) > len(set(leads)) == org.count(o.LEAD)
        assert len(contacts) == len(set(contacts)) == org.count(o.CONTACT)
        body = client.get("lead/", params={"_skip": 10, "_limit": 10}).json()
        assert body["total_results"] == org.count(o.LEAD)
    with serve(org, page_overlap=50) as client:  # more than a page: one new object per page
        walked = pages(client, "lead/", 5)
        assert all(len(p) == 5 for p in walked[:-1])
        assert {x["id"] for p in walked for x in p} == set(org.collections[o.LEAD])
        assert len(walked) == org.count(o.LEAD) - 4
