"""Tests of the fake's Event Log (`GET /event/`, `GET /event/{id}/`) and of the changes that
emit events (`close_fake.changes`, `mutations`, `churn.random_changes`), over HTTP."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from close_fake import EventSettings, FakeClose, FakeOrg, generate_org, random_changes
from close_fake import changes as c
from close_fake import events as ev
from close_fake import mutations as m
from close_fake import org as o

EVENT_KEYS = {
    "action", "api_key_id", "changed_fields", "data", "date_created", "date_updated", "id",
    "lead_id", "meta", "object_id", "object_type", "organization_id", "previous_data",
    "request_id", "user_id",
}  # fmt: skip
NAIVE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}000")
UNFILTERED = EventSettings(filters="unfiltered")


@pytest.fixture()
def org() -> FakeOrg:
    """A fresh small organisation per test: every test changes it."""
    return generate_org(seed=11, leads=12)


@contextmanager
def serve(org: FakeOrg, **kwargs: Any) -> Iterator[tuple[FakeClose, httpx.Client]]:
    kwargs.setdefault("tick", False)
    with (
        FakeClose(org, **kwargs) as fake,
        httpx.Client(base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10) as client,
    ):
        yield fake, client


def walk(client: httpx.Client, limit: int = 50, **params: Any) -> list[dict[str, Any]]:
    """Every event of a query, following `cursor_next` (filters re-sent each time)."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "_limit": limit}
        if cursor:
            query["_cursor"] = cursor
        r = client.get("event/", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"data", "cursor_next", "cursor_previous"}
        out.extend(body["data"])
        cursor = body["cursor_next"]
        if cursor is None:
            return out


def lead_with(org: FakeOrg, *, contacts: int = 1) -> dict[str, Any]:
    return next(
        lead
        for lead in org.all(o.LEAD)
        if len(org.children(o.CONTACT, "lead_id", lead["id"])) >= contacts
        and org.children(o.OPPORTUNITY, "lead_id", lead["id"])
    )


def order_key(e: dict[str, Any]) -> str:
    return e["date_updated"]


# -- shape -----------------------------------------------------------------------------------------


def test_created_event_has_the_documented_shape(org: FakeOrg) -> None:
    lead = lead_with(org)
    note = c.create(org, o.ACTIVITY, {"_type": "Note", "lead_id": lead["id"], "note": "Hi."})
    with serve(org) as (fake, client):
        body = client.get("event/", params={"object_id": note["id"], "action": "created"}).json()
        (event,) = body["data"]
        assert body["cursor_next"] is None and body["cursor_previous"] is None
        assert set(event) == EVENT_KEYS
        assert event["id"].startswith("ev_") and len(event["id"]) == 3 + 22
        assert event["request_id"].startswith("req_")
        assert event["object_type"] == "activity.note"
        assert event["object_id"] == note["id"] and event["lead_id"] == lead["id"]
        assert event["organization_id"] == org.organization_id
        assert event["user_id"] == org.admin_user_id and event["api_key_id"] is None
        assert event["changed_fields"] == [] and event["previous_data"] == {}
        assert event["meta"] == {"request_method": "POST", "request_path": "/api/v1/activity/note/"}
        # Naive UTC with millisecond precision, as the samples (Close API: Event Log).
        assert (
            NAIVE.fullmatch(event["date_created"])
            and event["date_updated"] == event["date_created"]
        )
        assert event["data"] == client.get(f"activity/note/{note['id']}/").json()
        assert client.get(f"event/{event['id']}/").json() == event
        assert client.get("event/ev_nope/").status_code == 404


def test_updated_event_lists_changed_fields_and_previous_values(org: FakeOrg) -> None:
    opp = org.all(o.OPPORTUNITY)[0]
    won = next(s for s in org.all(o.OPPORTUNITY_STATUS) if s["type"] == "won")
    if opp["status_id"] == won["id"]:
        opp = next(x for x in org.all(o.OPPORTUNITY) if x["status_id"] != won["id"])
    c.update(org, o.OPPORTUNITY, opp["id"], status_id=won["id"])
    with serve(org) as (_, client):
        events = walk(client, object_type="opportunity", object_id=opp["id"])
        (event,) = events
        now = client.get(f"opportunity/{opp['id']}/").json()
    assert event["action"] == "updated" and event["data"] == now
    # As in the webhook sample (Close API: Webhooks): status, confidence and date_updated changed.
    assert {"status_id", "status_label", "confidence", "date_updated"} <= set(
        event["changed_fields"]
    )
    assert event["changed_fields"] == sorted(event["changed_fields"])
    assert set(event["previous_data"]) == set(event["changed_fields"])
    for key in event["changed_fields"]:
        assert event["previous_data"][key] == opp.get(key)
    assert now["confidence"] == 100 and now["date_won"] == org.now.date().isoformat()


