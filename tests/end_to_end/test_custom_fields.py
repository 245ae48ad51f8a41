"""Custom fields end to end: an admin changes fields in Close between syncs; every value lands in
the column the README's rules give, typed, in DuckDB.

The column names expected here are written out by hand from the README rules: the test does not
ask the connector what they should be.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import mutations as m
from close_fake import org as o
from close_source.pipeline import run_sync
from close_source.source import close_source
from tests.conftest import WAREHOUSES, warehouse
from tests.helpers import as_json, new_pipeline, rows, sync
from tests.invariant import every_table_mismatches
from tests.oracle import TABLE_OF_OBJECT_TYPE, custom_definitions, decoded, expected_objects, typed

LONG_NAME = "Estimated annual recurring revenue after the second renewal negotiation (EUR)"


def field_id(org: FakeOrg, kind: str, name: str) -> str:
    return next(d["id"] for d in org.all(f"custom_field.{kind}") if d["name"] == name)


def code(field_id: str, length: int = 6) -> str:
    """The README's suffix: the first characters of the id after its prefix, lower case."""
    return "".join(c for c in field_id.split("_", 1)[1].lower() if c.isalnum())[:length]


def db_rows(pipeline: dlt.Pipeline, table: str) -> dict[str, dict[str, Any]]:
    with pipeline.sql_client() as client, client.execute_query(
            f"SELECT * FROM close.{table}") as cursor:
        names = [column[0] for column in cursor.description]
        return {row[names.index("id")]: dict(zip(names, row, strict=True))
                for row in cursor.fetchall()}


def assert_columns_hold_close_values(org: FakeOrg, pipeline: dlt.Pipeline, table: str,
                                     columns: dict[str, str]) -> int:
    """For every object: each field's value, typed, in its column; absent values null."""
    kind = next(k for k, t in TABLE_OF_OBJECT_TYPE.items() if t == table)
    definitions = {fid: d for (k, fid), d in custom_definitions(org).items() if k == kind}
    actual = db_rows(pipeline, table)
    filled = 0
    for object_id, obj in expected_objects(org, table).items():
        row = actual[object_id]
        for fid, column in columns.items():
            value = obj.get(f"custom.{fid}")
            expected = None if value is None else typed(definitions[fid], value)
            assert decoded(definitions[fid], row[column]) == expected, (object_id, column)
            filled += value is not None
        assert row["custom_unmapped"] is None, object_id
    return filled


def null_everywhere(pipeline: dlt.Pipeline, table: str, column: str) -> bool:
    return rows(pipeline, f"SELECT count(*) FROM close.{table} WHERE {column} IS NOT NULL") == \
        [(0,)]


def column_types(pipeline: dlt.Pipeline, table: str) -> dict[str, str]:
    return {name: column.get("data_type", "")
            for name, column in pipeline.default_schema.get_table_columns(table).items()}


