"""Tests of the fake's custom-field mutation hooks (`close_fake.mutations`) and the
`POST/PUT/DELETE /custom_field/{kind}/...` routes, checked through what the API returns."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from close_fake import ExportSettings, FakeClose, FakeOrg, generate_org
from close_fake import mutations as m
from close_fake import org as o


@pytest.fixture()
def org() -> FakeOrg:
    """A fresh small organisation per test: every test mutates it."""
    return generate_org(seed=5, leads=12)


@contextmanager
def serve(org: FakeOrg, **kwargs: Any) -> Iterator[tuple[FakeClose, httpx.Client]]:
    with (
        FakeClose(org, **kwargs) as fake,
        httpx.Client(base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10) as client,
    ):
        yield fake, client


def field(org: FakeOrg, collection: str, name: str) -> dict[str, Any]:
    return next(f for f in org.all(collection) if f["name"] == name)


def holders(org: FakeOrg, collection: str, field_id: str) -> list[dict[str, Any]]:
    return [x for x in org.all(collection) if f"custom.{field_id}" in x]


def leads_by_id(client: httpx.Client) -> dict[str, dict]:
    body = client.get("lead/", params={"_limit": 200}).json()
    assert not body["has_more"]
    return {lead["id"]: lead for lead in body["data"]}


def custom_type(client: httpx.Client, type_id: str) -> dict:
    r = client.get(f"custom_activity/{type_id}/")
    assert r.status_code == 200, r.text
    return r.json()


# -- lookups and creation -------------------------------------------------------------------------


def test_field_collection_finds_every_kind_and_raises_for_unknown_ids(org: FakeOrg) -> None:
    for kind, collection in m.FIELD_COLLECTIONS.items():
        for definition in org.all(collection):
            assert m.field_collection(org, definition["id"]) == collection, kind
    with pytest.raises(KeyError):
        m.field_collection(org, "cf_nope")


def test_add_field_matches_the_generated_shapes(org: FakeOrg) -> None:
    generated = {kind: org.all(coll)[0] for kind, coll in m.FIELD_COLLECTIONS.items()}
    type_id = org.all(o.CUSTOM_ACTIVITY_TYPE)[0]["id"]
    made = {
        "lead": m.add_field(org, "lead", "Tier", "text", description="Account tier"),
        "contact": m.add_field(
            org, "contact", "Seniority", "choices", choices=["Junior", "Senior"]
        ),
        "opportunity": m.add_field(org, "opportunity", "Champions", "contact", multi=True),
        "shared": m.add_field(org, "shared", "Owner", "user", associations=["lead", "contact"]),
        "activity": m.add_field(
            org, "activity", "Score", "number", custom_activity_type_id=type_id, required=True
        ),
    }
    for kind, definition in made.items():
        want = set(generated[kind]) - {"choices"}
        if definition["type"] == "choices":
            want.add("choices")
        assert set(definition) == want, kind
        assert definition["id"].startswith("cf_")
        assert definition["created_by"] == definition["updated_by"] == org.admin_user_id
        assert definition["organization_id"] == org.organization_id
        assert m.field_collection(org, definition["id"]) == m.FIELD_COLLECTIONS[kind]
    assert ("editable_with_roles" in made["lead"]) is False
    assert made["shared"]["associations"] == [
        {"object_type": t, "custom_activity_type_id": None, "editable_with_roles": [],
         "required": False} for t in ("lead", "contact")
    ]  # fmt: skip
    assert made["activity"]["required"] is True
    # Deterministic ids: the same org + the same calls give the same ids.
    again = generate_org(seed=5, leads=12)
    assert m.add_field(again, "lead", "Tier", "text")["id"] == made["lead"]["id"]

    with serve(org) as (_fake, client):
        listed = client.get("custom_field/lead/").json()["data"]
        assert listed[-1] == made["lead"]
        schema = client.get("custom_field_schema/contact/").json()["fields"]
        assert {f["id"]: f["is_shared"] for f in schema}[made["shared"]["id"]] is True
        assert made["activity"]["id"] in {f["id"] for f in custom_type(client, type_id)["fields"]}


@pytest.mark.parametrize(
    ("kind", "type_", "kwargs", "message"),
    [
        ("lead", "money", {}, "Invalid custom field type"),
        ("lead", "text", {"multi": True}, "cannot accept multiple values"),
        ("lead", "choices", {}, "need `choices`"),
        ("lead", "text", {"choices": ["a"]}, "only apply to fields of type 'choices'"),
        ("lead", "text", {"description": "x" * 281}, "at most 280"),
        ("activity", "text", {}, "custom_activity_type_id"),
        ("activity", "text", {"custom_activity_type_id": "actitype_nope"}, "Unknown custom"),
        ("shared", "text", {}, "associations"),
        ("shared", "text", {"associations": ["task"]}, "Invalid association"),
        ("lead", "text", {"associations": ["lead"]}, "only apply to shared fields"),
        ("task", "text", {}, "Invalid kind"),
    ],
)
def test_add_field_rejects_invalid_input(
    org: FakeOrg, kind: str, type_: str, kwargs: dict, message: str
) -> None:
    version = org.version
    with pytest.raises(ValueError, match=message):
        m.add_field(org, kind, "Name", type_, **kwargs)
    assert org.version == version


def test_adding_and_deleting_activity_fields_shows_on_the_custom_activity_type(
    org: FakeOrg,
) -> None:
    type_ = org.all(o.CUSTOM_ACTIVITY_TYPE)[2]
    existing = org.children(o.CUSTOM_FIELD_ACTIVITY, "custom_activity_type_id", type_["id"])
    added = m.add_field(org, "activity", "Next Step", "text", custom_activity_type_id=type_["id"])
    with serve(org) as (_fake, client):
        shown = custom_type(client, type_["id"])
        assert [f["id"] for f in shown["fields"]] == [f["id"] for f in existing] + [added["id"]]
        assert shown["fields"][-1] == {
            "accepts_multiple_values": False, "converting_to_type": None, "description": None,
            "editable_with_roles": [], "id": added["id"], "name": "Next Step",
            "required": False, "type": "text",
        }  # fmt: skip
        # Adding a field updates the type (Close API: Event Log); naive format kept.
        assert shown["date_updated"] > type_["date_updated"]
        assert "+" not in shown["date_updated"]
        victim = existing[0]
        instances = holders(org, o.ACTIVITY, victim["id"])
        assert instances
        m.delete_field(org, victim["id"])
        shown = custom_type(client, type_["id"])
        assert victim["id"] not in {f["id"] for f in shown["fields"]}
        for act in instances:
            body = client.get(f"activity/custom/{act['id']}/").json()
            assert f"custom.{victim['id']}" not in body
            assert body["date_updated"] == act["date_updated"]  # definition change only
        listed = client.get("activity/custom/", params={"_limit": 200}).json()["data"]
        assert not any(f"custom.{victim['id']}" in a for a in listed)


# -- rename, delete -------------------------------------------------------------------------------


def test_rename_field_changes_the_definition_only(org: FakeOrg) -> None:
    target = field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")
    leads = {lead["id"]: lead for lead in org.all(o.LEAD)}
    version = org.version
    renamed = m.rename_field(org, target["id"], "Source of Lead")
    assert renamed["name"] == "Source of Lead"
    assert renamed["date_updated"] > target["date_updated"]
    assert all(org.get(o.LEAD, lead_id) is lead for lead_id, lead in leads.items())
    assert org.version > version
    with serve(org) as (_fake, client):
        shown = client.get(f"custom_field/lead/{target['id']}/").json()
        assert shown["name"] == "Source of Lead"
        assert {k: v for k, v in shown.items() if k not in ("name", "date_updated")} == {
            k: v for k, v in target.items() if k not in ("name", "date_updated")
        }
    again = m.rename_field(org, target["id"], "Again")
    assert again["date_updated"] > renamed["date_updated"]  # always moves forward
    with pytest.raises(ValueError):
        m.rename_field(org, target["id"], "  ")


def test_delete_field_removes_values_everywhere(org: FakeOrg) -> None:
    lead_field = field(org, o.CUSTOM_FIELD_LEAD, "Industry")
    shared = field(org, o.CUSTOM_FIELD_SHARED, "Region")
    lead_holders = holders(org, o.LEAD, lead_field["id"])
    contact_holders = holders(org, o.CONTACT, shared["id"])
    assert lead_holders and contact_holders and holders(org, o.LEAD, shared["id"])
    removed = m.delete_field(org, lead_field["id"])
    assert removed == lead_field
    m.delete_field(org, shared["id"])
    with pytest.raises(KeyError):
        m.delete_field(org, shared["id"])
    with serve(org) as (_fake, client):
        assert client.get(f"custom_field/lead/{lead_field['id']}/").status_code == 404
        assert lead_field["id"] not in {
            f["id"] for f in client.get("custom_field/lead/").json()["data"]
        }
        for lead in lead_holders:
            body = client.get(f"lead/{lead['id']}/").json()
            assert f"custom.{lead_field['id']}" not in body
            assert body["date_updated"] == lead["date_updated"]
        for lead in leads_by_id(client).values():
            assert not {f"custom.{lead_field['id']}", f"custom.{shared['id']}"} & set(lead)
            for contact in lead["contacts"]:
                assert f"custom.{shared['id']}" not in contact
        for contact in contact_holders:
            assert f"custom.{shared['id']}" not in client.get(f"contact/{contact['id']}/").json()
        schema = client.get("custom_field_schema/lead/").json()["fields"]
        assert shared["id"] not in {f["id"] for f in schema}


# -- retyping -------------------------------------------------------------------------------------


def test_single_to_multi_wraps_and_multi_to_single_keeps_the_first(org: FakeOrg) -> None:
    industry = field(org, o.CUSTOM_FIELD_LEAD, "Industry")
    products = field(org, o.CUSTOM_FIELD_LEAD, "Products")
    before = {x["id"]: x[f"custom.{industry['id']}"] for x in holders(org, o.LEAD, industry["id"])}
    lists = {x["id"]: x[f"custom.{products['id']}"] for x in holders(org, o.LEAD, products["id"])}
    assert any(len(v) > 1 for v in lists.values())
    updated = m.update_field(org, industry["id"], multi=True)
    assert updated["accepts_multiple_values"] is True
    m.update_field(org, products["id"], multi=False)
    with serve(org) as (_fake, client):
        leads = leads_by_id(client)
        for lead_id, value in before.items():
            assert leads[lead_id][f"custom.{industry['id']}"] == [value]
        for lead_id, value in lists.items():
            assert leads[lead_id][f"custom.{products['id']}"] == value[0]
        shown = client.get(f"custom_field/lead/{products['id']}/").json()
        assert shown["accepts_multiple_values"] is False and "converting_to_type" not in shown


def test_number_and_text_conversions(org: FakeOrg) -> None:
    employees = field(org, o.CUSTOM_FIELD_LEAD, "Employees")
    arr = field(org, o.CUSTOM_FIELD_LEAD, "ARR Estimate")
    source = field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")
    leads = org.all(o.LEAD)
    m.set_custom(org, o.LEAD, leads[0]["id"], arr["id"], 1234.0)
    m.set_custom(org, o.LEAD, leads[1]["id"], arr["id"], 99.5)
    m.set_custom(org, o.LEAD, leads[2]["id"], source["id"], " 42 ")
    m.set_custom(org, o.LEAD, leads[3]["id"], source["id"], "3.25")
    m.set_custom(org, o.LEAD, leads[4]["id"], source["id"], "7.0")
    ints = {x["id"]: x[f"custom.{employees['id']}"] for x in holders(org, o.LEAD, employees["id"])}
    texts = {x["id"]: x[f"custom.{source['id']}"] for x in holders(org, o.LEAD, source["id"])}
    m.update_field(org, employees["id"], type_="text")
    m.update_field(org, arr["id"], type_="text")
    m.update_field(org, source["id"], type_="number")
    with serve(org) as (_fake, client):
        got = leads_by_id(client)
    for lead_id, value in ints.items():
        assert got[lead_id][f"custom.{employees['id']}"] == str(value)
    assert got[leads[0]["id"]][f"custom.{arr['id']}"] == "1234"
    assert got[leads[1]["id"]][f"custom.{arr['id']}"] == "99.5"
    numbers = {
        k: v[f"custom.{source['id']}"] for k, v in got.items() if f"custom.{source['id']}" in v
    }
    assert numbers == {leads[2]["id"]: 42, leads[3]["id"]: 3.25, leads[4]["id"]: 7}
    assert isinstance(numbers[leads[4]["id"]], int)
    assert len(texts) > len(numbers)  # the generated texts do not parse: removed


def test_date_and_datetime_conversions(org: FakeOrg) -> None:
    demo = field(org, o.CUSTOM_FIELD_LEAD, "Next Demo")  # datetime with offsets
    trial = field(org, o.CUSTOM_FIELD_LEAD, "Trial Ends")  # date
    source = field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")  # text
    lead = org.all(o.LEAD)[0]
    m.set_custom(org, o.LEAD, lead["id"], demo["id"], "2024-05-01T23:30:00-08:00")
    m.set_custom(org, o.LEAD, lead["id"], trial["id"], "2024-06-12")
    m.set_custom(org, o.LEAD, lead["id"], source["id"], "2024-07-01T10:00:00Z")
    other = org.all(o.LEAD)[1]
    m.set_custom(org, o.LEAD, other["id"], source["id"], "next week")
    m.update_field(org, demo["id"], type_="date")
    m.update_field(org, trial["id"], type_="datetime")
    m.update_field(org, source["id"], type_="date")
    with serve(org) as (_fake, client):
        got = client.get(f"lead/{lead['id']}/").json()
        assert got[f"custom.{demo['id']}"] == "2024-05-01"  # the date as written
        assert got[f"custom.{trial['id']}"] == "2024-06-12T00:00:00+00:00"
        assert got[f"custom.{source['id']}"] == "2024-07-01"
        assert f"custom.{source['id']}" not in client.get(f"lead/{other['id']}/").json()
    m.update_field(org, source["id"], type_="datetime")
    assert org.get(o.LEAD, lead["id"])[f"custom.{source['id']}"] == "2024-07-01T00:00:00+00:00"


def test_choices_changes_filter_values(org: FakeOrg) -> None:
    industry = field(org, o.CUSTOM_FIELD_LEAD, "Industry")
    products = field(org, o.CUSTOM_FIELD_LEAD, "Products")
    leads = org.all(o.LEAD)
    m.set_custom(org, o.LEAD, leads[0]["id"], products["id"], ["CRM"])
    m.set_custom(org, o.LEAD, leads[1]["id"], products["id"], ["CRM", "Dialer"])
    m.set_custom(org, o.LEAD, leads[0]["id"], industry["id"], "Cars")
    m.set_custom(org, o.LEAD, leads[1]["id"], industry["id"], "IT")
    m.update_field(org, products["id"], choices=["Dialer", "Sequences", "Choice 1", "Choice 2"])
    m.update_field(org, industry["id"], choices=["IT", "Biotech"])
    with serve(org) as (_fake, client):
        got = leads_by_id(client)
    assert f"custom.{products['id']}" not in got[leads[0]["id"]]  # empty list: removed
    assert got[leads[1]["id"]][f"custom.{products['id']}"] == ["Dialer"]
    assert f"custom.{industry['id']}" not in got[leads[0]["id"]]
    assert got[leads[1]["id"]][f"custom.{industry['id']}"] == "IT"
    for lead in got.values():
        assert lead.get(f"custom.{industry['id']}", "IT") == "IT"
        assert "CRM" not in lead.get(f"custom.{products['id']}", [])
    assert org.get(o.CUSTOM_FIELD_LEAD, industry["id"])["choices"] == ["IT", "Biotech"]
    # Retyping to choices keeps the values that are choices (text form), drops the rest.
    seats = field(org, o.CUSTOM_FIELD_OPPORTUNITY, "Seats")
    opp = org.all(o.OPPORTUNITY)[0]
    m.set_custom(org, o.OPPORTUNITY, opp["id"], seats["id"], 10)
    m.update_field(org, seats["id"], type_="choices", choices=["10", "20"])
    assert org.get(o.OPPORTUNITY, opp["id"])[f"custom.{seats['id']}"] == "10"
    assert all(
        x[f"custom.{seats['id']}"] in ("10", "20") for x in holders(org, o.OPPORTUNITY, seats["id"])
    )


def test_user_and_contact_conversions_keep_only_real_ids(org: FakeOrg) -> None:
    source = field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")
    champions = field(org, o.CUSTOM_FIELD_LEAD, "Champions")
    user = org.all(o.USER)[1]
    leads = org.all(o.LEAD)
    name = f"{user['first_name']} {user['last_name']}"
    m.set_custom(org, o.LEAD, leads[0]["id"], source["id"], name)
    m.set_custom(org, o.LEAD, leads[1]["id"], source["id"], user["id"])
    m.update_field(org, source["id"], type_="user")
    values = {x["id"]: x[f"custom.{source['id']}"] for x in holders(org, o.LEAD, source["id"])}
    assert values == {leads[0]["id"]: user["id"], leads[1]["id"]: user["id"]}  # names -> ids
    # A multi user field turned into text: the first id as text.
    firsts = {
        x["id"]: x[f"custom.{champions['id']}"][0] for x in holders(org, o.LEAD, champions["id"])
    }
    m.update_field(org, champions["id"], type_="text")
    assert {
        x["id"]: x[f"custom.{champions['id']}"] for x in holders(org, o.LEAD, champions["id"])
    } == firsts
    with pytest.raises(ValueError, match="multiple values"):
        m.update_field(org, champions["id"], multi=True)
    # text -> contact: only existing contact ids survive.
    contact = org.all(o.CONTACT)[0]
    m.update_field(org, champions["id"], type_="contact")
    assert not holders(org, o.LEAD, champions["id"])  # user ids are no contact ids
    m.set_custom(org, o.LEAD, leads[0]["id"], champions["id"], contact["id"])
    m.update_field(org, champions["id"], multi=True)
    assert org.get(o.LEAD, leads[0]["id"])[f"custom.{champions['id']}"] == [contact["id"]]


def test_converting_leaves_values_until_finish_conversion(org: FakeOrg) -> None:
    employees = field(org, o.CUSTOM_FIELD_LEAD, "Employees")
    before = {
        x["id"]: x[f"custom.{employees['id']}"] for x in holders(org, o.LEAD, employees["id"])
    }
    assert before
    with pytest.raises(ValueError, match="not converting"):
        m.finish_conversion(org, employees["id"])
    with serve(org) as (_fake, client):
        started = m.update_field(org, employees["id"], type_="text", converting=True)
        assert started["type"] == "text" and started["converting_to_type"] == "text"
        shown = client.get(f"custom_field/lead/{employees['id']}/").json()
        assert shown["converting_to_type"] == "text"
        got = leads_by_id(client)
        assert {k: got[k][f"custom.{employees['id']}"] for k in before} == before  # still ints
        done = m.finish_conversion(org, employees["id"])
        assert "converting_to_type" not in done
        assert (
            "converting_to_type" not in client.get(f"custom_field/lead/{employees['id']}/").json()
        )
        got = leads_by_id(client)
        assert {k: got[k][f"custom.{employees['id']}"] for k in before} == {
            k: str(v) for k, v in before.items()
        }


def test_a_plain_update_overtakes_a_running_conversion(org: FakeOrg) -> None:
    source = field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")
    lead = org.all(o.LEAD)[0]
    m.set_custom(org, o.LEAD, lead["id"], source["id"], "12")
    m.update_field(org, source["id"], type_="number", converting=True)
    assert org.get(o.LEAD, lead["id"])[f"custom.{source['id']}"] == "12"
    renamed = m.update_field(org, source["id"], name="Lead Source (number)", description="n")
    assert renamed["converting_to_type"] == "number"  # a rename leaves it running
    assert org.get(o.LEAD, lead["id"])[f"custom.{source['id']}"] == "12"
    done = m.update_field(org, source["id"], type_="text")
    assert "converting_to_type" not in done and done["type"] == "text"
    assert org.get(o.LEAD, lead["id"])[f"custom.{source['id']}"] == "12"
    assert all(
        isinstance(x[f"custom.{source['id']}"], str) for x in holders(org, o.LEAD, source["id"])
    )
    m.update_field(org, source["id"], type_="number", converting=True)
    still = m.update_field(org, source["id"], type_="number")  # nothing new to convert
    assert still["converting_to_type"] == "number"
    assert org.get(o.LEAD, lead["id"])[f"custom.{source['id']}"] == "12"
    m.finish_conversion(org, source["id"])
    assert org.get(o.LEAD, lead["id"])[f"custom.{source['id']}"] == 12
    assert "converting_to_type" not in org.get(o.CUSTOM_FIELD_LEAD, source["id"])


def test_update_field_rejects_invalid_input(org: FakeOrg) -> None:
    source = field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")
    with pytest.raises(ValueError, match="Invalid custom field type"):
        m.update_field(org, source["id"], type_="money")
    with pytest.raises(ValueError, match="need `choices`"):
        m.update_field(org, source["id"], type_="choices")
    with pytest.raises(ValueError, match="only apply"):
        m.update_field(org, source["id"], choices=["a"])
    with pytest.raises(ValueError, match="`required` only applies"):
        m.update_field(org, source["id"], required=True)
    with pytest.raises(KeyError):
        m.update_field(org, "cf_nope", type_="text")


def test_rename_choice_renames_scalar_and_list_values(org: FakeOrg) -> None:
    industry = field(org, o.CUSTOM_FIELD_LEAD, "Industry")
    products = field(org, o.CUSTOM_FIELD_LEAD, "Products")
    leads = org.all(o.LEAD)
    m.set_custom(org, o.LEAD, leads[0]["id"], industry["id"], "Cars")
    m.set_custom(org, o.LEAD, leads[0]["id"], products["id"], ["CRM", "Dialer"])
    stamp = org.get(o.LEAD, leads[0]["id"])["date_updated"]
    cars = [
        x["id"]
        for x in holders(org, o.LEAD, industry["id"])
        if x[f"custom.{industry['id']}"] == "Cars"
    ]
    out = m.rename_choice(org, industry["id"], "Cars", "Automotive")
    assert out["choices"] == ["Apparel", "Automotive", "Cosmetics", "IT"]
    m.rename_choice(org, products["id"], "CRM", "Close CRM")
    with serve(org) as (_fake, client):
        got = leads_by_id(client)
        assert got[leads[0]["id"]][f"custom.{products['id']}"] == ["Close CRM", "Dialer"]
        assert got[leads[0]["id"]]["date_updated"] == stamp
        for lead_id in cars:
            assert got[lead_id][f"custom.{industry['id']}"] == "Automotive"
        assert not any(lead.get(f"custom.{industry['id']}") == "Cars" for lead in got.values())
        shown = client.get(f"custom_field/lead/{products['id']}/").json()
        assert "Close CRM" in shown["choices"] and "CRM" not in shown["choices"]
    with pytest.raises(ValueError, match="not a choice"):
        m.rename_choice(org, industry["id"], "Cars", "X")
    with pytest.raises(ValueError, match="already a choice"):
        m.rename_choice(org, industry["id"], "IT", "Apparel")
    with pytest.raises(ValueError, match="not a 'choices' field"):
        m.rename_choice(org, field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")["id"], "a", "b")


# -- values ---------------------------------------------------------------------------------------


def test_set_custom_sets_clears_and_bumps_date_updated(org: FakeOrg) -> None:
    source = field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")
    region = field(org, o.CUSTOM_FIELD_SHARED, "Region")
    lead = org.all(o.LEAD)[0]
    original = dict(lead)
    contact = org.children(o.CONTACT, "lead_id", lead["id"])[0]
    first = m.set_custom(org, o.LEAD, lead["id"], source["id"], "Webinar")
    assert first["date_updated"] > lead["date_updated"]
    assert first[f"custom.{source['id']}"] == "Webinar"
    assert lead == original and org.get(o.LEAD, lead["id"]) is first  # replaced, not edited
    second = m.set_custom(org, o.LEAD, lead["id"], source["id"], None)
    assert second["date_updated"] > first["date_updated"]
    m.set_custom(org, o.CONTACT, contact["id"], region["id"], "APAC")
    at = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    m.set_custom(org, o.LEAD, lead["id"], region["id"], "EMEA", at=at, user_id=org.admin_user_id)
    with serve(org) as (_fake, client):
        got = client.get(f"lead/{lead['id']}/").json()
        assert f"custom.{source['id']}" not in got
        assert got[f"custom.{region['id']}"] == "EMEA"
        assert got["date_updated"] == "2027-01-02T03:04:05.000000+00:00"
        assert got["updated_by"] == org.admin_user_id
        nested = {c["id"]: c for c in got["contacts"]}[contact["id"]]
        assert nested[f"custom.{region['id']}"] == "APAC"
    for empty in ("", []):
        m.set_custom(org, o.LEAD, lead["id"], region["id"], "AMER")
        m.set_custom(org, o.LEAD, lead["id"], region["id"], empty)
        assert f"custom.{region['id']}" not in org.get(o.LEAD, lead["id"])


def test_set_custom_checks_the_field_applies(org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    contact = org.all(o.CONTACT)[0]
    lead_field = field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")
    external = field(org, o.CUSTOM_FIELD_SHARED, "External ID")  # lead + opportunity
    with pytest.raises(ValueError, match="does not apply"):
        m.set_custom(org, o.CONTACT, contact["id"], lead_field["id"], "x")
    with pytest.raises(ValueError, match="does not apply"):
        m.set_custom(org, o.CONTACT, contact["id"], external["id"], "x")
    with pytest.raises(KeyError):
        m.set_custom(org, o.LEAD, lead["id"], "cf_nope", "x")
    with pytest.raises(KeyError):
        m.set_custom(org, o.LEAD, "lead_nope", lead_field["id"], "x")
    act_field = org.all(o.CUSTOM_FIELD_ACTIVITY)[0]
    wrong = next(
        a for a in org.activities("CustomActivity")
        if a["custom_activity_type_id"] != act_field["custom_activity_type_id"]
    )  # fmt: skip
    with pytest.raises(ValueError, match="does not apply"):
        m.set_custom(org, o.ACTIVITY, wrong["id"], act_field["id"], "x")
    right = next(
        a for a in org.activities("CustomActivity")
        if a["custom_activity_type_id"] == act_field["custom_activity_type_id"]
    )  # fmt: skip
    out = m.set_custom(org, o.ACTIVITY, right["id"], act_field["id"], "someone@example.com")
    assert out[f"custom.{act_field['id']}"] == "someone@example.com"


def test_an_export_created_before_a_mutation_does_not_see_it(org: FakeOrg) -> None:
    industry = field(org, o.CUSTOM_FIELD_LEAD, "Industry")
    source = field(org, o.CUSTOM_FIELD_LEAD, "Lead Source")
    lead = holders(org, o.LEAD, industry["id"])[0]
    before = dict(org.get(o.LEAD, lead["id"]))
    body = {"format": "json", "type": "leads", "send_done_email": False}
    with serve(org, export=ExportSettings(polls_to_finish=2, custom_style="keys")) as (
        fake,
        client,
    ):
        export_id = client.post("export/lead/", json=body).json()["id"]
        m.delete_field(org, industry["id"])
        m.set_custom(org, o.LEAD, lead["id"], source["id"], "Changed after the export")
        m.rename_field(org, source["id"], "Renamed after the export")
        assert f"custom.{industry['id']}" not in client.get(f"lead/{lead['id']}/").json()
        deadline = time.monotonic() + 10
        while (done := client.get(f"export/{export_id}/").json())["status"] != "done":
            assert time.monotonic() < deadline
        docs = {d["id"]: d for d in json.loads(httpx.get(done["download_url"]).content)}
        assert fake.export_key_leaks == 0
    doc = docs[lead["id"]]
    assert doc[f"custom.{industry['id']}"] == before[f"custom.{industry['id']}"]
    assert doc.get(f"custom.{source['id']}") == before.get(f"custom.{source['id']}")
    assert doc["date_updated"] == before["date_updated"]


# -- the generator --------------------------------------------------------------------------------


def test_generator_covers_textarea_and_contact_fields() -> None:
    org = generate_org(seed=3, leads=30)
    notes = field(org, o.CUSTOM_FIELD_LEAD, "Notes (long)")
    primary = field(org, o.CUSTOM_FIELD_OPPORTUNITY, "Primary Contact")
    assert notes["type"] == "textarea" and primary["type"] == "contact"
    texts = [x[f"custom.{notes['id']}"] for x in holders(org, o.LEAD, notes["id"])]
    assert texts and all(isinstance(t, str) and "\n" in t for t in texts)
    opps = holders(org, o.OPPORTUNITY, primary["id"])
    assert opps
    for opp in opps:
        contact = org.get(o.CONTACT, opp[f"custom.{primary['id']}"])
        assert contact is not None and contact["lead_id"] == opp["lead_id"]
    lonely = generate_org(seed=3, leads=5, contacts_per_lead=0)
    primary = field(lonely, o.CUSTOM_FIELD_OPPORTUNITY, "Primary Contact")
    assert lonely.count(o.OPPORTUNITY) and not holders(lonely, o.OPPORTUNITY, primary["id"])
    again = generate_org(seed=3, leads=30)
    assert again.collections == org.collections


# -- HTTP -----------------------------------------------------------------------------------------


def test_http_create_update_delete_a_lead_field(org: FakeOrg) -> None:
    lead = org.all(o.LEAD)[0]
    with serve(org) as (fake, client):
        r = client.post("custom_field/lead/", json={"name": "Score", "type": "text"})
        assert r.status_code == 200, r.text
        created = r.json()
        assert created["id"].startswith("cf_") and created["created_by"] == fake.user_id
        assert datetime.fromisoformat(created["date_created"]) >= org.now
        assert client.get(f"custom_field/lead/{created['id']}/").json() == created
        m.set_custom(org, o.LEAD, lead["id"], created["id"], "17")

        r = client.put(
            f"custom_field/lead/{created['id']}/", json={"name": "Score (number)", "type": "number"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Score (number)" and r.json()["type"] == "number"
        assert "converting_to_type" not in r.json()
        assert client.get(f"lead/{lead['id']}/").json()[f"custom.{created['id']}"] == 17

        r = client.delete(f"custom_field/lead/{created['id']}/")
        assert r.status_code == 200 and r.json() == {}
        assert f"custom.{created['id']}" not in client.get(f"lead/{lead['id']}/").json()
        assert client.get(f"custom_field/lead/{created['id']}/").status_code == 404
        assert client.delete(f"custom_field/lead/{created['id']}/").status_code == 404
        endpoints = [rec.endpoint for rec in fake.requests if rec.method != "GET"]
        assert endpoints == [
            "/custom_field/lead/",
            "/custom_field/lead/{id}/",
            "/custom_field/lead/{id}/",
            "/custom_field/lead/{id}/",
        ]


def test_http_create_activity_and_shared_fields(org: FakeOrg) -> None:
    type_id = org.all(o.CUSTOM_ACTIVITY_TYPE)[1]["id"]
    with serve(org) as (_fake, client):
        r = client.post(
            "custom_field/activity/",
            json={"custom_activity_type_id": type_id, "editable_with_roles": [],
                  "name": "Contact Name", "accepts_multiple_values": False, "type": "text",
                  "required": False},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["custom_activity_type_id"] == type_id and r.json()["required"] is False
        assert r.json()["id"] in {f["id"] for f in custom_type(client, type_id)["fields"]}
        r = client.post(
            "custom_field/shared/",
            json={"name": "Tier", "type": "choices", "choices": ["A", "B"],
                  "associations": [{"object_type": "opportunity"}, "lead"]},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert [a["object_type"] for a in r.json()["associations"]] == ["opportunity", "lead"]
        schema = client.get("custom_field_schema/opportunity/").json()["fields"]
        assert r.json()["id"] in {f["id"] for f in schema if f["is_shared"]}
        r = client.put(
            f"custom_field/activity/{org.all(o.CUSTOM_FIELD_ACTIVITY)[0]['id']}/",
            json={"required": False, "name": "Email"},
        )
        assert r.status_code == 200 and r.json()["required"] is False


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("custom_field/lead/", {"name": "X", "type": "money"}, "Invalid custom field type"),
        ("custom_field/lead/", {"type": "text"}, "`name`"),
        ("custom_field/lead/", {"name": "", "type": "text"}, "`name`"),
        ("custom_field/lead/", {"name": "X"}, "`type` is required"),
        ("custom_field/lead/", {"name": "X", "type": "choices"}, "choices"),
        ("custom_field/lead/", {"name": "X", "type": "text", "accepts_multiple_values": True},
         "multiple values"),
        ("custom_field/contact/", {"name": "X", "type": "text", "editable_with_roles": "x"},
         "editable_with_roles"),
        ("custom_field/activity/", {"name": "X", "type": "text"}, "custom_activity_type_id"),
        ("custom_field/shared/", {"name": "X", "type": "text"}, "associations"),
        ("custom_field/lead/", [1, 2], "JSON object"),
    ],
)  # fmt: skip
def test_http_invalid_create_answers_400(org: FakeOrg, path: str, body: Any, message: str) -> None:
    with serve(org) as (_fake, client):
        before = client.get(path).json()["data"]
        r = client.post(path, json=body)
        assert r.status_code == 400, r.text
        assert message in r.json()["error"]
        assert client.get(path).json()["data"] == before


def test_http_invalid_update_answers_400_or_404(org: FakeOrg) -> None:
    lead_field = org.all(o.CUSTOM_FIELD_LEAD)[0]
    act_field = org.all(o.CUSTOM_FIELD_ACTIVITY)[0]
    with serve(org) as (_fake, client):
        url = f"custom_field/lead/{lead_field['id']}/"
        assert client.put(url, json={"type": "money"}).status_code == 400
        assert client.put(url, json={"name": 5}).status_code == 400
        assert client.put(url, json={"required": True}).status_code == 400
        assert client.put(url, content=b"{nope").status_code == 400
        assert client.put(url, json=None).status_code == 400
        r = client.put(
            f"custom_field/activity/{act_field['id']}/",
            json={"custom_activity_type_id": "actitype_other"},
        )
        assert r.status_code == 400 and "cannot be changed" in r.json()["error"]
        # The id must belong to the kind in the path.
        assert client.put(f"custom_field/contact/{lead_field['id']}/", json={}).status_code == 404
        assert client.delete(f"custom_field/contact/{lead_field['id']}/").status_code == 404
        assert client.put("custom_field/lead/cf_nope/", json={"name": "x"}).status_code == 404
        assert client.get(url).json() == lead_field


def test_http_writes_need_an_admin_key(org: FakeOrg) -> None:
    target = org.all(o.CUSTOM_FIELD_LEAD)[0]
    with serve(org, admin=False) as (_fake, client):
        for r in (
            client.post("custom_field/lead/", json={"name": "X", "type": "text"}),
            client.put(f"custom_field/lead/{target['id']}/", json={"name": "Y"}),
            client.delete(f"custom_field/lead/{target['id']}/"),
            client.delete("custom_field/lead/cf_nope/"),
        ):
            assert r.status_code == 403, r.text
            assert "admin" in r.json()["error"]
        assert client.get(f"custom_field/lead/{target['id']}/").json() == target  # reads work
    assert org.get(o.CUSTOM_FIELD_LEAD, target["id"]) is target


def test_http_async_conversions(org: FakeOrg) -> None:
    employees = field(org, o.CUSTOM_FIELD_LEAD, "Employees")
    before = {
        x["id"]: x[f"custom.{employees['id']}"] for x in holders(org, o.LEAD, employees["id"])
    }
    with serve(org, async_conversions=True) as (_fake, client):
        url = f"custom_field/lead/{employees['id']}/"
        r = client.put(url, json={"name": "Head count"})  # no type change: nothing to convert
        assert "converting_to_type" not in r.json()
        r = client.put(url, json={"type": "text"})
        assert r.status_code == 200 and r.json()["converting_to_type"] == "text"
        got = leads_by_id(client)
        assert {k: got[k][f"custom.{employees['id']}"] for k in before} == before
        m.finish_conversion(org, employees["id"])
        assert "converting_to_type" not in client.get(url).json()
        got = leads_by_id(client)
        assert {k: got[k][f"custom.{employees['id']}"] for k in before} == {
            k: str(v) for k, v in before.items()
        }


def test_http_other_methods_still_405(org: FakeOrg) -> None:
    target = org.all(o.CUSTOM_FIELD_LEAD)[0]
    with serve(org) as (_fake, client):
        assert client.patch(f"custom_field/lead/{target['id']}/", json={}).status_code == 405
        assert client.delete("custom_field/lead/").status_code == 405
        assert client.put("custom_field/lead/", json={}).status_code == 405
        assert client.post(f"custom_field/lead/{target['id']}/", json={}).status_code == 405
        assert client.delete("pipeline/pipe_x/").status_code == 405
        assert client.post("custom_field_schema/lead/", json={}).status_code == 405