def test_a_lead_created_with_contacts_and_a_contact_added_later(org: FakeOrg) -> None:
    lead = c.create(org, o.LEAD, {"name": "Acme", "contacts": [{"name": "Ann"}, {"name": "Bo"}]})
    with serve(org) as (_, client):
        events = walk(client, lead_id=lead["id"])
        assert [(e["object_type"], e["action"]) for e in reversed(events)] == [
            ("lead", "created"),
            ("contact", "created"),
            ("contact", "created"),
        ]
        assert len({e["request_id"] for e in events}) == 1
        created = events[-1]["data"]
        assert [x["name"] for x in created["contacts"]] == ["Ann", "Bo"]
        assert created == client.get(f"lead/{lead['id']}/").json()
        created_acts = walk_list(client, "activity/created/", lead_id=lead["id"])
        assert len(created_acts) == 1  # a Created activity, which has no events
    org.advance(timedelta(minutes=10))
    contact = c.create(org, o.CONTACT, {"lead_id": lead["id"], "name": "Cy"})
    with serve(org) as (_, client):
        newest = walk(client, lead_id=lead["id"])[:2]
    assert [(e["object_type"], e["action"]) for e in newest] == [
        ("lead", "updated"),
        ("contact", "created"),
    ]
    assert newest[0]["changed_fields"] == ["contact_ids", "date_updated"]
    assert newest[0]["data"]["contact_ids"][-1] == contact["id"]


