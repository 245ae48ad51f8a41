"""The documentation says what the code does, without a sync: the generated tables reference
covers the catalog, the hashed fields listed are the ones hashed, the README stays short (what no
file may point at: test_self_contained). The whole load behind the tables reference, and every
SQL and Python example run, are in tests/end_to_end (test_full_load, test_verify,
test_python_api)."""

from __future__ import annotations

import re

from close_source.catalog import CATALOG, owned_tables
from close_source.docs import PAGE
from close_source.read.pii_hash import PHONE_KEYS
from close_source.run.stage_history import STAGES
from tests.docs_pages import ROOT, code_blocks, statements


def test_the_tables_reference_has_a_section_per_table_of_the_catalog():
    page = (ROOT / PAGE).read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,3} (\S+)$", page, flags=re.M))
    expected = {table for entry in CATALOG for table in owned_tables(entry)}
    expected |= {stage.table for stage in STAGES} | {"field_changes", "custom_field_changes",
                                                     "lead_merges", "events", "_verify_runs"}
    assert expected - headings == set(), "run `python3 dev.py docs`"


def test_the_configuration_page_lists_exactly_the_hashed_phone_keys():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    listed = page.split("<!-- phone-keys -->", 1)[1].split("<!-- /phone-keys -->", 1)[0]
    assert set(re.findall(r"`(\w+)`", listed)) == set(PHONE_KEYS)


def test_the_readme_is_what_a_newcomer_needs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 200
    assert "python3 dev.py test" in readme and "python3 dev.py demo" in readme


def test_sql_examples_are_split_into_statements():
    """What the end-to-end test runs: one statement per `;` ending a line, comments kept."""
    example = "-- two\nSELECT 1;   -- one\nSELECT 2\nFROM t;\n"
    assert statements(example) == ["-- two\nSELECT 1", "SELECT 2\nFROM t"]
    assert len(code_blocks("sql")) >= 10
    indented = [code for name, code in code_blocks("sql") if "list_contains" in code]
    assert indented and not indented[0].startswith(" ")
