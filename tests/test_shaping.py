"""Shaping: rows per table, timestamps in UTC, child lists as child tables, the rest as JSON."""

import json
from datetime import UTC, date, datetime

import pyarrow as pa

from close_source.arrow_tables import table_specs, to_arrow
from close_source.catalog import BY_TABLE
from close_source.shaping import shape


def rows_of(table: str, obj: dict) -> dict[str, list[dict]]:
    result: dict[str, list[dict]] = {}
    for name, row in shape(BY_TABLE[table], obj):
        result.setdefault(name, []).append(row)
    return result


def test_lead_drops_objects_of_other_tables_and_splits_child_lists():
    lead = {
        "id": "lead_1", "contacts": [{"id": "cont_1"}], "opportunities": [], "tasks": [],
        "addresses": [{"city": "Gotham", "zipcode": "10001"}, {"city": "Metropolis"}],
        "custom.cf_abc": ["A", "B"], "contact_ids": ["cont_1"],
        "date_created": "2013-02-01T00:54:51.333000+00:00",
    }
    tables = rows_of("leads", lead)
    (row,) = tables["leads"]
    assert set(row) == {"id", "custom.cf_abc", "contact_ids", "date_created"}
    assert json.loads(row["custom.cf_abc"]) == ["A", "B"]
    assert row["date_created"] == datetime(2013, 2, 1, 0, 54, 51, 333000, tzinfo=UTC)
    assert tables["leads__addresses"] == [
        {"lead_id": "lead_1", "_pos": 0, "city": "Gotham", "zipcode": "10001"},
        {"lead_id": "lead_1", "_pos": 1, "city": "Metropolis"},
    ]


def test_an_empty_child_list_yields_a_tombstone_that_clears_old_rows():
    tables = rows_of("contacts", {"id": "cont_1", "emails": [], "phones": [{"phone": "+1"}]})
    assert tables["contacts__emails"] == [{"contact_id": "cont_1", "_deleted": True}]
    assert tables["contacts__urls"] == [{"contact_id": "cont_1", "_deleted": True}]
    assert tables["contacts__phones"] == [{"contact_id": "cont_1", "_pos": 0, "phone": "+1"}]


def test_nested_objects_are_flattened_and_lists_inside_them_are_json():
    email = {"id": "acti_1", "envelope": {"subject": "Hi", "from": [{"email": "a@b.c"}]}}
    (row,) = rows_of("emails", email)["emails"]
    assert row["envelope__subject"] == "Hi"
    assert json.loads(row["envelope__from"]) == [{"email": "a@b.c"}]


def test_timestamps_become_utc_whatever_offset_or_precision_close_sends():
    task = {"id": "task_1", "date": "2013-02-06", "date_created": "2016-10-19T12:22:10.434000",
            "date_updated": "2014-06-27T22:00:00-08:00"}
    (row,) = rows_of("tasks", task)["tasks"]
    assert row["date"] == datetime(2013, 2, 6, tzinfo=UTC)
    assert row["date_created"] == datetime(2016, 10, 19, 12, 22, 10, 434000, tzinfo=UTC)
    assert row["date_updated"] == datetime(2014, 6, 28, 6, 0, tzinfo=UTC)


def test_unparseable_values_are_kept_not_dropped():
    (row,) = rows_of("notes", {"id": "acti_1", "date_created": "not a date"})["notes"]
    assert row["date_created"] == "not a date"


def test_date_only_fields_stay_dates():
    (row,) = rows_of("opportunities", {"id": "oppo_1", "date_won": "2013-02-06"})["opportunities"]
    assert row["date_won"] == date(2013, 2, 6)


def test_arrow_types_come_from_the_catalog_then_the_values():
    spec = table_specs(BY_TABLE["notes"])[0]
    rows = [{"id": "a", "date_created": datetime(2020, 1, 1, tzinfo=UTC), "n": 1, "x": None},
            {"id": "b", "date_created": None, "n": 2.5, "x": None}]
    table, columns = to_arrow(spec, rows)
    assert table.schema.field("date_created").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("n").type == pa.float64()
    assert "x" not in columns  # null everywhere and never typed: no column yet
    assert table.column("n").to_pylist() == [1.0, 2.5]


def test_a_value_that_does_not_fit_goes_to_a_variant_column_not_away():
    spec = table_specs(BY_TABLE["notes"])[0]
    to_arrow(spec, [{"id": "a", "duration": 5}])
    table, columns = to_arrow(spec, [{"id": "b", "duration": "five"}, {"id": "c", "duration": 7}])
    assert table.column("duration").to_pylist() == [None, 7]
    assert table.column("duration__v_text").to_pylist() == ["five", None]
    assert "duration__v_text" in columns
