"""Custom field definition changes on definitions alone: which rows a change gives, their keys,
which warn. End to end (the table, warnings, replays, status) in
tests/end_to_end/test_custom_field_changes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from close_source.shape.custom_columns import CustomColumns
from close_source.shape.definition_changes import alters_meaning, compared, describe
from tests.connector.test_custom_columns import Definitions, field

SEEN = datetime(2026, 1, 2, tzinfo=UTC)


def rows_of(definitions: Definitions, kept: dict[str, Any] | None = None
            ) -> tuple[list[dict[str, Any]], CustomColumns]:
    custom = CustomColumns("name", kept, definitions)
    return list(custom.definition_rows()), custom


def as_stored(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as DuckDB returns them: JSON as text, timestamps parsed."""
    stored = []
    for row in rows:
        row = dict(row)
        if row.get("choices") is not None:
            row["choices"] = orjson.dumps(row["choices"]).decode()
        if row.get("date_updated"):
            row["date_updated"] = datetime.fromisoformat(row["date_updated"])
        stored.append(row)
    return stored


def changes(before: Definitions, after: Definitions) -> list[dict[str, Any]]:
    old, custom = rows_of(before)
    new, custom = rows_of(after, custom.frozen())
    return compared(as_stored(old), new, seen_at=SEEN, no_version="run 1",
                    unread=custom.unread)


def test_a_retype_into_choices_is_one_row_with_the_new_choices():
    found = changes(
        Definitions(lead=[field("cf_a", "Stage", date_updated="2026-01-01T00:00:00+00:00")]),
        Definitions(lead=[field("cf_a", "Stage", "choices", choices=["Won", "Lost"],
                                date_updated="2026-01-01T10:00:00+00:00")]))
    assert [(row["change"], row["old_type"], row["new_type"], row["old_choices"],
             row["new_choices"], row["column_effect"]) for row in found] == [
        ("retyped", "text", "choices", None, '["Won","Lost"]',
         "values stay in custom_stage (same column type)")]
    assert alters_meaning(found[0])


def test_definitions_this_key_cannot_read_now_changed_in_nothing():
    """Their fields keep what the last run saw, without a definition to show choices."""
    before = Definitions(lead=[field("cf_a", "Stage")],
                         contact=[field("cf_b", "Role", "choices", choices=["CEO"], multi=True)])
    found = changes(before, Definitions(lead=[field("cf_a", "Stage")]))
    assert found == []


def test_a_change_has_the_same_key_whatever_it_was_compared_with_and_a_new_edit_a_new_key():
    def industry(name: str, when: str, **extra: Any) -> dict[str, Any]:
        return field("cf_a", name, date_updated=f"2026-01-0{when}T00:00:00+00:00", **extra)

    first = changes(Definitions(lead=[industry("Industry", "1")]),
                    Definitions(lead=[industry("Vertical", "2")]))
    again = changes(Definitions(lead=[industry("Industry", "1"), field("cf_b", "Other")]),
                    Definitions(lead=[industry("Vertical", "2"), field("cf_b", "Other 2")]))
    back = changes(Definitions(lead=[industry("Vertical", "2")]),
                   Definitions(lead=[industry("Industry", "3")]))
    later = changes(Definitions(lead=[industry("Industry", "3")]),
                    Definitions(lead=[industry("Vertical", "4")]))
    key = first[0]["change_id"]
    assert [row["change"] for row in first] == ["renamed"]
    assert key in {row["change_id"] for row in again}
    assert len({key, back[0]["change_id"], later[0]["change_id"]}) == 3


def test_choices_reordered_or_added_change_no_value_removed_ones_do():
    def products(*choices: str) -> Definitions:
        return Definitions(lead=[field("cf_a", "Products", "choices", choices=list(choices),
                                       multi=True)])

    reordered, = changes(products("A", "B"), products("B", "A"))
    assert not alters_meaning(reordered)
    assert describe(reordered) == ("custom field 'Products' (lead) choices changed (reordered); "
                                   "leads: column custom_products kept; no value changes")
    added, = changes(products("A"), products("A", "B"))
    removed, = changes(products("A", "B"), products("B", "C"))
    assert not alters_meaning(added) and alters_meaning(removed)
    assert "(removed 'A'; added 'C')" in describe(removed)


def test_a_deleted_field_is_deleted_once():
    before = Definitions(lead=[field("cf_a", "Stage"), field("cf_b", "Other")])
    after = Definitions(lead=[field("cf_b", "Other")])
    old, custom = rows_of(before)
    deleted, custom = rows_of(after, custom.frozen())
    later, _ = rows_of(after, custom.frozen())
    assert [row["change"] for row in compared(old, deleted, seen_at=SEEN, no_version="")] == \
        ["deleted"]
    assert compared(deleted, later, seen_at=SEEN, no_version="") == []