def mapping(pipeline: dlt.Pipeline) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(object_type, id) -> (name, table_name, column_name, column_type, is_shared, is_deleted)."""
    return {(r[0], r[1]): r[2:] for r in rows(pipeline, (
        "SELECT object_type, id, name, table_name, column_name, column_type, is_shared, "
        "is_deleted FROM close.custom_fields"))}


# ---- one organisation, changed between two syncs ------------------------------------------


@pytest.fixture(scope="module", params=[(path, kind) for kind in WAREHOUSES
                                        for path in ("export", "lists")],
                ids=lambda param: "-".join(param))
def two_syncs(request, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Sync; then rename, delete, add, retype, switch to multi, clear, collide; sync again."""
    full_load, kind = request.param
    org = generate_org(seed=7, leads=12)
    workdir: Path = tmp_path_factory.mktemp(f"custom_{full_load}_{kind}")
    ids = {name: field_id(org, "lead", name) for name in (
        "Industry", "Lead Source", "Employees", "Account Owner", "ARR Estimate", "Trial Ends")}
    ids["Role"] = field_id(org, "contact", "Role")
    ids["Seats"] = field_id(org, "opportunity", "Seats")
    ids["Outcome"] = field_id(org, "activity", "Outcome")
    ids["Region"] = field_id(org, "shared", "Region")
    with FakeClose(org) as fake:
        pipeline = sync(fake, workdir, full_load=full_load,
                        warehouse=warehouse(request, kind))
        before = {t: column_types(pipeline, t) for t in TABLE_OF_OBJECT_TYPE.values()}
        first_mapping = mapping(pipeline)

        m.rename_field(org, ids["Industry"], "Vertical")
        m.rename_choice(org, ids["Industry"], "IT", "Software")
        m.delete_field(org, ids["Lead Source"])
        m.update_field(org, ids["Employees"], type_="text")
        m.update_field(org, ids["Account Owner"], multi=True)
        m.rename_field(org, ids["Role"], "Job Role")
        m.update_field(org, ids["Seats"], type_="text")
        with_arr = [lead for lead in org.all(o.LEAD) if f"custom.{ids['ARR Estimate']}" in lead]
        cleared = with_arr[0]["id"]
        m.set_custom(org, o.LEAD, cleared, ids["ARR Estimate"], None)
        new = {
            "Lead Source": m.add_field(org, "lead", "Lead Source", "choices",
                                       choices=["Web", "Event"]),
            "ARR estimate!": m.add_field(org, "lead", "ARR estimate!", "number"),
            LONG_NAME: m.add_field(org, "lead", LONG_NAME, "number"),
            "Budget ($)": m.add_field(org, "lead", "Budget ($)", "number"),
            "Tier": m.add_field(org, "shared", "Tier", "choices", choices=["Gold", "Silver"],
                                associations=["lead", "contact"]),
            "Go Live": m.add_field(org, "opportunity", "Go Live", "datetime"),
        }
        demo_type = next(t for t in org.all(o.CUSTOM_ACTIVITY_TYPE) if t["name"] == "Demo Feedback")
        new["Activity Type ID"] = m.add_field(org, "activity", "Activity Type ID", "text",
                                              custom_activity_type_id=demo_type["id"])
        new["Outcome"] = m.add_field(org, "activity", "Outcome", "choices",
                                     choices=["Won", "Lost"],
                                     custom_activity_type_id=next(
                                         t["id"] for t in org.all(o.CUSTOM_ACTIVITY_TYPE)
                                         if t["name"] == "Newsletter Signup"))
        leads = org.all(o.LEAD)
        for i, lead in enumerate(leads[:6]):
            m.set_custom(org, o.LEAD, lead["id"], new["Lead Source"]["id"], ["Web", "Event"][i % 2])
            m.set_custom(org, o.LEAD, lead["id"], new["ARR estimate!"]["id"], 1000 + i)
            m.set_custom(org, o.LEAD, lead["id"], new[LONG_NAME]["id"], 0.5 + i)
            m.set_custom(org, o.LEAD, lead["id"], new["Tier"]["id"], "Gold")
        contact = org.all(o.CONTACT)[0]
        m.set_custom(org, o.CONTACT, contact["id"], new["Tier"]["id"], "Silver")
        opportunity = org.all(o.OPPORTUNITY)[0]
        m.set_custom(org, o.OPPORTUNITY, opportunity["id"], new["Go Live"]["id"],
                     "2027-01-31T09:30:00+05:30")
        demo = next(a for a in org.all(o.ACTIVITY)
                    if a.get("custom_activity_type_id") == demo_type["id"])
        m.set_custom(org, o.ACTIVITY, demo["id"], new["Activity Type ID"]["id"], "built-in?")
        sync(fake, workdir, pipeline=pipeline, full_load=full_load, sync_mode="full")
    yield {"org": org, "pipeline": pipeline, "ids": ids, "new": new, "before": before,
           "first_mapping": first_mapping, "cleared": cleared}


def test_first_sync_declares_every_field_typed(two_syncs):
    before = two_syncs["before"]["leads"]
    assert before["custom_employees"] == "double"
    assert before["custom_trial_ends"] == "date"
    assert before["custom_next_demo"] == "timestamp"
    assert before["custom_industry"] == "text"
    assert before["custom_products"] == "json"
    assert before["custom_unmapped"] == "json"
    assert two_syncs["before"]["custom_activities"]["custom_rating"] == "double"
    assert not [c for t in two_syncs["before"].values() for c in t if "__v_" in c]


def test_a_renamed_field_keeps_its_column_and_choice_renames_arrive(two_syncs):
    pipeline, ids = two_syncs["pipeline"], two_syncs["ids"]
    industry = ids["Industry"]
    assert mapping(pipeline)[("lead", industry)][:3] == ("Vertical", "leads", "custom_industry")
    assert two_syncs["first_mapping"][("lead", industry)][0] == "Industry"
    assert "custom_vertical" not in column_types(pipeline, "leads")
    values = {r[0] for r in rows(pipeline, "SELECT DISTINCT custom_industry FROM close.leads")}
    assert "Software" in values and "IT" not in values
    assert mapping(pipeline)[("contact", ids["Role"])][:3] == ("Job Role", "contacts",
                                                               "custom_role")


