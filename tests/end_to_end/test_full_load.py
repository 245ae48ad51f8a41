"""A full load lands every catalog table with the right rows, keys and values."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, changes, generate_org
from close_fake import org as o
from close_source.catalog import BY_TABLE, CATALOG, owned_tables
from close_source.docs import PAGE, reference_page
from close_source.run import comments
from close_source.shape.descriptions import table_description
from close_source.timestamps import to_date, to_utc
from tests.comments import TABLE, comments_of
from tests.conftest import WAREHOUSES, warehouse
from tests.docs_pages import ROOT
from tests.helpers import rows, sync
from tests.invariant import db_rows
from tests.oracle import (
    NOT_LISTED,
    TABLE_OF_OBJECT_TYPE,
    custom_definitions,
    decoded,
    expected_objects,
    plain_column,
    typed,
)
from tools.tables_reference import reference_org


@pytest.fixture(scope="module", params=WAREHOUSES)
def loaded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeOrg, dlt.Pipeline]]:
    """One organisation loaded into each warehouse: every test below runs on both. The docs'
    tables reference is made from a load of the same organisation."""
    org = reference_org()
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path_factory.mktemp("full"),
                        warehouse=warehouse(request, request.param))
    yield org, pipeline


@pytest.mark.parametrize("table", [entry.table for entry in CATALOG])
def test_table_holds_exactly_the_org_objects(loaded: tuple[FakeOrg, dlt.Pipeline], table: str):
    org, pipeline = loaded
    expected = expected_objects(org, table)
    actual = db_rows(pipeline, table)
    assert expected, f"the fake org has no {table}: the test would prove nothing"
    assert set(actual) == set(expected)


@pytest.mark.parametrize("table", [entry.table for entry in CATALOG])
def test_primary_key_is_declared(loaded: tuple[FakeOrg, dlt.Pipeline], table: str):
    _, pipeline = loaded
    columns = pipeline.default_schema.get_table_columns(table)
    declared = [name for name, column in columns.items() if column.get("primary_key")]
    assert sorted(declared) == sorted(BY_TABLE[table].primary_key)
    # a full load is a snapshot: it replaces (incremental runs merge on the key)
    assert pipeline.default_schema.get_table(table)["write_disposition"] == "replace"


@pytest.mark.parametrize("table", [entry.table for entry in CATALOG])
def test_scalar_values_match_close(loaded: tuple[FakeOrg, dlt.Pipeline], table: str):
    """Every top-level scalar of every object equals its column (timestamps compared in UTC)."""
    org, pipeline = loaded
    entry = BY_TABLE[table]
    naming = pipeline.default_schema.naming
    actual = db_rows(pipeline, table)
    compared = 0
    for key, obj in expected_objects(org, table).items():
        row = actual[key]
        for field, value in obj.items():
            if isinstance(value, (list, dict)) or field in entry.drop:
                continue
            if field in NOT_LISTED.get(table, ()):
                continue
            column = naming.normalize_identifier(field)
            if field.startswith("custom."):
                continue  # typed columns: test_custom_values_land_typed_in_named_columns
            if value is None:
                assert row.get(column) is None, (table, key, field)
                continue
            assert column in row, (table, field)
            assert _same(entry, field, value, row[column]), (table, key, field, value, row[column])
            compared += 1
    assert compared > 0


def _same(entry: Any, field: str, api_value: Any, db_value: Any) -> bool:
    if field in entry.dates:
        return to_date(api_value) == (db_value if isinstance(db_value, date) else None)
    if isinstance(db_value, datetime):
        return to_utc(api_value) == to_utc(db_value)
    if isinstance(api_value, float) or isinstance(db_value, float):
        return abs(float(api_value) - float(db_value)) < 1e-9
    return api_value == db_value


def test_leads_carry_no_nested_objects_and_keep_addresses(loaded):
    org, pipeline = loaded
    columns = set(pipeline.default_schema.get_table_columns("leads"))
    assert not {"contacts", "opportunities", "tasks"} & columns
    expected = sum(len(lead.get("addresses") or []) for lead in org.all("lead"))
    assert expected > 0
    assert rows(pipeline, "SELECT count(*) FROM close.leads__addresses") == [(expected,)]
    city = next(a["city"] for lead in org.all("lead") for a in lead.get("addresses") or [])
    assert rows(pipeline, "SELECT count(*) FROM close.leads__addresses a JOIN close.leads l "
                          f"ON a.lead_id = l.id WHERE a.city = '{city}'")[0][0] >= 1


def test_contact_children_and_lead_id(loaded):
    org, pipeline = loaded
    for child in ("emails", "phones", "urls"):
        expected = sum(len(c.get(child) or []) for c in org.all("contact"))
        got = rows(pipeline, f"SELECT count(*) FROM close.contacts__{child}")[0][0]
        assert got == expected, child
    missing = rows(pipeline, "SELECT count(*) FROM close.contacts WHERE lead_id IS NULL")
    assert missing == [(0,)]


def test_group_members_and_pipeline_statuses_land_as_child_tables(loaded):
    org, pipeline = loaded
    members = sum(len(group.get("members") or []) for group in org.all("group"))
    assert members > 0
    assert rows(pipeline, "SELECT count(*) FROM close.groups__members") == [(members,)]
    assert rows(pipeline, "SELECT count(*) FROM close.pipelines__statuses")[0][0] > 0
    assert rows(pipeline, "SELECT count(*) FROM close.sequences__steps")[0][0] > 0


@pytest.mark.parametrize("kind", ["lead", "contact", "opportunity", "activity"])
def test_custom_values_land_typed_in_named_columns(loaded, kind: str):
    """Every custom value of every object, in `custom_<name>`, typed; absent ones null."""
    org, pipeline = loaded
    table = TABLE_OF_OBJECT_TYPE[kind]
    definitions = {fid: d for (k, fid), d in custom_definitions(org).items() if k == kind}
    actual = db_rows(pipeline, table)
    columns = pipeline.default_schema.get_table_columns(table)
    for definition in definitions.values():  # declared even when no object has a value
        assert plain_column(definition["name"]) in columns, definition["name"]
    assert not [c for c in columns if "__v_" in c or c.startswith("custom_cf_")]
    compared = 0
    for key, obj in expected_objects(org, table).items():
        row = actual[key]
        for field_id, definition in definitions.items():
            column = plain_column(definition["name"])
            value = obj.get(f"custom.{field_id}")
            if value is None:
                assert row[column] is None, (table, key, column)
                continue
            assert decoded(definition, row[column]) == typed(definition, value), (key, column)
            compared += 1
        assert row["custom_unmapped"] is None
    assert compared > 10


def test_all_task_types_land(loaded):
    org, pipeline = loaded
    kinds = {task["_type"] for task in org.all("task")}
    assert len(kinds) > 3
    got = {row[0] for row in rows(pipeline, "SELECT DISTINCT _type FROM close.tasks")}
    assert got == kinds


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_an_organisation_without_meetings_loads_an_empty_meetings_table(request, tmp_path,
                                                                         kind):
    """dlt makes no table of an item without columns: an empty table read to the end is
    declared with the columns whose types are known, or replacing it fails the whole load."""
    org = generate_org(seed=5, leads=4)
    for meeting in [a for a in org.all(o.ACTIVITY) if a.get("_type") == "Meeting"]:
        changes.delete(org, o.ACTIVITY, meeting["id"])
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, warehouse=warehouse(request, kind),
                        resources=["leads", "meetings"], history=["meetings"])
    assert rows(pipeline, "SELECT count(*) FROM meetings") == [(0,)]
    assert rows(pipeline, "SELECT count(*) FROM meetings_history") == [(0,)]
    assert rows(pipeline, "SELECT count(*) FROM leads") == [(4,)]


# ---- descriptions (docs/reading-close.md, "Descriptions") -----------------------------------

CATALOG_TABLES = [table for entry in CATALOG for table in owned_tables(entry)]
MAIN_TABLES = ("leads", "contacts", "opportunities", "tasks", "users", "calls", "emails",
               "notes", "meetings", "sms", "lead_status_changes", "opportunity_status_changes")


def test_every_table_and_column_reads_back_its_comment(loaded: tuple[FakeOrg, dlt.Pipeline]):
    """Every table of the dataset and every column has its comment (dlt's tables their dlt
    description); each table of the catalog and of close-sync its own; no column of the main
    tables is described only by the shape of its name; a second pass writes nothing."""
    _, pipeline = loaded
    found = comments_of(pipeline)
    assert set(CATALOG_TABLES) <= set(found) and "lead_status_history" in found
    for table, held in found.items():
        assert all(comment for comment in held.values()), (table, held)
        if table in CATALOG_TABLES or table in ("field_changes", "custom_field_changes"):
            assert held[TABLE] == table_description(table), table
    assert found["leads"][TABLE].startswith("Close leads: one row per lead")
    assert found["_dlt_loads"][TABLE] == "Created by DLT. Tracks completed loads"
    assert found["lead_status_history"][TABLE].startswith("Stage history")  # its build marker
    assert found["lead_status_history"]["seconds_in_from_status"].startswith("Seconds since")
    assert found["opportunities"]["value"].startswith("The deal's value in cents")
    assert found["calls"]["cost"] == "Cost of the call in US cents, a decimal number (as text)."
    for table in MAIN_TABLES:
        generic = {column: comment for column, comment in found[table].items()
                   if comment and "as its API returns it" in comment}
        assert generic == {}, table
    assert comments.ensure(pipeline) == 0  # nothing differs: nothing written


def test_every_column_of_leads_says_what_it_holds(loaded: tuple[FakeOrg, dlt.Pipeline]):
    """Standard columns from Close's docs; each custom column names its field: its name, id,
    type and, for choices, the choices."""
    org, pipeline = loaded
    leads = comments_of(pipeline)["leads"]
    assert set(leads) - {TABLE} == set(pipeline.default_schema.get_table_columns("leads"))
    assert leads["date_created"] == "When the object was created in Close (UTC)."
    assert leads["status_label"].startswith("Label of the lead's status")
    custom = 0
    for (kind, field_id), definition in custom_definitions(org).items():
        if kind != "lead":
            continue
        comment = leads[plain_column(definition["name"])]
        assert comment.startswith(f'Close custom field "{definition["name"]}" ({field_id}), '
                                  f'type {definition["type"]}'), comment
        if definition["type"] == "choices":
            assert comment.endswith(": " + ", ".join(definition["choices"]) + "."), comment
        custom += 1
    assert custom > 10
    assert leads["custom_unmapped"].startswith("Custom values that fit no column")


# ---- the docs' tables reference (docs/tables.md) ---------------------------------------------


def test_the_tables_reference_is_generated_from_this_load(loaded: tuple[FakeOrg, dlt.Pipeline]):
    """docs/tables.md is what `close_source.docs` makes of this load, on either warehouse (the
    schema is dlt's, not the destination's), and names every table the load left."""
    _, pipeline = loaded
    page = reference_page(pipeline)
    committed = (ROOT / PAGE).read_text(encoding="utf-8")
    assert page == committed, f"{PAGE} differs from this load: run `python3 dev.py docs`"
    with pipeline.sql_client() as client:
        tables = {name for (name,) in client.execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            pipeline.dataset_name)}
    headings = set(re.findall(r"^#{2,3} (\S+)$", page, flags=re.M))
    assert set(CATALOG_TABLES) | {"field_changes", "custom_field_changes",
                                  "lead_status_history", "_dlt_loads"} <= tables
    assert tables - headings == set()
