"""Descriptions of tables and columns, on the catalog and definitions alone: every table has one,
the file names only tables that exist, a custom column says its field's name, id, type and
choices, and the run's hints and the comments written after it (from the saved state) agree.

Comments read back from DuckDB and PostgreSQL: tests/end_to_end/test_full_load.py and
test_custom_field_changes.py; BigQuery's hints: tests/end_to_end/test_bigquery_offline.py.
"""

from __future__ import annotations

import json
from typing import Any

import dlt
from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext

from close_source.catalog import (
    CATALOG,
    CUSTOM_FIELD_CHANGES_TABLE,
    EVENTS_TABLE,
    FIELD_CHANGES_TABLE,
    LEAD_MERGES_TABLE,
    history_table,
    owned_tables,
)
from close_source.run import comments
from close_source.run import state as st
from close_source.run.stage_history import SECONDS_COLUMN, STAGES
from close_source.run.verify_report import VERIFY_RUNS
from close_source.shape import descriptions as d
from close_source.shape.arrow_tables import TableSpec, table_specs
from close_source.shape.custom_columns import CustomColumns
from close_source.shape.definition_changes import TEXT_COLUMNS
from close_source.shape.field_changes import field_changes_spec
from close_source.shape.versions import VERSION_COLUMNS, history_spec
from tests.connector.test_custom_columns import Definitions, field

OURS = {LEAD_MERGES_TABLE, CUSTOM_FIELD_CHANGES_TABLE, FIELD_CHANGES_TABLE, EVENTS_TABLE,
        VERIFY_RUNS, "_dlt_pipeline_state", *(stage.table for stage in STAGES)}
CATALOG_TABLES = {table for entry in CATALOG for table in owned_tables(entry)}


def test_every_table_has_a_description_and_the_file_names_no_other():
    assert d.known_tables() == CATALOG_TABLES | OURS
    for table in CATALOG_TABLES | OURS:
        text = d.table_description(table)
        assert text and "[003:" not in text, table  # no citation a reader cannot follow
    assert d.table_description("leads_history").startswith("Versions of leads")
    assert d.table_description("my_own_table") is None
    assert d.table_description("leads__nothing") is None


def test_the_columns_close_sync_makes_are_described_in_the_file():
    specs: list[TableSpec] = [field_changes_spec()]
    for entry in CATALOG:
        specs += table_specs(entry, soft_deletes=True)
    for spec in specs:
        for column in spec.types:
            assert d.listed_description(spec.name, column), (spec.name, column)
    for stage in STAGES:
        for column in [name for name, _, _ in stage.columns] + [SECONDS_COLUMN]:
            assert d.listed_description(stage.table, column), (stage.table, column)
    for column in ("change_id", "seen_at", *TEXT_COLUMNS):
        assert d.listed_description(CUSTOM_FIELD_CHANGES_TABLE, column), column
    for column in ("source_lead_id", "destination_lead_id", "date_merged", "event_id"):
        assert d.listed_description(LEAD_MERGES_TABLE, column), column


def test_a_history_table_describes_its_own_columns_and_those_of_its_table():
    for column in VERSION_COLUMNS:
        text = d.column_description(history_table("leads"), column)
        assert "version" in text and "API returns it" not in text, column
    assert "version" in d.column_description("leads_history", "_deleted")
    assert "delete marker" in d.column_description("leads", "_deleted")
    assert d.column_description("leads_history", "status_label") == \
        d.column_description("leads", "status_label")


def test_a_column_the_file_does_not_name_is_described_by_its_shape():
    assert d.column_description("emails", "envelope__in_reply_to") == \
        "Close's envelope.in_reply_to: a field of a nested object, flattened into its own column."
    assert d.column_description("calls", "duration__v_text").startswith(
        "Values of duration that do not fit its type, as text")
    assert d.column_description("calls", "new_thing") == \
        "Close's new_thing field, as its API returns it."
    assert "custom_fields names it" in d.column_description("leads", "custom_unknown")
    # activity tables share their columns' descriptions; a table's own wins
    assert d.column_description("notes", "user_id") == d.column_description("calls", "user_id")
    assert "assigned" in d.column_description("opportunities", "user_id")


def lead_columns(custom: CustomColumns) -> dict[str, str]:
    fields = d.custom_fields_of(custom, "leads")
    return {column: d.column_description("leads", column, fields) for column in fields}


