"""Custom-field column rules, on definitions alone: names, collisions, limits, freezing, types.

End-to-end behaviour against the fake Close (renames, deletes, retypes between syncs) is in
tests/end_to_end/test_custom_fields.py.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from dlt.common.normalizers.naming.snake_case import NamingConvention

from close_source.read.custom_fields import RawDefinitions
from close_source.run import state as st
from close_source.shape.custom_columns import MAX_IDENTIFIER, CustomColumns, normalized


def field(field_id: str, name: str, type_: str = "text", *, multi: bool = False,
          created: str = "2020-01-01T00:00:00+00:00", **extra: Any) -> dict[str, Any]:
    return {"id": field_id, "name": name, "type": type_, "accepts_multiple_values": multi,
            "date_created": created, **extra}


class Definitions:
    """Definitions that a test changes between "runs", counting how often they are read."""

    def __init__(self, **by_object_type: list[dict[str, Any]]) -> None:
        self.by_object_type = by_object_type
        self.loads = 0

    def __call__(self) -> RawDefinitions:
        self.loads += 1
        return RawDefinitions({kind: list(fields)
                               for kind, fields in self.by_object_type.items()}, {})


def columns_of(custom: CustomColumns, table: str) -> dict[str, str]:
    """field id -> current column."""
    return {fid: entry.column for fid, entry in custom.tables[table].fields.items()}


def rerun(custom: CustomColumns, definitions: Definitions) -> CustomColumns:
    """The next run: the state the previous one saved, and the definitions as they are now."""
    state: dict[str, Any] = {}
    st.save_custom_columns(state, custom.mode, custom.frozen())
    kept = json.loads(json.dumps(state))  # as dlt stores it
    return CustomColumns(custom.mode, st.custom_columns(kept, custom.mode), definitions)


@pytest.mark.parametrize(("name", "expected"), [
    ("Industry", "industry"),
    ("# of users", "of_users"),
    ("Budget ($)", "budget"),
    ("Lead  Source -- 2", "lead_source_2"),
    ("Ünïcödé Straße", "unicode_strae"),
    ("2nd Owner", "2nd_owner"),
    ("日本", ""),
])
def test_normalized_names(name, expected):
    assert normalized(name) == expected


def test_names_collide_deterministically_and_the_older_field_keeps_the_plain_name():
    newer = field("cf_NEWer123456", "lead_source", created="2021-05-01T00:00:00+00:00")
    older = field("cf_OLDer654321", "Lead Source", created="2020-05-01T00:00:00+00:00")
    for order in ([newer, older], [older, newer]):
        custom = CustomColumns("name", None, Definitions(lead=order))
        assert columns_of(custom, "leads") == {
            "cf_OLDer654321": "custom_lead_source",
            "cf_NEWer123456": "custom_lead_source_newer1",
        }


def test_built_in_and_reserved_names_get_a_suffix():
    definitions = Definitions(activity=[
        field("acf_Type9999", "Activity Type ID", custom_activity_type_id="actitype_1"),
        field("acf_Unmap8888", "Unmapped", custom_activity_type_id="actitype_1"),
        field("acf_Jp7777", "日本", custom_activity_type_id="actitype_1"),
    ])
    custom = CustomColumns("name", None, definitions)
    assert columns_of(custom, "custom_activities") == {
        "acf_Type9999": "custom_activity_type_id_type99",
        "acf_Unmap8888": "custom_unmapped_unmap8",
        "acf_Jp7777": "custom_acf_jp7777",
    }


def test_long_names_are_short_enough_for_postgres_readable_and_distinct():
    stem = "Estimated annual recurring revenue after the second renewal negotiation"
    custom = CustomColumns("name", None, Definitions(lead=[
        field("cf_AAAAAA111", stem + " (EUR)"), field("cf_BBBBBB222", stem + " (USD)")]))
    names = columns_of(custom, "leads")
    assert names == {
        "cf_AAAAAA111": "custom_estimated_annual_recurring_revenue_after_the_aaaaaa",
        "cf_BBBBBB222": "custom_estimated_annual_recurring_revenue_after_the_bbbbbb",
    }
    assert all(len(name) <= MAX_IDENTIFIER for name in names.values())


def test_every_name_is_left_alone_by_dlt_naming_on_every_destination():
    tricky = ["Budget ($)", "# of users", "A" * 90, "x_", "__init__", "Ünï", "日本", "1",
              "Activity Type ID", "lead_source", "Lead Source"]
    custom = CustomColumns("name", None, Definitions(
        lead=[field(f"cf_{i:04d}abcdef", name) for i, name in enumerate(tricky)]))
    names = list(columns_of(custom, "leads").values())
    assert len(set(names)) == len(tricky)
    for naming in (NamingConvention(), NamingConvention(max_length=63)):
        assert [naming.normalize_identifier(name) for name in names] == names


def test_a_rename_keeps_the_column_and_a_new_field_with_the_old_name_gets_a_suffix():
    definitions = Definitions(lead=[field("cf_Src111111", "Lead Source")])
    first = CustomColumns("name", None, definitions)
    definitions.by_object_type["lead"] = [
        field("cf_Src111111", "Origin"),
        field("cf_New222222", "Lead Source", created="2022-01-01T00:00:00+00:00"),
    ]
    second = rerun(first, definitions)
    assert columns_of(second, "leads") == {"cf_Src111111": "custom_lead_source",
                                           "cf_New222222": "custom_lead_source_new222"}
    assert second.tables["leads"].fields["cf_Src111111"].name == "Origin"


def test_a_type_change_moves_values_to_a_typed_sibling_column_and_back():
    definitions = Definitions(lead=[field("cf_Emp111111", "Employees", "number")])
    custom = CustomColumns("name", None, definitions)
    assert columns_of(custom, "leads") == {"cf_Emp111111": "custom_employees"}
    definitions.by_object_type["lead"] = [field("cf_Emp111111", "Employees", "text")]
    custom = rerun(custom, definitions)
    assert columns_of(custom, "leads") == {"cf_Emp111111": "custom_employees_text"}
    assert custom.column_types("leads") == {"custom_employees": "double",
                                            "custom_employees_text": "text",
                                            "custom_unmapped": "json"}
    definitions.by_object_type["lead"] = [field("cf_Emp111111", "Employees", "number")]
    custom = rerun(custom, definitions)
    assert columns_of(custom, "leads") == {"cf_Emp111111": "custom_employees"}


def test_single_to_multi_gets_a_list_column():
    definitions = Definitions(lead=[field("cf_Ind111111", "Industry", "choices")])
    custom = CustomColumns("name", None, definitions)
    definitions.by_object_type["lead"] = [field("cf_Ind111111", "Industry", "choices", multi=True)]
    custom = rerun(custom, definitions)
    assert columns_of(custom, "leads") == {"cf_Ind111111": "custom_industry_list"}
    obj = {"id": "lead_1", "custom.cf_Ind111111": ["IT", "Cars"]}
    assert custom.split("leads", obj) == {"custom_industry_list": '["IT","Cars"]'}


def test_values_are_typed_and_misfits_are_kept_unmapped():
    custom = CustomColumns("name", None, Definitions(lead=[
        field("cf_N1", "N", "number"), field("cf_D1", "D", "date"),
        field("cf_T1", "T", "datetime"), field("cf_H1", "H", "hidden"),
        field("cf_M1", "M", "user", multi=True), field("cf_X1", "X", "number"),
        field("cf_B1", "B", "number"),
    ]))
    obj = {"id": "lead_1", "name": "Acme", "custom.cf_N1": 3, "custom.cf_D1": "2024-02-29",
           "custom.cf_T1": "2024-06-27T22:00:00-08:00", "custom.cf_H1": {"a": 1},
           "custom.cf_M1": "user_1", "custom.cf_X1": "twelve", "custom.cf_B1": 2**60}
    values = custom.split("leads", obj)
    assert obj == {"id": "lead_1", "name": "Acme"}  # custom keys are taken out
    assert values == {
        "custom_n": 3.0, "custom_d": date(2024, 2, 29),
        "custom_t": datetime(2024, 6, 28, 6, 0, tzinfo=UTC), "custom_h": '{"a":1}',
        "custom_m": '["user_1"]',
        "custom_unmapped": json.dumps({"cf_X1": "twelve", "cf_B1": 2**60}, separators=(",", ":")),
    }


def test_display_name_styles_map_to_the_same_columns_and_id_keys_win():
    custom = CustomColumns("name", None, Definitions(
        contact=[field("cf_Role1", "Role", "choices")],
        activity=[field("acf_A", "Score", "number", custom_activity_type_id="actitype_a"),
                  field("acf_B", "Score", "number", custom_activity_type_id="actitype_b")]))
    assert custom.split("contacts", {"custom": {"Role": "CEO"}}) == {"custom_role": "CEO"}
    assert custom.split("contacts", {"custom.Role": "CEO"}) == {"custom_role": "CEO"}
    assert custom.split("contacts", {"custom.cf_Role1": "CTO", "custom": {"Role": "CEO"}}) == \
        {"custom_role": "CTO"}
    activity = {"custom_activity_type_id": "actitype_b", "custom": {"Score": 4}}
    assert custom.split("custom_activities", activity) == {"custom_score_b": 4.0}


def test_an_unknown_field_reloads_definitions_once_then_is_kept(caplog):
    definitions = Definitions(lead=[field("cf_Old1", "Old")])
    custom = CustomColumns("name", None, definitions)
    definitions.by_object_type["lead"].append(field("cf_Mid1", "Created Mid Run"))
    assert custom.split("leads", {"custom.cf_Mid1": "x"}) == {"custom_created_mid_run": "x"}
    assert definitions.loads == 2
    assert custom.split("leads", {"custom.cf_Ghost": "boo", "custom.cf_Gone": 1}) == \
        {"custom_unmapped": '{"cf_Ghost":"boo","cf_Gone":1}'}
    assert definitions.loads == 2  # once per run, however many unknown fields
    assert "cf_Ghost" in caplog.text and "custom_unmapped" in caplog.text


def test_id_mode_names_columns_after_field_ids():
    custom = CustomColumns("id", None, Definitions(lead=[field("cf_AbC123", "Industry")]))
    assert columns_of(custom, "leads") == {"cf_AbC123": "custom_cf_abc123"}


def test_a_deleted_field_keeps_its_column_and_shows_as_deleted():
    definitions = Definitions(lead=[field("cf_Gone1", "Legacy Score", "number")])
    custom = CustomColumns("name", None, definitions)
    definitions.by_object_type["lead"] = []
    custom = rerun(custom, definitions)
    assert custom.column_types("leads")["custom_legacy_score"] == "double"
    (row,) = [r for r in custom.definition_rows() if r["id"] == "cf_Gone1"]
    assert (row["name"], row["column_name"], row["is_deleted"]) == \
        ("Legacy Score", "custom_legacy_score", True)


def test_shared_fields_apply_where_associations_or_schemas_say():
    """`associations` on the shared definition, or only the per-type schema: both readings."""
    from close_source.read.custom_fields import definitions_by_table

    shared = [field("cf_Assoc1", "Region", associations=[{"object_type": "lead"},
                                                        {"object_type": "contact"}]),
              field("cf_Bare01", "Tier")]
    schemas = {"opportunity": [{"id": "cf_Bare01", "is_shared": True}],
               "contact": [field("cf_Only01", "Schema Only", "number")]}
    tables = definitions_by_table(RawDefinitions({"shared": shared}, schemas))
    names = {table: sorted((f.name, f.shared) for f in fields)
             for table, fields in tables.items()}
    assert names == {
        "leads": [("Region", True)],
        "contacts": [("Region", True), ("Schema Only", False)],
        "opportunities": [("Tier", True)],
        "custom_activities": [],
    }