def test_a_deleted_field_keeps_its_column_unfilled_and_its_name_is_not_reused(two_syncs):
    pipeline, ids, new = two_syncs["pipeline"], two_syncs["ids"], two_syncs["new"]
    assert null_everywhere(pipeline, "leads", "custom_lead_source")
    assert column_types(pipeline, "leads")["custom_lead_source"] == "text"
    kept = mapping(pipeline)[("lead", ids["Lead Source"])]
    assert kept == ("Lead Source", "leads", "custom_lead_source", "text", False, True)
    replacement = new["Lead Source"]["id"]
    assert mapping(pipeline)[("lead", replacement)][2] == f"custom_lead_source_{code(replacement)}"


def test_a_type_change_continues_in_a_typed_sibling_column(two_syncs):
    pipeline, ids = two_syncs["pipeline"], two_syncs["ids"]
    types = column_types(pipeline, "leads")
    assert types["custom_employees"] == "double" and types["custom_employees_text"] == "text"
    assert null_everywhere(pipeline, "leads", "custom_employees")
    assert mapping(pipeline)[("lead", ids["Employees"])][2:4] == ("custom_employees_text", "text")
    assert column_types(pipeline, "opportunities")["custom_seats_text"] == "text"


def test_single_to_multi_becomes_a_json_list_column(two_syncs):
    org, pipeline = two_syncs["org"], two_syncs["pipeline"]
    assert column_types(pipeline, "leads")["custom_account_owner_list"] == "json"
    values = [as_json(v) for (v,) in rows(pipeline, (
        "SELECT custom_account_owner_list FROM close.leads "
        "WHERE custom_account_owner_list IS NOT NULL"))]
    assert values and all(isinstance(v, list) and len(v) == 1 for v in values)
    users = {u["id"] for u in org.all(o.USER)}
    assert {v[0] for v in values} <= users


def test_a_cleared_value_is_null(two_syncs):
    pipeline, cleared = two_syncs["pipeline"], two_syncs["cleared"]
    assert rows(pipeline, f"SELECT custom_arr_estimate FROM close.leads WHERE id = '{cleared}'") \
        == [(None,)]


def test_collisions_long_names_and_built_ins_get_id_suffixes(two_syncs):
    pipeline, new = two_syncs["pipeline"], two_syncs["new"]
    got = mapping(pipeline)
    arr = new["ARR estimate!"]["id"]
    assert got[("lead", arr)][2] == f"custom_arr_estimate_{code(arr)}"
    long_id = new[LONG_NAME]["id"]
    long_column = got[("lead", long_id)][2]
    assert long_column == f"custom_estimated_annual_recurring_revenue_after_the_{code(long_id)}"
    assert len(long_column) <= 63
    # the destination kept the name exactly (PostgreSQL cuts identifiers at 63 bytes)
    assert rows(pipeline, "SELECT column_name FROM information_schema.columns WHERE "
                          f"table_schema = 'close' AND table_name = 'leads' AND "
                          f"column_name = '{long_column}'") == [(long_column,)]
    assert got[("lead", new["Budget ($)"]["id"])][2] == "custom_budget"
    builtin = new["Activity Type ID"]["id"]
    assert got[("activity", builtin)][2] == f"custom_activity_type_id_{code(builtin)}"
    outcome = new["Outcome"]["id"]  # same name as a Demo Feedback field, newer
    assert got[("activity", outcome)][2] == f"custom_outcome_{code(outcome)}"
    assert got[("activity", two_syncs["ids"]["Outcome"])][2] == "custom_outcome"
    # the built-in column still holds the activity type
    assert rows(pipeline, "SELECT count(*) FROM close.custom_activities "
                          "WHERE custom_activity_type_id NOT LIKE 'actitype_%'") == [(0,)]