def test_a_custom_column_names_its_field_its_type_and_choices():
    definitions = Definitions(lead=[
        field("cf_ind", "Industry", "choices", choices=["Software", "Retail"]),
        field("cf_q", 'Owner\'s "notes"', "textarea"),
        field("cf_prod", "Products", "choices", multi=True, choices=["CRM", "Dialer"]),
        field("cf_own", "Account Owner", "user"),
        field("cf_demo", "Next Demo", "datetime"),
        field("cf_many", "Many", "choices", choices=[f"choice {n}" for n in range(200)]),
    ])
    described = lead_columns(CustomColumns("name", None, definitions))
    assert described["custom_industry"] == \
        'Close custom field "Industry" (cf_ind), type choices: Software, Retail.'
    assert described["custom_owner_s_notes"] == \
        'Close custom field "Owner\'s "notes"" (cf_q), type textarea.'
    assert described["custom_products"] == ('Close custom field "Products" (cf_prod), type '
                                            'choices (several values, a JSON array): CRM, Dialer.')
    assert described["custom_account_owner"] == \
        'Close custom field "Account Owner" (cf_own), type user (a user id, users.id).'
    assert described["custom_next_demo"] == \
        'Close custom field "Next Demo" (cf_demo), type datetime (in UTC).'
    many = described["custom_many"]
    assert "choice 29, and 170 more (custom_fields.choices)." in many and "choice 30" not in many
    assert all(len(text) <= d.MAX_LENGTH for text in described.values())


def test_descriptions_follow_renames_retypes_and_deletes_and_the_state_agrees():
    definitions = Definitions(lead=[
        field("cf_ind", "Industry", "choices", choices=["Software", "Retail"]),
        field("cf_emp", "Employees", "number"), field("cf_src", "Lead Source")])
    first = CustomColumns("name", None, definitions)
    definitions.by_object_type["lead"] = [
        field("cf_ind", "Vertical", "choices", choices=["Software", "Retail", "Biotech"]),
        field("cf_emp", "Employees", "text")]
    state: dict[str, Any] = {}
    st.save_custom_columns(state, "name", first.frozen())
    now = CustomColumns("name", st.custom_columns(json.loads(json.dumps(state)), "name"),
                        definitions)
    described = lead_columns(now)
    assert described == {
        "custom_industry": 'Close custom field "Vertical" (cf_ind), type choices: Software, '
                           'Retail, Biotech.',
        "custom_employees": 'Close custom field "Employees" (cf_emp), type text: this column '
                            'holds its values from before its type changed; they continue in '
                            'custom_employees_text, and this one is no longer filled.',
        "custom_employees_text": 'Close custom field "Employees" (cf_emp), type text.',
        "custom_lead_source": 'Close custom field "Lead Source" (cf_src), deleted in Close: no '
                              'longer filled. It was type text.'}
    # the comments written after the load read the state this run saved: the same texts
    st.save_custom_columns(state, "name", now.frozen())
    saved = comments.custom_fields(json.loads(json.dumps(state)))["leads"]
    assert {column: d.column_description("leads", column, saved) for column in saved} == \
        described
    # the history table's custom columns are the table's
    versions = history_spec(next(e for e in CATALOG if e.table == "leads"), now)
    versions.declared_types()
    hints = versions.hints(["custom_industry", "_valid_from"], "merge")
    columns = hints["columns"]
    assert columns["custom_industry"]["description"] == described["custom_industry"]
    assert columns["_valid_from"]["description"].startswith("When this version began")
    assert hints["additional_table_hints"]["description"].startswith("Versions of leads")


def test_hints_carry_the_table_description_and_on_bigquery_its_own_hint_too():
    assert d.table_hints("calls") == {"description": d.table_description("calls")}
    assert d.table_hints("calls", bigquery=True) == {
        "description": d.table_description("calls"),
        "x-bigquery-table-description": d.table_description("calls")}
    assert d.table_hints("not_ours") is None


def test_descriptions_stay_out_of_the_schema_where_comments_carry_them(tmp_path):
    """DuckDB and PostgreSQL get COMMENT ON after each load, not dlt hints (every run's extract
    merges hints per item); elsewhere (BigQuery) the hints are how they get there."""
    assert frozenset(comments.DIALECTS) == d.COMMENTED
    try:
        for kind, expected in (("duckdb", False), ("postgres", False), ("bigquery", True)):
            dlt.pipeline(f"describe_{kind}", destination=kind, pipelines_dir=str(tmp_path))
            assert d.in_schema() is expected, kind  # the pipeline made last is the active one
            assert (d.table_hints("calls") is not None) is expected, kind
            assert ("description" in d.described("calls", {"id": {}})["id"]) is expected, kind
    finally:  # no active pipeline for the tests after this one
        Container()[PipelineContext].deactivate()
