"""Event Log events -> `field_changes` rows: what changed, under the table's own column names,
with Close's values as JSON text; what Close did not say is a row with unknown values."""

from __future__ import annotations

from typing import Any

from close_source.catalog import BY_TABLE
from close_source.read.event_log import Event
from close_source.shape.custom_columns import CustomColumns
from close_source.shape.field_changes import field_change_rows
from tests.connector.test_custom_columns import Definitions, field

LEADS = BY_TABLE["leads"]


def event(action: str = "updated", **raw: Any) -> Event:
    parsed = Event.parse({"id": "ev_1", "object_type": "lead", "object_id": "lead_1",
                          "lead_id": "lead_1", "action": action, "user_id": "user_1",
                          "date_updated": "2026-01-02T03:04:05.678", **raw})
    assert parsed is not None
    return parsed


def rows_of(e: Event, custom: CustomColumns | None = None) -> dict[str, tuple[Any, ...]]:
    return {row["field"]: (row["old_value"], row["new_value"], row["values_known"])
            for row in field_change_rows(LEADS, e, custom)}


def test_an_update_gives_a_row_per_changed_field_but_bookkeeping_ones():
    rows = list(field_change_rows(LEADS, event(
        changed_fields=["name", "status_id", "date_updated", "updated_by"],
        previous_data={"name": "Acme", "status_id": "stat_1", "date_updated": "x"},
        data={"name": "Acme Inc", "status_id": "stat_2", "date_updated": "y", "url": None}),
        None))
    assert {row["field"]: (row["old_value"], row["new_value"]) for row in rows} == {
        "name": ('"Acme"', '"Acme Inc"'), "status_id": ('"stat_1"', '"stat_2"')}
    row = rows[0]
    assert (row["event_id"], row["object_type"], row["object_id"], row["lead_id"],
            row["user_id"], row["action"], row["values_known"]) == (
        "ev_1", "lead", "lead_1", "lead_1", "user_1", "updated", True)
    assert row["changed_at"].isoformat() == "2026-01-02T03:04:05.678000+00:00"


def test_a_custom_field_is_named_by_its_column_and_a_cleared_value_is_known_null():
    custom = CustomColumns("name", None, Definitions(lead=[field("cf_1", "Industry")]))
    said = rows_of(event(changed_fields=["custom.cf_1"], previous_data={"custom.cf_1": "Cars"},
                         data={"name": "Acme"}), custom)
    assert said == {"custom_industry": ('"Cars"', None, True)}


def test_a_nested_object_is_one_row_per_column_that_changed():
    said = rows_of(event(changed_fields=["owner"],
                         previous_data={"owner": {"id": "u1", "name": "Ann"}},
                         data={"owner": {"id": "u1", "name": "Bob"}}))
    assert said == {"owner__name": ('"Ann"', '"Bob"', True)}


def test_fields_without_values_are_kept_with_unknown_values():
    hidden = rows_of(event(changed_fields=["name", "description"]))  # a non-admin key, later
    assert hidden == {"name": (None, None, False), "description": (None, None, False)}
    left_out = rows_of(event(changed_fields=["name", "secret"], previous_data={"name": "A"},
                             data={"name": "B"}))
    assert left_out == {"name": ('"A"', '"B"', True), "secret": (None, None, False)}


def test_a_create_has_every_value_and_a_delete_or_merge_one_row_for_the_object():
    created = rows_of(event("created", data={"name": "Acme", "url": None, "status_id": "s"}))
    assert created == {"name": (None, '"Acme"', True), "status_id": (None, '"s"', True)}
    assert rows_of(event("created")) == {"*": (None, None, False)}
    deleted = rows_of(event("deleted", previous_data={"name": "Acme"}))
    assert deleted == {"*": ('{"name":"Acme"}', None, True)}
    merged = rows_of(event("merged", data={"id": "lead_1"}))
    assert merged == {"*": (None, '{"id":"lead_1"}', True)}


def test_lists_are_json_and_objects_kept_in_other_tables_are_not_rows():
    said = rows_of(event(changed_fields=["emails", "contacts"],
                         previous_data={"emails": [], "contacts": [{"id": "c"}]},
                         data={"emails": [{"email": "a@b.c"}], "contacts": []}))
    assert said == {"emails": ("[]", '[{"email":"a@b.c"}]', True)}