def test_shared_fields_land_on_every_associated_table(two_syncs):
    pipeline, ids, new = two_syncs["pipeline"], two_syncs["ids"], two_syncs["new"]
    got = mapping(pipeline)
    for kind, table in (("lead", "leads"), ("contact", "contacts")):
        assert got[(kind, ids["Region"])][1:3] == (table, "custom_region")
        assert got[(kind, new["Tier"]["id"])][1:3] == (table, "custom_tier")
        assert got[(kind, new["Tier"]["id"])][4] is True
    assert ("opportunity", new["Tier"]["id"]) not in got
    assert rows(pipeline, "SELECT count(*) FROM close.contacts WHERE custom_tier = 'Silver'") \
        == [(1,)]


def test_every_value_of_every_object_is_in_its_column_after_the_changes(two_syncs):
    org, pipeline, ids, new = (two_syncs[k] for k in ("org", "pipeline", "ids", "new"))
    current = mapping(pipeline)
    filled = 0
    for kind, table in TABLE_OF_OBJECT_TYPE.items():
        columns = {fid: current[(k, fid)][2] for (k, fid) in custom_definitions(org)
                   if k == kind}
        filled += assert_columns_hold_close_values(org, pipeline, table, columns)
    assert filled > 100
    assert rows(pipeline, "SELECT custom_budget FROM close.leads WHERE custom_budget IS NOT NULL") \
        == []  # declared, never filled
    assert column_types(pipeline, "leads")["custom_budget"] == "double"
    go_live = rows(pipeline, f"SELECT {current[('opportunity', new['Go Live']['id'])][2]} "
                             "FROM close.opportunities WHERE custom_go_live IS NOT NULL")
    assert [str(v[0]) for v in go_live] == ["2027-01-31 04:00:00+00:00"]
    assert current[("lead", ids["Trial Ends"])][2:4] == ("custom_trial_ends", "date")


# ---- conversions, unknown fields, id naming ------------------------------------------------


def test_values_during_a_type_conversion_are_kept_then_land_typed(tmp_path):
    org = generate_org(seed=8, leads=8)
    seats = field_id(org, "opportunity", "Seats")
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, resources=["opportunities"], full_load="lists")
        m.update_field(org, seats, type_="date", converting=True)  # values still numbers
        sync(fake, tmp_path, pipeline=pipeline, resources=["opportunities"], full_load="lists")
        stale = {as_json(v)[seats] for (v,) in rows(pipeline, (
            "SELECT custom_unmapped FROM close.opportunities WHERE custom_unmapped IS NOT NULL"))}
        numbers = {o_.get(f"custom.{seats}") for o_ in org.all(o.OPPORTUNITY)} - {None}
        assert stale == numbers and numbers
        assert null_everywhere(pipeline, "opportunities", "custom_seats_date")
        m.finish_conversion(org, seats)
        sync(fake, tmp_path, pipeline=pipeline, resources=["opportunities"], full_load="lists")
    assert null_everywhere(pipeline, "opportunities", "custom_unmapped")
    assert column_types(pipeline, "opportunities")["custom_seats_date"] == "date"


def test_a_field_created_mid_run_is_read_again_and_a_ghost_is_kept(tmp_path, caplog):
    org = generate_org(seed=9, leads=6)
    lead = org.all(o.LEAD)[0]
    with FakeClose(org) as fake:
        pipeline = new_pipeline(tmp_path)  # first: the source plans with the active pipeline
        source = close_source(api_key=fake.api_key, base_url=fake.base_url,
                              tables=["leads", "custom_fields"], full_load="lists")
        # after the run read the definitions, before it reads any lead
        late = m.add_field(org, "lead", "Created Mid Run", "number")
        m.set_custom(org, o.LEAD, lead["id"], late["id"], 42)
        org.put(o.LEAD, {**org.get(o.LEAD, lead["id"]), "custom.cf_Ghost": "boo"})
        definition_reads = len([r for r in fake.requests if r.endpoint == "/custom_field/lead/"])
        with caplog.at_level(logging.WARNING):
            run_sync(pipeline, source)
        assert len([r for r in fake.requests if r.endpoint == "/custom_field/lead/"]) == \
            definition_reads + 1
    assert rows(pipeline, "SELECT custom_created_mid_run, custom_unmapped FROM close.leads "
                          f"WHERE id = '{lead['id']}'") == [(42.0, '{"cf_Ghost":"boo"}')]
    assert "cf_Ghost" in caplog.text


