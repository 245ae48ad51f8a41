"""The source state's rules: migration from one shared watermark, windows, name digests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from close_source.read.references import name_digest, renamed_since
from close_source.run import state as st

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def test_a_version_1_state_gives_its_watermark_to_every_table_loaded_then():
    legacy = {"version": 1, "newest_event": T0.isoformat(), "read_until": T0.isoformat()}
    state = {"events": legacy, "custom_columns": {"version": 1}}
    st.migrate(state, ["leads", "calls", "users"])
    assert state["version"] == st.VERSION and "events" not in state
    marks = st.watermarks(state)
    assert set(marks) == {"leads", "calls", "users"}
    assert marks["leads"] == st.Watermark(T0, T0)
    assert state["custom_columns"] == {}  # its own format number is gone: one version
    st.migrate(state, ["notes"])  # already this version: nothing changes
    assert "notes" not in st.watermarks(state)


def test_windows_rescan_five_minutes_except_before_an_exact_full_read():
    assert st.Watermark(T0, T0).window_start == T0 - timedelta(minutes=5)
    exact = st.Watermark.at(T0, exact=True)
    assert exact.window_start == T0  # an export's T0 is on the Event Log's own clock
    assert st.Watermark.at(T0).window_start == T0 - timedelta(minutes=5)  # a Date header
    later = exact.advanced(T0 + timedelta(minutes=2), T0 + timedelta(minutes=3))
    assert later.window_start == T0  # the floor holds while the re-scan reaches past it
    much_later = later.advanced(T0 + timedelta(minutes=9), T0 + timedelta(minutes=10))
    assert much_later.floor is None
    assert much_later.window_start == T0 + timedelta(minutes=4)
    assert st.Watermark.from_state(later.to_state()) == later


def test_only_the_29_day_horizon_makes_a_watermark_too_old():
    mark = st.Watermark(T0, T0)
    assert not mark.too_old(T0 + timedelta(days=29))
    assert mark.too_old(T0 + timedelta(days=29, seconds=1))


def test_renames_are_names_that_differ_from_what_the_table_synced_with():
    before = {"users": {"user_a": name_digest({"first_name": "Ann"}, ["first_name"]),
                        "user_b": name_digest({"first_name": "Bo"}, ["first_name"])}}
    now = {"users": {"user_a": name_digest({"first_name": "Anna"}, ["first_name"]),
                     "user_b": before["users"]["user_b"],
                     "user_c": name_digest({"first_name": "Cy"}, ["first_name"])}}
    assert renamed_since(before, now) == {"users": {"user_a"}}  # a new user is no rename
    assert renamed_since(None, now) == {}  # never recorded: nothing to compare


def test_recent_renames_are_kept_while_a_window_can_replay_older_events():
    state: dict = {}
    st.save_renamed_at(state, "calls", {"users:a": T0, "users:b": T0 - timedelta(hours=1)},
                       keep_after=T0 - timedelta(minutes=5))
    assert st.renamed_at(state, "calls") == {"users:a": T0}


def test_a_version_2_state_keeps_its_custom_columns_and_an_unknown_format_is_dropped():
    columns = {"leads": {"cf_1": {"name": "Region", "columns": {"text": "custom_region"}}}}
    state = {"version": 2, "custom_columns": {"version": 1, "name": columns}}
    st.migrate(state, [])
    assert state["version"] == st.VERSION
    assert st.custom_columns(state, "name") == columns
    unknown = {"version": 2, "custom_columns": {"version": 7, "name": columns}}
    st.migrate(unknown, [])
    assert st.custom_columns(unknown, "name") == {}
