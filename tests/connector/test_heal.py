"""`close_source(heal=...)` (`close-sync verify --heal`): what it accepts, in one line when
not, and what the plan makes of it per table. The heal itself: tests/end_to_end/
test_heal_source.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from close_source import close_source
from close_source.errors import ConfigError
from close_source.read.export import exported_tables
from close_source.run import state as st
from close_source.run.plan import HEALING, make_plan, read_in_full
from close_source.settings import Settings
from close_source.user_errors import user_error_message
from tests.connector.test_settings import DEFAULTS

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
SETTING = "[sources.close] heal (SOURCES__CLOSE__HEAL)"


@pytest.mark.parametrize(("tables", "heal", "says"), [
    (None, {"leadz": ["lead_a"]}, f"{SETTING} names leadz: not a table of Close objects; "
                                  "known: leads, contacts,"),
    (None, {"events": None}, f"{SETTING} names events: not a table of Close objects"),
    (["leads", "users"], {"leads": None, "calls": ["acti_a"]},
     f"{SETTING} names calls, not among the tables this run syncs (leads, users)"),
    (None, {"leads": "lead_a"}, f"{SETTING} must be a mapping of table names to lists of ids "
                                "or None, not {'leads': 'lead_a'}"),
    (None, ["leads"], f"{SETTING} must be a mapping of table names to lists of ids or None"),
    (None, {"leads": [1, 2]}, f"{SETTING} must be a mapping"),
])
def test_a_heal_the_run_cannot_do_is_one_line(tables, heal, says):
    with pytest.raises(ConfigError) as refused:
        close_source(api_key="key", base_url="http://127.0.0.1:9/", tables=tables, heal=heal)
    message = user_error_message(refused.value)
    assert message.startswith(says) and "\n" not in message


def test_a_restore_cannot_heal():
    with pytest.raises(ConfigError, match="heal .* cannot be set with restore_from"):
        Settings.checked(None, **{**DEFAULTS, "restore_from": "backup",
                                  "heal": {"leads": ["lead_a"]}})


def test_ids_are_kept_once_and_a_table_without_ids_is_left_out():
    settings = Settings.checked(None, **{**DEFAULTS, "heal": {
        "leads": ["lead_b", "lead_a", "lead_b"], "calls": [], "users": None}})
    assert settings.heal == {"leads": ("lead_b", "lead_a"), "users": None}
    assert Settings.checked(None, **DEFAULTS).heal == {}


def test_the_plan_reads_ids_again_after_the_window_or_the_table_in_full(caplog):
    recent = st.Watermark(NOW - timedelta(hours=1), NOW - timedelta(hours=1))
    marks = {table: recent for table in ("leads", "contacts", "calls", "created_activities")}
    heal = {"leads": ("lead_a", "lead_b"), "created_activities": ("acti_c",),
            "contacts": None, "users": None, "notes": ("acti_d",)}
    selected = ["leads", "contacts", "calls", "created_activities", "notes", "users"]
    caplog.set_level("INFO", logger="close_source")
    plan = make_plan(selected, marks, now=NOW, full_read=False, full_load="export",
                     exported=exported_tables(), stale=set(), heal=heal)
    how = {table: (p.how, p.reason) for table, p in plan.tables.items()}
    assert how == {"leads": ("events", ""), "created_activities": ("events", ""),
                   "calls": ("events", ""),
                   "contacts": ("export", HEALING),  # None: in full
                   "users": ("lists", HEALING),  # read in full every run anyway: said
                   "notes": ("export", "first load of this table")}  # in full anyway
    assert plan.reread == {"leads": ("lead_a", "lead_b"), "created_activities": ("acti_c",)}
    said = [record.getMessage() for record in caplog.records]
    assert said.count("contacts: full read (verify --heal)") == 1
    assert said.count("users: full read (verify --heal)") == 1
    read_in_full(plan, "leads", "many rows name renamed objects")  # a full read heals all
    assert plan.reread == {"created_activities": ("acti_c",)}
    everything = make_plan(selected, marks, now=NOW, full_read=True, full_load="export",
                           exported=exported_tables(), stale=set(), heal=heal)
    assert not everything.reread and not everything.reading("events")
