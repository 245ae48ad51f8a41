"""The renames of statuses and pipelines over HTTP (`PUT /status/lead/{id}/`,
`PUT /status/opportunity/{id}/`, `PUT /pipeline/{id}/`): the documented answers, the events
Close documents (a status's own `updated`; pipelines none), and every copy following
silently (no event, no `date_updated` on the leads and opportunities naming them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import events as ev
from close_fake import org as o


@pytest.fixture()
def org() -> FakeOrg:
    return generate_org(seed=7, leads=30)


@pytest.fixture()
def served(org: FakeOrg) -> Iterator[tuple[FakeClose, httpx.Client]]:
    with FakeClose(org, tick=False) as fake, httpx.Client(
        base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10
    ) as client:
        yield fake, client


def listed(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    return client.get(path, params={"_limit": 100, **params}).json()["data"]


def status_named(org: FakeOrg, collection: str, label: str) -> dict[str, Any]:
    return next(s for s in org.all(collection) if s["label"] == label)


def test_an_opportunity_status_rename_logs_its_own_update_and_relabels_silently(
    org: FakeOrg, served: tuple[FakeClose, httpx.Client]
) -> None:
    fake, client = served
    won = status_named(org, o.OPPORTUNITY_STATUS, "Won")
    before = {x["id"]: x for x in listed(client, "opportunity/") if x["status_id"] == won["id"]}
    assert before
    answer = client.put(f"status/opportunity/{won['id']}/", json={"label": "Closed Won"})
    assert answer.status_code == 200
    assert answer.json() == {**won, "label": "Closed Won"}  # id, label, type, pipeline_id, org
    (event,) = ev.events(org)
    assert (event.object_type, event.action, event.object_id) == (
        "status.opportunity", "updated", won["id"])  # fmt: skip
    assert event.changed_fields == ("label",) and event.previous_data == {"label": "Won"}
    assert event.meta["request_method"] == "PUT"
    assert event.meta["request_path"] == f"/api/v1/status/opportunity/{won['id']}/"
    assert event.api_key_id == fake.api_key_id and event.lead_id is None
    after = {x["id"]: x for x in listed(client, "opportunity/") if x["status_id"] == won["id"]}
    assert after.keys() == before.keys()
    for opp_id, opp in after.items():
        assert opp["status_label"] == "Closed Won"
        assert opp["date_updated"] == before[opp_id]["date_updated"]
    assert {s["id"]: s["label"] for s in listed(client, "status/opportunity/")}[won["id"]] == (
        "Closed Won")  # fmt: skip
    nested = {s["id"]: s["label"] for p in listed(client, "pipeline/") for s in p["statuses"]}
    assert nested[won["id"]] == "Closed Won"


def test_a_lead_status_rename_logs_its_own_update_and_relabels_the_leads(
    org: FakeOrg, served: tuple[FakeClose, httpx.Client]
) -> None:
    _, client = served
    status = org.all(o.LEAD_STATUS)[0]
    leads = {x["id"]: x["date_updated"] for x in org.all(o.LEAD) if x["status_id"] == status["id"]}
    assert leads
    answer = client.put(f"status/lead/{status['id']}/", json={**status, "label": "Renamed"})
    assert answer.status_code == 200 and answer.json()["label"] == "Renamed"
    (event,) = ev.events(org)
    assert (event.object_type, event.action) == ("status.lead", "updated")
    shown = {x["id"]: x for x in listed(client, "lead/") if x["id"] in leads}
    assert {x["status_label"] for x in shown.values()} == {"Renamed"}
    assert {k: x["date_updated"] for k, x in shown.items()} == leads


def test_a_pipeline_rename_logs_nothing_and_renames_its_opportunities(
    org: FakeOrg, served: tuple[FakeClose, httpx.Client]
) -> None:
    _, client = served
    pipe = org.all(o.PIPELINE)[0]
    answer = client.put(f"pipeline/{pipe['id']}/", json={"name": "Enterprise"}).json()
    assert answer["name"] == "Enterprise" and answer["date_updated"] > pipe["date_updated"]
    assert [s["id"] for s in answer["statuses"]] == [
        s["id"] for s in org.children(o.OPPORTUNITY_STATUS, "pipeline_id", pipe["id"])]  # fmt: skip
    assert ev.events(org) == []
    names = {x["pipeline_name"] for x in listed(client, "opportunity/")
             if x["pipeline_id"] == pipe["id"]}  # fmt: skip
    assert names == {"Enterprise"}


def test_a_pipeline_reorders_its_statuses_and_takes_one_from_another(
    org: FakeOrg, served: tuple[FakeClose, httpx.Client]
) -> None:
    _, client = served
    sales, renewals = org.all(o.PIPELINE)
    own = [s["id"] for s in org.children(o.OPPORTUNITY_STATUS, "pipeline_id", sales["id"])]
    answer = client.put(f"pipeline/{sales['id']}/",
                        json={"statuses": [{"id": s} for s in own[::-1]]}).json()  # fmt: skip
    assert [s["id"] for s in answer["statuses"]] == own[::-1]
    assert [s["id"] for s in listed(client, "pipeline/")[0]["statuses"]] == own[::-1]

    churned = status_named(org, o.OPPORTUNITY_STATUS, "Churned")
    moving = {x["id"]: x for x in org.all(o.OPPORTUNITY) if x["status_id"] == churned["id"]}
    assert moving
    order = [own[0], churned["id"], *own[1:]]
    answer = client.put(f"pipeline/{sales['id']}/",
                        json={"statuses": [{"id": s} for s in order]}).json()  # fmt: skip
    assert [s["id"] for s in answer["statuses"]] == order
    assert churned["id"] not in {s["id"] for s in listed(client, "pipeline/")[1]["statuses"]}
    assert ev.events(org) == []  # no status label changed
    shown = {x["id"]: x for x in listed(client, "opportunity/") if x["id"] in moving}
    for opp_id, opp in shown.items():
        assert (opp["pipeline_id"], opp["pipeline_name"]) == (sales["id"], sales["name"])
        assert opp["date_updated"] == moving[opp_id]["date_updated"]
    moved = {s["id"]: s for s in listed(client, "status/opportunity/")}[churned["id"]]
    assert moved["pipeline_id"] == sales["id"] and renewals["id"] != sales["id"]


@pytest.mark.parametrize(("path", "body", "status"), [
    ("status/opportunity/stat_missing/", {"label": "X"}, 404),
    ("status/opportunity/{opp_status}/", {"label": " "}, 400),
    ("status/opportunity/{opp_status}/", {"type": "lost"}, 400),
    ("status/opportunity/{opp_status}/", {}, 400),
    ("status/lead/{lead_status}/", ["Renamed"], 400),
    ("pipeline/pipe_missing/", {"name": "X"}, 404),
    ("pipeline/{pipeline}/", {}, 400),
    ("pipeline/{pipeline}/", {"statuses": ["stat_x"]}, 400),
    ("pipeline/{pipeline}/", {"statuses": [{"id": "stat_missing"}]}, 400),
])  # fmt: skip
def test_bad_writes_are_refused_and_change_nothing(
    org: FakeOrg, served: tuple[FakeClose, httpx.Client], path: str, body: Any, status: int
) -> None:
    _, client = served
    ids = {"opp_status": org.all(o.OPPORTUNITY_STATUS)[0]["id"],
           "lead_status": org.all(o.LEAD_STATUS)[0]["id"], "pipeline": org.all(o.PIPELINE)[0]["id"]}
    before = {coll: org.all(coll) for coll in (o.OPPORTUNITY_STATUS, o.LEAD_STATUS, o.PIPELINE)}
    assert client.put(path.format(**ids), json=body).status_code == status
    assert {coll: org.all(coll) for coll in before} == before
    assert ev.events(org) == []
