"""Copied names (`user_name`, `contact_name`, `pipeline_name`, ...) follow a rename of their
source silently with `labels="follow"`, keep the old text with `"frozen"`; the renames log
exactly the events Close documents for them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import changes as c
from close_fake import events as ev
from close_fake import org as o


@pytest.fixture()
def org() -> FakeOrg:
    """A fresh organisation per test: every test renames something."""
    return generate_org(seed=5, leads=30)


@contextmanager
def serve(org: FakeOrg) -> Iterator[httpx.Client]:
    with FakeClose(org, tick=False) as fake, httpx.Client(
        base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10
    ) as client:
        yield client


def naming(org: FakeOrg, user_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(collection, id) -> object, for every object with a `*_name` copy of the user."""
    out = {}
    for coll in o.COLLECTIONS:
        for obj in org.all(coll):
            if any(obj.get(k) == user_id and n in obj for k, n in c.USER_NAME_COPIES):
                out[(coll, obj["id"])] = obj
    return out


def busiest_user(org: FakeOrg) -> str:
    return max((u["id"] for u in org.all(o.USER)), key=lambda u: len(naming(org, u)))


def test_rename_user_follows_everywhere_silently(org: FakeOrg) -> None:
    user_id = busiest_user(org)
    before = naming(org, user_id)
    kinds = {(coll, n) for (coll, _), x in before.items()
             for k, n in c.USER_NAME_COPIES if x.get(k) == user_id and n in x}  # fmt: skip
    assert {(o.ACTIVITY, "user_name"), (o.ACTIVITY, "created_by_name"),
            (o.TASK, "assigned_to_name"), (o.OPPORTUNITY, "user_name")} <= kinds  # fmt: skip
    old_user = org.get(o.USER, user_id)
    assert old_user is not None
    user = c.rename_user(org, user_id, "Zora", "Quill")
    assert org.user_name(user_id) == "Zora Quill"
    assert user["date_updated"] > old_user["date_updated"]
    assert ev.events(org) == []  # users have no Event Log events
    after = naming(org, user_id)
    assert after.keys() == before.keys()
    for key, obj in after.items():
        for id_key, name_key in c.USER_NAME_COPIES:
            if obj.get(id_key) == user_id and name_key in obj:
                assert obj[name_key] == "Zora Quill", (key, name_key)
        assert obj.get("date_updated") == before[key].get("date_updated"), key
    with serve(org) as client:
        notes = client.get("activity/note/", params={"user_id": user_id}).json()["data"]
        assert notes and {a["user_name"] for a in notes} == {"Zora Quill"}
        members = client.get(f"organization/{org.organization_id}/").json()["memberships"]
        assert "Zora Quill" in {m["user_full_name"] for m in members}
    c.rename_user(org, user_id, last_name="Stone")
    assert org.user_name(user_id) == "Zora Stone"
    with pytest.raises(ValueError):
        c.rename_user(org, user_id)


def test_copies_made_after_a_rename_use_the_new_name(org: FakeOrg) -> None:
    user_id = org.admin_user_id
    c.rename_user(org, user_id, "Ada", "Admin")
    lead = org.all(o.LEAD)[0]
    note = c.create(org, o.ACTIVITY, {"_type": "Note", "lead_id": lead["id"], "note": "x"})
    assert note["user_name"] == note["created_by_name"] == "Ada Admin"


def test_frozen_labels_keep_every_old_copy(org: FakeOrg) -> None:
    ev.configure(org, labels="frozen")
    user_id = busiest_user(org)
    before = naming(org, user_id)
    c.rename_user(org, user_id, "Zora", "Quill")
    assert naming(org, user_id) == before
    opp = next(x for x in org.all(o.OPPORTUNITY) if x["contact_id"])
    c.rename_contact(org, opp["contact_id"], "Frozen Name")
    c.rename_pipeline(org, opp["pipeline_id"], "Frozen Pipe")
    kept = org.get(o.OPPORTUNITY, opp["id"])
    assert kept == opp


def test_rename_contact_follows_on_tasks_and_opportunities(org: FakeOrg) -> None:
    opp = next(x for x in org.all(o.OPPORTUNITY) if x["contact_id"])
    contact_id = opp["contact_id"]
    contact = org.get(o.CONTACT, contact_id)
    assert contact is not None and opp["contact_name"] == contact["name"]
    task = next(t for t in org.all(o.TASK) if t.get("lead_id") == opp["lead_id"])
    c.update(org, o.TASK, task["id"], contact_id=contact_id)
    task = org.get(o.TASK, task["id"])
    assert task is not None and task["contact_name"] == contact["name"]
    before = len(ev.events(org))
    renamed = c.rename_contact(org, contact_id, "Renata Renamed")
    assert renamed["display_name"] == "Renata Renamed"
    new = ev.events(org)[: len(ev.events(org)) - before]
    assert [(e.object_type, e.action, e.object_id) for e in new] == [
        ("contact", "updated", contact_id)
    ]
    assert "name" in new[0].changed_fields
    for coll, obj in ((o.OPPORTUNITY, opp), (o.TASK, task)):
        now = org.get(coll, obj["id"])
        assert now is not None and now["contact_name"] == "Renata Renamed"
        assert now["date_updated"] == obj["date_updated"]


