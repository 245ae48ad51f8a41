"""Shaping: rows per table, timestamps in UTC, child lists as child tables, the rest as JSON."""

import json
from datetime import UTC, date, datetime

import pyarrow as pa

from close_source.catalog import BY_TABLE
from close_source.shape.arrow_tables import table_specs, to_arrow
from close_source.shape.batcher import Columns
from close_source.shape.rows import shape


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
    assert row["date_created"] == "2013-02-01T00:54:51.333000+00:00"  # typed by the Arrow layer
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


def typed(table: str, rows: list[dict]) -> pa.Table:
    columns = Columns()
    for row in rows:
        columns.append(row)
    return to_arrow(table_specs(BY_TABLE[table])[0], columns)


def test_timestamps_become_utc_whatever_offset_or_precision_close_sends():
    rows = [{"id": "task_1", "date": "2013-02-06", "date_created": "2016-10-19T12:22:10.434000",
             "date_updated": "2014-06-27T22:00:00-08:00"},
            {"id": "task_2", "date": "2013-02-07T10:00:00+00:00", "date_created": None,
             "date_updated": "2014-06-27T22:00:00+00:00"}]
    table = typed("tasks", rows)
    assert table.column("date").to_pylist() == [datetime(2013, 2, 6, tzinfo=UTC),
                                                 datetime(2013, 2, 7, 10, tzinfo=UTC)]
    assert table.column("date_created").to_pylist() == [
        datetime(2016, 10, 19, 12, 22, 10, 434000, tzinfo=UTC), None]
    assert table.column("date_updated").to_pylist()[0] == datetime(2014, 6, 28, 6, 0, tzinfo=UTC)


def test_unparseable_values_are_kept_not_dropped():
    table = typed("notes", [{"id": "acti_1", "date_created": "not a date"}])
    assert table.column("date_created").to_pylist() == [None]
    assert table.column("date_created__v_text").to_pylist() == ["not a date"]


def test_date_only_fields_stay_dates():
    table = typed("opportunities", [{"id": "oppo_1", "date_won": "2013-02-06"}])
    assert table.column("date_won").to_pylist() == [date(2013, 2, 6)]


def test_arrow_types_come_from_the_catalog_then_the_values():
    table = typed("notes", [
        {"id": "a", "date_created": "2020-01-01T00:00:00+00:00", "n": 1, "x": None},
        {"id": "b", "date_created": None, "n": 2.5, "x": None}])
    assert table.schema.field("date_created").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("n").type == pa.float64()
    assert "x" not in table.column_names  # null everywhere and never typed: no column yet
    assert table.column("n").to_pylist() == [1.0, 2.5]


def test_a_value_that_does_not_fit_goes_to_a_variant_column_not_away():
    spec = table_specs(BY_TABLE["notes"])[0]
    first = Columns()
    first.append({"id": "a", "duration": 5})
    to_arrow(spec, first)
    second = Columns()
    second.append({"id": "b", "duration": "five"})
    second.append({"id": "c"})
    second.append({"id": "d", "duration": 7})
    table = to_arrow(spec, second)
    assert table.column("duration").to_pylist() == [None, None, 7]
    assert table.column("duration__v_text").to_pylist() == ["five", None, None]