def test_id_naming_mode(tmp_path):
    org = generate_org(seed=10, leads=4)
    industry = field_id(org, "lead", "Industry")
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, resources=["leads", "custom_fields"],
                        custom_field_columns="id")
    column = "custom_" + industry.lower()
    assert column in column_types(pipeline, "leads")
    assert "custom_industry" not in column_types(pipeline, "leads")
    assert rows(pipeline, f"SELECT column_name FROM close.custom_fields WHERE id = '{industry}'") \
        == [(column,)]


# ---- fields created between incremental runs -----------------------------------------------

CUSTOM_TABLES = ["leads", "contacts", "opportunities", "custom_activities"]
SYNCED = [*CUSTOM_TABLES, "custom_fields"]
# information_schema's name of each column type, per destination
SQL_TYPES = {
    "duckdb": {"double": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMP WITH TIME ZONE",
               "text": "VARCHAR", "json": "JSON"},
    "postgres": {"double": "double precision", "date": "date",
                 "timestamp": "timestamp with time zone", "text": "character varying",
                 "json": "jsonb"},
}


def destination_columns(pipeline: dlt.Pipeline, table: str) -> dict[str, str]:
    """The table's columns as the destination has them (not as dlt's schema believes)."""
    return dict(rows(pipeline, "SELECT column_name, data_type FROM information_schema.columns "
                               f"WHERE table_schema = 'close' AND table_name = '{table}'"))