def test_opportunity_contact_name_is_an_option(org: FakeOrg) -> None:
    assert all("contact_name" in x for x in org.all(o.OPPORTUNITY))
    ev.configure(org, opportunity_contact_name=False)
    assert not any("contact_name" in x for x in org.all(o.OPPORTUNITY))
    lead = next(x for x in org.all(o.LEAD) if org.children(o.CONTACT, "lead_id", x["id"]))
    contact = org.children(o.CONTACT, "lead_id", lead["id"])[0]
    plain = c.create(org, o.OPPORTUNITY, {"lead_id": lead["id"], "contact_id": contact["id"]})
    assert "contact_name" not in plain
    c.rename_contact(org, contact["id"], "Nobody Copies")
    assert "contact_name" not in (org.get(o.OPPORTUNITY, plain["id"]) or {})
    ev.configure(org, opportunity_contact_name=True)
    back = org.get(o.OPPORTUNITY, plain["id"])
    assert back is not None and back["contact_name"] == "Nobody Copies"
    assert list(back).index("contact_name") == list(back).index("contact_id") + 1
    opp = c.create(org, o.OPPORTUNITY, {"lead_id": lead["id"], "contact_id": contact["id"]})
    assert opp["contact_name"] == "Nobody Copies"
    other = c.create(org, o.CONTACT, {"lead_id": lead["id"], "name": "Other Person"})
    moved = c.update(org, o.OPPORTUNITY, opp["id"], contact_id=other["id"])
    assert moved["contact_name"] == "Other Person"
    assert c.update(org, o.OPPORTUNITY, opp["id"], contact_id=None)["contact_name"] is None


def test_rename_pipeline_follows_on_opportunities_without_events(org: FakeOrg) -> None:
    pipe = org.all(o.PIPELINE)[0]
    opps = [x for x in org.all(o.OPPORTUNITY) if x["pipeline_id"] == pipe["id"]]
    assert opps
    renamed = c.rename_pipeline(org, pipe["id"], "Enterprise")
    assert renamed["name"] == "Enterprise" and "+" not in renamed["date_updated"]
    assert ev.events(org) == []  # pipelines have no Event Log events
    for opp in opps:
        now = org.get(o.OPPORTUNITY, opp["id"])
        assert now is not None and now["pipeline_name"] == "Enterprise"
        assert now["date_updated"] == opp["date_updated"]
    others = [x for x in org.all(o.OPPORTUNITY) if x["pipeline_id"] != pipe["id"]]
    assert all(x["pipeline_name"] != "Enterprise" for x in others)
    with serve(org) as client:
        (listed,) = [p for p in client.get("pipeline/").json()["data"] if p["id"] == pipe["id"]]
        assert listed["name"] == "Enterprise"


def test_rename_sequence_logs_updated_and_follows_on_emails(org: FakeOrg) -> None:
    email = next(a for a in org.activities("Email") if a.get("sequence_id"))
    seq_id = email["sequence_id"]
    emails = [a for a in org.activities("Email") if a.get("sequence_id") == seq_id]
    c.rename_sequence(org, seq_id, "Renamed Sequence")
    (event,) = ev.events(org)
    assert (event.object_type, event.action, event.object_id) == ("sequence", "updated", seq_id)
    assert "name" in event.changed_fields and event.data is not None
    assert event.data["name"] == "Renamed Sequence"
    for a in emails:
        now = org.get(o.ACTIVITY, a["id"])
        assert now is not None and now["sequence_name"] == "Renamed Sequence"
        assert now["date_updated"] == a["date_updated"]
    with serve(org) as client:
        thread = client.get(f"activity/emailthread/{email['thread_id']}/").json()
        nested = [e for e in thread["emails"] if e["id"] == email["id"]]
        assert nested[0]["sequence_name"] == "Renamed Sequence"


def test_rename_email_template_logs_updated_and_follows_on_emails(org: FakeOrg) -> None:
    email = next(a for a in org.activities("Email") if a.get("template_id"))
    tmpl_id = email["template_id"]
    emails = [a for a in org.activities("Email") if a.get("template_id") == tmpl_id]
    c.rename_email_template(org, tmpl_id, "Renamed Template")
    (event,) = ev.events(org)
    assert (event.object_type, event.action) == ("email_template", "updated")
    assert event.previous_data is not None and event.previous_data["name"] != "Renamed Template"
    for a in emails:
        now = org.get(o.ACTIVITY, a["id"])
        assert now is not None and now["template_name"] == "Renamed Template"
        assert now["date_updated"] == a["date_updated"]
    with serve(org) as client:
        listed = client.get("activity/email/", params={"lead_id": email["lead_id"]}).json()
        (shown,) = [a for a in listed["data"] if a["id"] == email["id"]]
        assert shown["template_name"] == "Renamed Template"


def test_status_change_activities_keep_their_labels(org: FakeOrg) -> None:
    change = org.activities("OpportunityStatusChange")[0]
    status_id = change["new_status_id"]
    c.update(org, o.OPPORTUNITY_STATUS, status_id, label="Relabelled")
    kept = org.get(o.ACTIVITY, change["id"])
    assert kept == change and kept["new_status_label"] != "Relabelled"  # history
    opps = [x for x in org.all(o.OPPORTUNITY) if x["status_id"] == status_id]
    assert opps and all(x["status_label"] == "Relabelled" for x in opps)


def test_rename_functions_refuse_bad_input(org: FakeOrg) -> None:
    with pytest.raises(ValueError):
        c.rename_pipeline(org, org.all(o.PIPELINE)[0]["id"], " ")
    with pytest.raises(KeyError):
        c.rename_sequence(org, "seq_missing", "X")
    with pytest.raises(KeyError):
        c.rename_user(org, "user_missing", "X")