def test_nothing_but_bookkeeping_changed_is_no_event(org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    before = len(ev.events(org))
    assert c.update(org, o.LEAD, lead["id"], name=lead["name"]) == lead
    assert len(ev.events(org)) == before


# -- paging ----------------------------------------------------------------------------------------


def test_cursor_paging_returns_every_event_once_newest_first(org: FakeOrg) -> None:
    random_changes(org, random.Random(3), 80)
    stored = [e for e in ev.events(org) if e.object_type not in ev.UNDOCUMENTED_OBJECT_TYPES]
    with serve(org, events=UNFILTERED) as (_, client):
        for limit in (1, 7, 50):
            events = walk(client, limit=limit)
            assert [e["id"] for e in events] == [e.id for e in stored]
            assert [order_key(e) for e in events] == sorted(map(order_key, events), reverse=True)
        # Back with `cursor_previous` from the last page: the same pages, in reverse.
        pages, cursor = [], None
        while True:
            params: dict[str, Any] = {"_limit": 9, **({"_cursor": cursor} if cursor else {})}
            body = client.get("event/", params=params).json()
            pages.append(body)
            cursor = body["cursor_next"]
            if cursor is None:
                break
        assert pages[0]["cursor_previous"] is None
        back = pages[-1]["cursor_previous"]
        for expected in reversed(pages[:-1]):
            body = client.get("event/", params={"_limit": 9, "_cursor": back}).json()
            assert body["data"] == expected["data"]
            back = body["cursor_previous"]
        assert back is None


def test_limit_is_capped_at_50(org: FakeOrg) -> None:
    random_changes(org, random.Random(4), 40)
    with serve(org, events=UNFILTERED) as (_, client):
        assert len(client.get("event/", params={"_limit": 500}).json()["data"]) == 50
        assert len(client.get("event/").json()["data"]) == 50
        assert client.get("event/", params={"_limit": 0}).status_code == 400
        assert client.get("event/", params={"_cursor": "garbage!"}).status_code == 400
    strict = EventSettings(filters="unfiltered", over_limit="error", skip="error")
    with serve(org, events=strict) as (_, client):
        assert client.get("event/", params={"_limit": 51}).status_code == 400
        assert client.get("event/", params={"_skip": 50}).status_code == 400


def test_a_cursor_needs_the_same_filters_but_keeps_the_date_bounds(org: FakeOrg) -> None:
    random_changes(org, random.Random(5), 60)
    start = ev.events(org)[-1].date_created.replace(tzinfo=None).isoformat()
    query = {"object_type": "lead", "action": "updated", "date_updated__gt": start}
    with serve(org) as (_, client):
        everything = walk(client, limit=3, **query)
        assert everything and all(e["date_updated"] > start for e in everything)
        first = client.get("event/", params={**query, "_limit": 3}).json()
        assert first["cursor_next"]
        # Other filters than the query's: 400; without date_updated: the cursor keeps them.
        wrong = {"object_type": "contact", "action": "updated", "_cursor": first["cursor_next"]}
        assert client.get("event/", params=wrong).status_code == 400
        same = {"object_type": "lead", "action": "updated", "_cursor": first["cursor_next"]}
        page = client.get("event/", params={**same, "_limit": 3}).json()
        assert page["data"] == everything[3:6]
    with serve(org, events=EventSettings(cursor_filters="request")) as (_, client):
        wrong["_limit"] = "3"
        assert client.get("event/", params=wrong).status_code == 200


# -- filters ---------------------------------------------------------------------------------------


def test_filters_and_their_supported_combinations(org: FakeOrg) -> None:
    random_changes(org, random.Random(6), 120)
    stored = ev.events(org)
    lead_event = next(e for e in stored if e.object_type == "lead" and e.action == "updated")
    lead_id, user_id = lead_event.object_id, lead_event.user_id
    child = next(e for e in stored if e.lead_id and e.object_type != "lead")
    with serve(org) as (_, client):
        lead_events = walk(client, lead_id=lead_id)
        assert lead_events and all(e["lead_id"] == lead_id for e in lead_events)
        assert {e["id"] for e in lead_events} == {e.id for e in stored if e.lead_id == lead_id}
        # `object_id`: that object only, no related objects' events.
        only = walk(client, object_type="lead", object_id=lead_id)
        assert {e["object_id"] for e in only} == {lead_id}
        assert walk(client, lead_id=child.lead_id, object_type=child.object_type)
        by_user = walk(client, user_id=user_id)
        assert by_user and all(e["user_id"] == user_id for e in by_user)
        assert all(
            e["action"] == "deleted" and e["object_type"] == "contact"
            for e in walk(client, object_type="contact", action="deleted")
        )
        same_request = walk(client, request_id=lead_event.request_id)
        assert lead_event.id in {e["id"] for e in same_request}
        assert all(e["request_id"] == lead_event.request_id for e in same_request)
        for combo in (
            {"object_id": lead_id, "action": "updated"},
            {"lead_id": lead_id, "object_type": "lead", "action": "updated"},
            {"lead_id": lead_id, "user_id": user_id},
            {"lead_id": lead_id, "user_id": user_id, "object_type": "lead"},
            {"lead_id": lead_id, "user_id": user_id, "object_type": "lead", "action": "updated"},
            {"user_id": user_id, "object_id": lead_id},
            {"user_id": user_id, "object_id": lead_id, "action": "updated"},
            {"user_id": user_id, "object_type": "lead"},
            {"user_id": user_id, "object_type": "lead", "action": "updated"},
        ):
            r = client.get("event/", params={**combo, "date_updated__gte": "2020-01-01"})
            assert r.status_code == 200, combo
            for e in r.json()["data"]:
                assert all(e[k] == val for k, val in combo.items())
        for combo in (
            {},
            {"date_updated__gte": "2020-01-01"},
            {"object_type": "lead"},
            {"action": "deleted"},
            {"object_id": lead_id},
            {"lead_id": lead_id, "action": "updated"},
            {"request_id": lead_event.request_id, "user_id": user_id},
        ):
            r = client.get("event/", params=combo)
            assert r.status_code == 400, combo
            assert "Unsupported combination" in r.json()["error"]
    with serve(org, events=UNFILTERED) as (_, client):
        assert client.get("event/").status_code == 200
        assert client.get("event/", params={"object_type": "lead"}).status_code == 400
    with serve(org, events=EventSettings(filters="any")) as (_, client):
        everything = walk(client, object_type="lead")
        assert {e["object_type"] for e in everything} == {"lead"}


def test_date_updated_bounds(org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    for i in range(3):
        org.advance(timedelta(hours=1))
        c.update(org, o.LEAD, lead["id"], description=f"v{i}")
    stamps = [e["date_updated"] for e in reversed(walk_lead(org, lead["id"]))]
    assert len(stamps) == 3
    with serve(org) as (_, client):

        def count(**bounds: str) -> int:
            return len(walk(client, lead_id=lead["id"], **bounds))

        assert count(date_updated__gte=stamps[1]) == 2
        assert count(date_updated__gt=stamps[1]) == 1
        assert count(date_updated__lte=stamps[1]) == 2
        assert count(date_updated__lt=stamps[1]) == 1
        assert count(date_updated__gte=stamps[0] + "+00:00", date_updated__lt=stamps[2]) == 2
        bad = client.get("event/", params={"lead_id": lead["id"], "date_updated__gt": "soon"})
        assert bad.status_code == 400


def walk_lead(org: FakeOrg, lead_id: str) -> list[dict[str, Any]]:
    with serve(org) as (_, client):
        return walk(client, lead_id=lead_id)


# -- consolidation --------------------------------------------------------------------------------


def test_updates_by_one_user_are_consolidated(org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    users = [mb["user_id"] for mb in org.all(o.MEMBERSHIP)]
    c.update(org, o.LEAD, lead["id"], name="B", user_id=users[0])
    first = ev.events(org)[0]
    org.advance(timedelta(minutes=1))
    c.update(org, o.LEAD, lead["id"], name="C", description="new", user_id=users[0])
    with serve(org) as (_, client):
        (event,) = walk(client, object_type="lead", object_id=lead["id"])
        assert event["id"] == first.id
        assert event["date_created"] < event["date_updated"]
        # "data": the latest state; "previous_data": the earliest old values (Close API: Event
        # Log, Event consolidation).
        assert event["data"]["name"] == "C" and event["previous_data"]["name"] == lead["name"]
        assert event["previous_data"]["description"] == lead["description"]
        assert {"name", "description", "display_name"} <= set(event["changed_fields"])
        assert event["data"] == client.get(f"lead/{lead['id']}/").json()
    # Another user, or after the window: a new event.
    c.update(org, o.LEAD, lead["id"], name="D", user_id=users[1])
    org.advance(timedelta(minutes=6))
    c.update(org, o.LEAD, lead["id"], name="E", user_id=users[1])
    with serve(org) as (_, client):
        events = walk(client, object_type="lead", object_id=lead["id"])
    assert [e["data"]["name"] for e in events] == ["E", "D", "C"]
    assert [e["previous_data"]["name"] for e in events] == ["D", "C", lead["name"]]


def test_consolidation_moves_an_event_to_the_top_and_can_be_disabled(org: FakeOrg) -> None:
    a, b = org.all(o.LEAD)[:2]
    c.update(org, o.LEAD, a["id"], description="a1")
    c.update(org, o.LEAD, b["id"], description="b1")
    c.update(org, o.LEAD, a["id"], description="a2")
    with serve(org) as (_, client):
        events = walk(client, object_type="lead", action="updated")
    assert [e["object_id"] for e in events] == [a["id"], b["id"]]
    ev.configure(org, consolidation_window=None)
    c.update(org, o.LEAD, a["id"], description="a3")
    with serve(org) as (_, client):
        assert len(walk(client, object_type="lead", object_id=a["id"])) == 2


# -- clock, retention, visibility ------------------------------------------------------------------


def test_retention_is_30_days_on_the_org_clock(org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    c.update(org, o.LEAD, lead["id"], description="old")
    old = ev.events(org)[0]
    org.advance(timedelta(days=29, hours=23))
    c.update(org, o.LEAD, lead["id"], description="newer")
    with serve(org) as (_, client):
        assert len(walk(client, lead_id=lead["id"])) == 2
    org.advance(timedelta(hours=2))
    with serve(org) as (_, client):
        r = client.get("lead/")
        assert parsedate_to_datetime(r.headers["date"]) == org.clock().replace(microsecond=0)
        events = walk(client, lead_id=lead["id"])
        assert [e["data"]["description"] for e in events] == ["newer"]
        assert client.get(f"event/{old.id}/").status_code == 404


@pytest.mark.parametrize("skew", [timedelta(days=-40), timedelta(minutes=10)])
def test_date_skew_moves_only_the_date_header(org: FakeOrg, skew: timedelta) -> None:
    """A `Date` header behind (or ahead of) every other time the fake shows: events,
    objects and the Event Log's retention stay on the organisation's clock."""
    lead = org.all(o.LEAD)[0]
    c.update(org, o.LEAD, lead["id"], description="now")
    with serve(org, date_skew=skew) as (_, client):
        r = client.get(f"lead/{lead['id']}/")
        header = parsedate_to_datetime(r.headers["date"])
        assert header == (org.clock() + skew).replace(microsecond=0)
        (event,) = walk(client, lead_id=lead["id"])
        assert event["date_updated"][:19] == org.clock().strftime("%Y-%m-%dT%H:%M:%S")
        assert r.json()["date_updated"] == event["data"]["date_updated"]
    org.advance(timedelta(days=31))
    with serve(org, date_skew=skew) as (_, client):
        assert walk(client, lead_id=lead["id"]) == []  # 31 days on the org clock: gone


def test_the_server_date_follows_the_org_clock_when_ticking(org: FakeOrg) -> None:
    with serve(org, tick=True) as (_, client):
        before = parsedate_to_datetime(client.get("me/").headers["date"])
        org.advance(timedelta(days=3))
        after = parsedate_to_datetime(client.get("me/").headers["date"])
    assert timedelta(days=3) <= after - before < timedelta(days=3, seconds=30)


def test_non_admins_see_data_only_for_an_hour(org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    c.update(org, o.LEAD, lead["id"], description="x")
    with serve(org, admin=False) as (_, client):
        (event,) = walk(client, object_type="lead", object_id=lead["id"])
        assert event["data"]["description"] == "x" and event["previous_data"]
    org.advance(timedelta(minutes=61))
    with serve(org, admin=False) as (_, client):
        (event,) = walk(client, object_type="lead", object_id=lead["id"])
        assert "data" not in event and "previous_data" not in event
        assert set(event) == EVENT_KEYS - {"data", "previous_data"}
    hidden_null = EventSettings(hidden="null")
    with serve(org, admin=False, events=hidden_null) as (_, client):
        (event,) = walk(client, object_type="lead", object_id=lead["id"])
        assert event["data"] is None and event["previous_data"] is None
    with serve(org) as (_, client):
        (event,) = walk(client, object_type="lead", object_id=lead["id"])
        assert event["data"]["description"] == "x"
    # Age from date_updated: an event created 61 minutes ago and consolidated now is young.
    ev.configure(org, consolidation_window=timedelta(hours=2))
    c.update(org, o.LEAD, lead["id"], description="z")
    young = EventSettings(private_age="date_updated")
    with serve(org, admin=False, events=young) as (_, client):
        (event,) = walk(client, object_type="lead", object_id=lead["id"])
        assert event["data"]["description"] == "z"
    with serve(org, admin=False) as (_, client):
        (event,) = walk(client, object_type="lead", object_id=lead["id"])
        assert "data" not in event


def test_late_events_show_up_after_a_delay(org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    for i in range(3):
        c.update(org, o.LEAD, lead["id"], description=f"v{i}", user_id=None)
        org.advance(timedelta(minutes=10))
    late = EventSettings(late_every=3, late_by=timedelta(minutes=15))
    with serve(org, events=late) as (_, client):
        assert len(walk(client, lead_id=lead["id"])) == 2  # the third is not visible yet
        org.advance(timedelta(minutes=10))
        assert len(walk(client, lead_id=lead["id"])) == 3


# -- deletes and merges ----------------------------------------------------------------------------


def test_deleting_a_lead_deletes_its_children_with_events(org: FakeOrg) -> None:
    lead = lead_with(org)
    lead_id = lead["id"]
    children = {
        coll: {x["id"] for x in org.children(coll, "lead_id", lead_id)}
        for coll in (o.CONTACT, o.OPPORTUNITY, o.TASK, o.ACTIVITY)
    }
    created = {
        a["id"] for a in org.children(o.ACTIVITY, "lead_id", lead_id) if a["_type"] == "Created"
    }
    with serve(org) as (_, client):
        before = {
            "lead": client.get(f"lead/{lead_id}/").json(),
            **{cid: client.get(f"contact/{cid}/").json() for cid in children[o.CONTACT]},
        }
    c.delete(org, o.LEAD, lead_id)
    with serve(org) as (_, client):
        events = walk(client, lead_id=lead_id)
        assert client.get(f"lead/{lead_id}/").status_code == 404
        for cid in children[o.CONTACT]:
            assert client.get(f"contact/{cid}/").status_code == 404
    assert {e["action"] for e in events} == {"deleted"}
    assert len({e["request_id"] for e in events}) == 1
    assert events[0]["object_type"] == "lead", "the lead goes last (newest first)"
    deleted = {e["object_id"] for e in events}
    expected = set().union(*children.values()) - created | {lead_id}
    assert deleted == expected
    for e in events:
        assert e["data"] is None and e["changed_fields"] == []
        assert e["previous_data"]["id"] == e["object_id"]
    lead_event = events[0]
    assert lead_event["previous_data"] == before["lead"]
    for e in events:
        if e["object_type"] == "contact":
            assert e["previous_data"] == before[e["object_id"]]
    assert not org.children(o.ACTIVITY, "lead_id", lead_id)


def test_deleting_a_contact_updates_its_lead_and_subscriptions(org: FakeOrg) -> None:
    sub = org.all(o.SEQUENCE_SUBSCRIPTION)[0]
    contact = org.get(o.CONTACT, sub["contact_id"])
    assert contact is not None
    c.delete(org, o.CONTACT, contact["id"])
    with serve(org) as (_, client):
        events = walk(client, lead_id=contact["lead_id"])
        lead = client.get(f"lead/{contact['lead_id']}/").json()
        gone = client.get(f"sequence_subscription/{sub['id']}/")
    kinds = [(e["object_type"], e["action"]) for e in events]
    assert kinds[:2] == [("lead", "updated"), ("contact", "deleted")]
    assert events[0]["previous_data"]["contact_ids"] == lead["contact_ids"] + [contact["id"]]
    assert gone.status_code == 404
    assert org.get(o.SEQUENCE_SUBSCRIPTION, sub["id"]) is None
    subs = [e for e in ev.events(org) if e.object_type == "sequence_subscription"]
    assert [(e.object_id, e.action) for e in subs] == [(sub["id"], "deleted")]


def test_merge_moves_children_and_deletes_the_source(org: FakeOrg) -> None:
    source = lead_with(org)
    dest = next(x for x in org.all(o.LEAD) if x["id"] != source["id"])
    moved = {
        coll: {x["id"] for x in org.children(coll, "lead_id", source["id"])}
        for coll in (o.CONTACT, o.OPPORTUNITY, o.TASK, o.ACTIVITY)
    }
    c.merge_leads(org, source["id"], dest["id"])
    with serve(org) as (_, client):
        events = walk(client, lead_id=dest["id"]) + walk(client, lead_id=source["id"])
        assert client.get(f"lead/{source['id']}/").status_code == 404
        dest_now = client.get(f"lead/{dest['id']}/").json()
        contacts = {x["id"] for x in walk_list(client, "contact/", lead_id=dest["id"])}
    merge_meta = {
        "merge_source_lead_id": source["id"],
        "merge_destination_lead_id": dest["id"],
    }
    assert all(e["meta"].items() >= merge_meta.items() for e in events)
    assert events[0]["action"] == "merged" and events[0]["object_id"] == dest["id"]
    assert events[0]["data"] == dest_now and events[0]["lead_id"] == dest["id"]
    kinds = {(e["object_type"], e["action"], e["object_id"]) for e in events}
    assert ("lead", "deleted", source["id"]) in kinds
    assert ("lead", "updated", dest["id"]) in kinds
    for coll in (o.CONTACT, o.OPPORTUNITY, o.TASK, o.ACTIVITY):
        for object_id in moved[coll]:
            obj = org.get(coll, object_id)
            assert obj is not None and obj["lead_id"] == dest["id"]
            type_ = ev.object_type(coll, obj)
            if type_ is not None:
                assert (type_, "updated", object_id) in kinds
    assert moved[o.CONTACT] <= contacts
    assert set(dest_now["contact_ids"]) >= moved[o.CONTACT]


def walk_list(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    body = client.get(path, params={**params, "_limit": 100}).json()
    assert not body["has_more"]
    return body["data"]


# -- side effects of updates -----------------------------------------------------------------------


def test_completing_a_task_logs_the_documented_events(org: FakeOrg) -> None:
    task = next(t for t in org.all(o.TASK) if t["_type"] == "lead" and not t["is_complete"])
    c.update(org, o.TASK, task["id"], is_complete=True)
    (rq,) = {e.request_id for e in ev.events(org)}
    kinds = [(e.object_type, e.action) for e in reversed(ev.events(org))]
    assert kinds == [
        ("task.lead", "updated"),
        ("task.lead", "completed"),
        ("activity.task_completed", "created"),
        ("lead", "updated"),
    ]
    act_id = ev.events(org)[1].object_id
    org.advance(timedelta(minutes=10))
    c.update(org, o.TASK, task["id"], is_complete=False)
    newest = [(e.object_type, e.action, e.object_id) for e in ev.events(org)[:3]]
    assert ("activity.task_completed", "deleted", act_id) in newest
    assert org.get(o.ACTIVITY, act_id) is None and rq


def test_status_changes_make_consolidated_status_change_activities(org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    statuses = [s["id"] for s in org.all(o.LEAD_STATUS) if s["id"] != lead["status_id"]]
    c.update(org, o.LEAD, lead["id"], status_id=statuses[0])
    (act_id,) = {e.object_id for e in ev.events(org) if e.object_type.endswith("status_change")}
    act = org.get(o.ACTIVITY, act_id)
    assert act is not None and act["lead_id"] == lead["id"]
    assert act["old_status_id"] == lead["status_id"] and act["new_status_id"] == statuses[0]
    # The same user again, shortly after: the activity is rewritten (`updated`) ...
    c.update(org, o.LEAD, lead["id"], status_id=statuses[1])
    assert org.get(o.ACTIVITY, act["id"])["new_status_id"] == statuses[1]  # type: ignore[index]
    # ... and reverting to the old status deletes it (Close API: Event Log, List of events).
    c.update(org, o.LEAD, lead["id"], status_id=lead["status_id"])
    assert org.get(o.ACTIVITY, act["id"]) is None
    # The lead's three updates are one consolidated event, which moved up each time.
    kinds = [(e.object_type, e.action) for e in reversed(ev.events(org))]
    assert kinds == [
        ("activity.lead_status_change", "created"),
        ("activity.lead_status_change", "updated"),
        ("lead", "updated"),
        ("activity.lead_status_change", "deleted"),
    ]


def test_adding_and_deleting_an_email_changes_its_thread(org: FakeOrg) -> None:
    thread = org.activities("EmailThread")[0]
    emails = org.children(o.ACTIVITY, "thread_id", thread["id"])
    email = c.create(
        org,
        o.ACTIVITY,
        {"_type": "Email", "lead_id": thread["lead_id"], "thread_id": thread["id"],
         "subject": "Re: hi", "status": "draft"},
    )  # fmt: skip
    (thread_event,) = [e for e in ev.events(org) if e.object_id == thread["id"]]
    assert thread_event.action == "updated" and "n_emails" in thread_event.changed_fields
    assert thread_event.data is not None and thread_event.data["n_emails"] == len(emails) + 1
    c.update(org, o.ACTIVITY, email["id"], status="sent", user_id=None)
    assert ("activity.email", "sent") in {(e.object_type, e.action) for e in ev.events(org)}
    for e in [*emails, email]:
        c.delete(org, o.ACTIVITY, e["id"])
    assert org.get(o.ACTIVITY, thread["id"]) is None
    assert (ev.events(org)[0].object_id, ev.events(org)[0].action) == (thread["id"], "deleted")


def test_labels_follow_renames_silently_or_stay(org: FakeOrg) -> None:
    lead = lead_with(org)
    opp = org.children(o.OPPORTUNITY, "lead_id", lead["id"])[0]
    c.update(org, o.LEAD, lead["id"], name="Renamed Ltd")
    assert org.get(o.OPPORTUNITY, opp["id"])["lead_name"] == "Renamed Ltd"  # type: ignore[index]
    assert org.get(o.OPPORTUNITY, opp["id"])["date_updated"] == opp["date_updated"]  # type: ignore[index]
    assert not [e for e in ev.events(org) if e.object_id == opp["id"]]
    ev.configure(org, labels="frozen")
    c.update(org, o.LEAD, lead["id"], name="Frozen Ltd")
    assert org.get(o.OPPORTUNITY, opp["id"])["lead_name"] == "Renamed Ltd"  # type: ignore[index]


def test_touch_lead_moves_the_lead_silently(org: FakeOrg) -> None:
    lead = lead_with(org)
    opp = org.children(o.OPPORTUNITY, "lead_id", lead["id"])[0]
    ev.configure(org, touch_lead=True)
    c.update(org, o.OPPORTUNITY, opp["id"], note="changed")
    assert org.get(o.LEAD, lead["id"])["date_updated"] > lead["date_updated"]  # type: ignore[index]
    assert {e.object_type for e in ev.events(org)} == {"opportunity"}


# -- custom fields ---------------------------------------------------------------------------------


def test_custom_field_mutations_emit_custom_fields_events(org: FakeOrg) -> None:
    field = m.add_field(org, "lead", "Tier", "choices", choices=["Gold", "Silver"])
    lead = org.all(o.LEAD)[0]
    m.set_custom(org, o.LEAD, lead["id"], field["id"], "Gold")
    m.rename_choice(org, field["id"], "Gold", "Platinum")
    m.rename_field(org, field["id"], "Account tier")
    c.update(org, o.LEAD, lead["id"], {f"custom.{field['id']}": None})
    m.delete_field(org, field["id"])
    type_id = org.all(o.CUSTOM_ACTIVITY_TYPE)[0]["id"]
    m.add_field(org, "activity", "Score", "number", custom_activity_type_id=type_id)
    m.add_field(org, "opportunity", "Deal size", "number")
    with serve(org) as (_, client):
        fields = walk(client, object_type="custom_fields.lead", object_id=field["id"])
        lead_events = walk(client, object_type="lead", object_id=lead["id"])
        types = walk(client, object_type="custom_activity_type", action="updated")
        activity_fields = walk(client, object_type="custom_fields.activity", action="created")
        hidden = walk(client, object_type="custom_fields.opportunity", action="created")
    assert [e["action"] for e in fields] == ["deleted", "updated", "created"]
    updated = fields[1]
    assert updated["data"]["name"] == "Account tier" and updated["data"]["choices"][0] == "Platinum"
    assert updated["previous_data"]["choices"] == ["Gold", "Silver"]
    assert fields[0]["previous_data"]["name"] == "Account tier" and fields[0]["data"] is None
    (lead_event,) = lead_events  # set, then cleared: one consolidated event
    key = f"custom.{field['id']}"
    assert key in lead_event["changed_fields"] and key not in lead_event["data"]
    assert lead_event["previous_data"][key] is None
    assert len(types) == 1 and types[0]["object_id"] == type_id
    assert "Score" in {f["name"] for f in types[0]["data"]["fields"]}
    assert len(activity_fields) == 1 and hidden == []
    with serve(org, events=EventSettings(undocumented=True)) as (_, client):
        assert len(walk(client, object_type="custom_fields.opportunity", action="created")) == 1


def test_http_writes_carry_the_api_key_id_and_path(org: FakeOrg) -> None:
    with serve(org) as (fake, client):
        r = client.post("custom_field/contact/", json={"name": "Nickname", "type": "text"})
        assert r.status_code == 200, r.text
        field_id = r.json()["id"]
        (event,) = walk(client, object_type="custom_fields.contact", object_id=field_id)
    assert event["api_key_id"] == fake.api_key_id and event["api_key_id"].startswith("apikey_")
    assert event["meta"] == {
        "request_method": "POST",
        "request_path": "/api/v1/custom_field/contact/",
    }
    assert event["user_id"] == fake.user_id and event["data"]["name"] == "Nickname"


# -- settings --------------------------------------------------------------------------------------


def test_spellings_dates_and_lead_data_settings(org: FakeOrg) -> None:
    lead = lead_with(org)
    c.create(org, o.ACTIVITY, {"_type": "Note", "lead_id": lead["id"], "note": "x"})
    c.update(org, o.LEAD, lead["id"], description="y")
    settings = EventSettings(object_types=ev.SAMPLE_SPELLINGS, dates="utc", lead_data="flat")
    with serve(org, events=settings) as (_, client):
        (note,) = walk(client, lead_id=lead["id"], object_type="note")
        assert note["object_type"] == "note"
        assert walk(client, lead_id=lead["id"], object_type="activity.note") == []
        assert note["date_created"].endswith("+00:00")
        (lead_event,) = walk(client, lead_id=lead["id"], object_type="lead")
        assert "contacts" not in lead_event["data"] and "contact_ids" in lead_event["data"]
    with pytest.raises(ValueError, match="filters"):
        EventSettings(filters="all")


# -- random changes --------------------------------------------------------------------------------


def test_random_changes_are_deterministic() -> None:
    a, b = generate_org(seed=2, leads=15), generate_org(seed=2, leads=15)
    done_a = random_changes(a, random.Random(9), 120)
    done_b = random_changes(b, random.Random(9), 120)
    assert done_a == done_b and len(done_a) == 120
    assert a.collections == b.collections
    assert ev.events(a) == ev.events(b)
    kinds = {line.split()[0] for line in done_a}
    assert {"create_lead", "update_lead", "set_custom", "create_activity"} <= kinds


# Object types whose events' data is what the list endpoint shows.
LIST_OF = {
    "lead": "lead/",
    "contact": "contact/",
    "opportunity": "opportunity/",
    "status.lead": "status/lead/",
    "custom_fields.lead": "custom_field/lead/",
    "custom_fields.contact": "custom_field/contact/",
    "custom_fields.activity": "custom_field/activity/",
    **{f"task.{t}": "task/?_type=all" for t in o.TASK_TYPES},
    **{t: f"activity/{ev.ACTIVITY_SEGMENTS[k]}/" for k, t in ev.ACTIVITY_OBJECT_TYPES.items()},
}


@pytest.mark.parametrize("seed", [1, 2])
def test_lists_after_random_changes_equal_the_events_data(seed: int) -> None:
    org = generate_org(seed=seed, leads=20)
    ev.configure(org, labels="frozen")
    rng = random.Random(seed)
    for _ in range(3):
        random_changes(org, rng, 60, step=timedelta(minutes=2))
        with serve(org, events=UNFILTERED) as (_, client):
            latest: dict[tuple[str, str], dict[str, Any]] = {}
            for event in reversed(walk(client)):  # oldest first: the latest wins
                latest[(event["object_type"], event["object_id"])] = event
            listed: dict[str, dict[str, dict[str, Any]]] = {}
            for path in set(LIST_OF.values()):
                url = path if "?" in path else path + "?"
                body = client.get(url + "&_limit=100").json()
                objs = body["data"]
                skip = 100
                while body.get("has_more"):
                    body = client.get(url + f"&_limit=100&_skip={skip}").json()
                    objs += body["data"]
                    skip += 100
                listed[path] = {x["id"]: x for x in objs}
        checked = 0
        for (type_, object_id), event in latest.items():
            path = LIST_OF.get(type_)
            if path is None:
                continue
            found = listed[path].get(object_id)
            if event["action"] == "deleted":
                assert found is None, (type_, object_id)
                continue
            assert found is not None, (type_, object_id, event["action"])
            data = dict(event["data"])
            if type_ == "lead":  # nested lists are not kept fresh by lead events
                for key in ("contacts", "opportunities", "tasks"):
                    data.pop(key)
                    found = {k: val for k, val in found.items() if k != key}
            if type_ == "contact":
                data.pop("lead_id")  # the contact list shows no lead_id
            assert found == data, (type_, object_id)
            checked += 1
        assert checked > 50


def test_snapshot_keeps_the_events_of_its_instant(org: FakeOrg) -> None:
    c.update(org, o.LEAD, org.all(o.LEAD)[0]["id"], description="one")
    frozen = org.snapshot()
    c.update(org, o.LEAD, org.all(o.LEAD)[1]["id"], description="two")
    assert len(ev.events(frozen)) == 1 and len(ev.events(org)) == 2


def test_indexes_kept_up_to_date_equal_fresh_ones() -> None:
    org = generate_org(seed=4, leads=15)
    keys = [(o.CONTACT, "lead_id"), (o.OPPORTUNITY, "lead_id"), (o.TASK, "lead_id"),
            (o.ACTIVITY, "lead_id"), (o.ACTIVITY, "thread_id"), (o.ACTIVITY, "_type"),
            (o.LEAD, "status_id"), (o.SEQUENCE_SUBSCRIPTION, "contact_id")]  # fmt: skip
    for coll, key in keys:  # build the indexes first, so the changes maintain them
        org.children(coll, key, "-")
    random_changes(org, random.Random(8), 150, weights={"rename_status": 2})
    fresh = org.snapshot()  # same objects, indexes built from scratch
    for coll, key in keys:
        values = {x.get(key) for x in org.all(coll)} | {"-"}
        for value in values:
            assert org.children(coll, key, value) == fresh.children(coll, key, value)
            assert [x["id"] for x in org.children(coll, key, value)] == [
                x["id"] for x in fresh.children(coll, key, value)
            ]