@pytest.fixture(scope="module", params=WAREHOUSES)
def new_fields(request, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Fields created in Close between incremental runs of the custom-field tables:

    1. `untouched`: a field per table and a shared one, no value, no object changed;
       then `quiet`: nothing changed at all;
    2. `subset`: a lead field and a shared one, while only contacts are synced;
    3. `values`: values from Event Log data (contacts, a custom activity), opportunities read
       in full from their list endpoint (a retyped field) with a new field, leads untouched;
    4. `by_id`: lead values in events older than an hour, a non-admin key: read by id;
       a new lead field nobody filled in while leads change.
    After each: every table's columns in the destination, and the invariant."""
    kind = request.param
    org = generate_org(seed=12, leads=6)
    workdir: Path = tmp_path_factory.mktemp(f"new_fields_{kind}")
    demo = next(t["id"] for t in org.all(o.CUSTOM_ACTIVITY_TYPE) if t["name"] == "Demo Feedback")
    columns: dict[str, dict[str, dict[str, str]]] = {}
    problems: dict[str, dict[str, list[str]]] = {}
    with FakeClose(org) as fake:
        pipeline = sync(fake, workdir, resources=SYNCED, warehouse=warehouse(request, kind))

    def run(stage: str, resources: list[str] = SYNCED, **server: Any) -> FakeClose:
        org.advance(timedelta(minutes=10))
        with FakeClose(org, **server) as fake:
            sync(fake, workdir, pipeline=pipeline, resources=resources)
        columns[stage] = {table: destination_columns(pipeline, table) for table in CUSTOM_TABLES}
        problems[stage] = every_table_mismatches(org, pipeline, tables=resources)
        return fake

    m.add_field(org, "lead", "Renewal Date", "date")
    m.add_field(org, "contact", "Churn Risk", "number")
    m.add_field(org, "opportunity", "Signed At", "datetime")
    m.add_field(org, "activity", "Topics", "choices", choices=["Pricing", "Security"],
                multi=True, custom_activity_type_id=demo)
    segment = m.add_field(org, "shared", "Segment", "text", associations=["lead", "contact"])
    run("untouched")
    run("quiet")  # no object changed since the full load: no event to apply
    quiet_jobs = {job.job_file_info.table_name for package in pipeline.last_trace
                  .last_load_info.load_packages for job in package.jobs["completed_jobs"]}

    health = m.add_field(org, "lead", "Health Score", "number")
    m.add_field(org, "shared", "Region Code", "text", associations=["lead", "contact"])
    run("subset", ["contacts", "custom_fields"])

    contact = org.all(o.CONTACT)[0]["id"]
    m.set_custom(org, o.CONTACT, contact, field_id(org, "contact", "Churn Risk"), 0.25)
    m.set_custom(org, o.CONTACT, contact, segment["id"], "SMB")
    activity = next(a["id"] for a in org.all(o.ACTIVITY)
                    if a.get("custom_activity_type_id") == demo)
    m.set_custom(org, o.ACTIVITY, activity, field_id(org, "activity", "Topics"), ["Security"])
    m.update_field(org, field_id(org, "opportunity", "Seats"), type_="text")
    opportunity = org.all(o.OPPORTUNITY)[0]["id"]
    m.set_custom(org, o.OPPORTUNITY, opportunity, field_id(org, "opportunity", "Signed At"),
                 "2027-03-01T10:00:00+01:00")
    m.add_field(org, "opportunity", "Competitor", "text")
    values = run("values")

    lead = org.all(o.LEAD)[0]["id"]
    m.set_custom(org, o.LEAD, lead, field_id(org, "lead", "Renewal Date"), "2027-06-30")
    m.set_custom(org, o.LEAD, lead, health["id"], 87)
    m.add_field(org, "lead", "Tier", "choices", choices=["A", "B"])
    m.set_custom(org, o.LEAD, org.all(o.LEAD)[1]["id"], segment["id"], "Enterprise")
    org.advance(timedelta(hours=2))  # older than an hour: no `data` for a non-admin key
    by_id = run("by_id", admin=False)
    yield {"kind": kind, "pipeline": pipeline, "columns": columns, "problems": problems,
           "values": values, "by_id": by_id, "quiet_jobs": quiet_jobs,
           "ids": {"contact": contact, "activity": activity, "opportunity": opportunity,
                   "lead": lead}}


def test_a_new_field_gets_its_typed_column_although_no_object_changed(new_fields):
    types = SQL_TYPES[new_fields["kind"]]
    got = new_fields["columns"]["untouched"]
    assert got["leads"]["custom_renewal_date"] == types["date"]
    assert got["contacts"]["custom_churn_risk"] == types["double"]
    assert got["opportunities"]["custom_signed_at"] == types["timestamp"]
    assert got["custom_activities"]["custom_topics"] == types["json"]
    assert got["leads"]["custom_segment"] == got["contacts"]["custom_segment"] == types["text"]
    assert not [c for table in got.values() for c in table if "__v_" in c]
    assert new_fields["problems"]["untouched"] == {}


def test_a_table_left_out_of_a_run_gets_its_new_columns_when_next_synced(new_fields):
    types = SQL_TYPES[new_fields["kind"]]
    assert new_fields["columns"]["subset"]["contacts"]["custom_region_code"] == types["text"]
    leads = new_fields["columns"]["values"]["leads"]  # no lead changed in that run
    assert leads["custom_health_score"] == types["double"]
    assert leads["custom_region_code"] == types["text"]
    assert new_fields["problems"]["subset"] == {}


def test_new_columns_take_values_from_events_lists_and_reads_by_id(new_fields):
    types, ids = SQL_TYPES[new_fields["kind"]], new_fields["ids"]
    pipeline = new_fields["pipeline"]
    assert [r.endpoint for r in new_fields["values"].requests
            if r.endpoint == "/opportunity/" and "id__in" not in r.params]  # read in full
    assert new_fields["columns"]["values"]["opportunities"]["custom_competitor"] == types["text"]
    assert new_fields["columns"]["by_id"]["leads"]["custom_tier"] == types["text"]
    assert [r for r in new_fields["by_id"].requests if r.endpoint == "/lead/{id}/"]
    assert new_fields["problems"]["values"] == new_fields["problems"]["by_id"] == {}
    assert rows(pipeline, "SELECT custom_churn_risk, custom_segment FROM close.contacts "
                          f"WHERE id = '{ids['contact']}'") == [(0.25, "SMB")]
    assert [as_json(v) for (v,) in rows(pipeline, "SELECT custom_topics FROM "
                                        f"close.custom_activities WHERE id = '{ids['activity']}'")
            ] == [["Security"]]
    signed = rows(pipeline, "SELECT custom_signed_at FROM close.opportunities "
                            f"WHERE id = '{ids['opportunity']}'")
    assert [str(v) for (v,) in signed] == ["2027-03-01 09:00:00+00:00"]
    assert [(str(d), s) for d, s in rows(pipeline, (
        "SELECT custom_renewal_date, custom_health_score FROM close.leads "
        f"WHERE id = '{ids['lead']}'"))] == [("2027-06-30", 87.0)]
    assert not [c for table in new_fields["columns"]["by_id"].values() for c in table
                if "__v_" in c]


def test_a_run_with_no_new_column_writes_no_job_for_unchanged_tables(new_fields):
    """The declaration costs a job only in the run that adds columns."""
    assert new_fields["quiet_jobs"] and not set(new_fields["quiet_jobs"]) & set(CUSTOM_TABLES)
