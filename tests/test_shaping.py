"""Shaping: one row per object, timestamps in UTC, nested objects of other tables dropped."""

from datetime import UTC, date, datetime

from close_source.catalog import BY_TABLE
from close_source.shaping import column_hints, shape


def test_lead_row_drops_objects_that_have_their_own_tables_and_keeps_the_rest():
    lead = {
        "id": "lead_1", "contacts": [{"id": "cont_1"}], "opportunities": [], "tasks": [],
        "addresses": [{"city": "Gotham"}], "custom.cf_abc": ["A", "B"],
        "date_created": "2013-02-01T00:54:51.333000+00:00",
    }
    row = shape(BY_TABLE["leads"], lead)
    assert set(row) == {"id", "addresses", "custom.cf_abc", "date_created"}
    assert row["addresses"] == [{"city": "Gotham"}]
    assert row["custom.cf_abc"] == ["A", "B"]
    assert row["date_created"] == datetime(2013, 2, 1, 0, 54, 51, 333000, tzinfo=UTC)


def test_timestamps_become_utc_whatever_offset_or_precision_close_sends():
    task = {"id": "task_1", "date": "2013-02-06", "date_created": "2016-10-19T12:22:10.434000",
            "date_updated": "2014-06-27T22:00:00-08:00"}
    row = shape(BY_TABLE["tasks"], task)
    assert row["date"] == datetime(2013, 2, 6, tzinfo=UTC)
    assert row["date_created"] == datetime(2016, 10, 19, 12, 22, 10, 434000, tzinfo=UTC)
    assert row["date_updated"] == datetime(2014, 6, 28, 6, 0, tzinfo=UTC)


def test_unparseable_values_are_kept_not_dropped():
    row = shape(BY_TABLE["notes"], {"id": "acti_1", "date_created": "not a date"})
    assert row["date_created"] == "not a date"


def test_date_only_fields_stay_dates():
    row = shape(BY_TABLE["opportunities"], {"id": "oppo_1", "date_won": "2013-02-06"})
    assert row["date_won"] == date(2013, 2, 6)


def test_column_hints_declare_types_and_primary_key():
    hints = column_hints(BY_TABLE["custom_fields"])
    assert hints["date_created"]["data_type"] == "timestamp"
    assert hints["object_type"]["primary_key"] and hints["id"]["primary_key"]
