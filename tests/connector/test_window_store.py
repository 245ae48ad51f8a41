"""The window store: events deduplicated and ordered as the Event Log rules say, object states
kept by key, the same answers in memory and after spilling to disk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from close_source.read.event_log import Event
from close_source.read.window_store import WindowStore

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def event(event_id: str, object_id: str, action: str, seconds: float,
          data: dict | None = None) -> Event:
    moment = T0 + timedelta(seconds=seconds)
    parsed = Event.parse({"id": event_id, "object_type": "lead", "object_id": object_id,
                          "action": action, "lead_id": object_id, "data": data,
                          "date_updated": moment.replace(tzinfo=None).isoformat()})
    assert parsed is not None
    return parsed


@pytest.fixture(params=[1_000_000, 0], ids=["in memory", "spilled"])
def store(request, tmp_path: Path):
    with WindowStore(tmp_path, memory_rows=request.param) as kept:
        yield kept


def test_a_copy_updated_later_replaces_the_earlier_one(store: WindowStore):
    store.add_events([(0, event("ev_1", "lead_a", "updated", 5, {"name": "new"}))])
    store.add_events([(1, event("ev_1", "lead_a", "updated", 1, {"name": "old"}))])
    store.events_read()
    (kept,) = store.events()
    assert kept.data == {"name": "new"} and store.event_count() == 1


def test_events_come_oldest_first_a_delete_last_in_its_microsecond(store: WindowStore):
    # the API answers newest first: order 0 is the newest
    store.add_events([(0, event("ev_3", "lead_a", "updated", 2)),
                      (1, event("ev_2", "lead_a", "deleted", 1)),
                      (2, event("ev_1", "lead_a", "updated", 1)),
                      (3, event("ev_0", "lead_b", "created", 1))])
    store.events_read()
    assert [e.id for e in store.events()] == ["ev_0", "ev_1", "ev_2", "ev_3"]
    assert [e.id for e in store.events(action="updated")] == ["ev_1", "ev_3"]
    assert [e.id for e in store.events(since=T0 + timedelta(seconds=2))] == ["ev_3"]
    latest = {change.object_id: change for change in store.latest_per_object()}
    assert latest["lead_a"].event.id == "ev_3" and not latest["lead_a"].deleted
    assert latest["lead_b"].event.id == "ev_0"
    assert store.newest() == T0 + timedelta(seconds=2)


def test_states_by_key_deletes_and_what_is_settled(store: WindowStore):
    store.put(("leads", "lead_a"), {"id": "lead_a", "name": "A"})
    store.put(("tasks", "task_1"), {"id": "task_1", "lead_id": "lead_a", "user_id": "u1"})
    store.delete(("leads", "lead_b"), T0)
    store.put_many([(("leads", "lead_c"), {"id": "lead_c"})], read_again=True)
    store.put_if_absent([(("leads", "lead_a"), {"id": "lead_a", "name": "ignored"})])
    assert store.get(("leads", "lead_a")) == (True, {"id": "lead_a", "name": "A"})
    assert store.get(("leads", "lead_b")) == (True, None)
    assert store.get(("leads", "lead_x")) == (False, None)
    assert store.deleted_at(("leads", "lead_b")) == T0
    assert store.unsettled("leads", ["lead_a", "lead_b", "lead_c", "lead_x"]) == [
        "lead_a", "lead_x"]
    assert store.unknown("leads", ["lead_a", "lead_x"]) == ["lead_x"]
    assert store.naming("tasks", "lead_id", ["lead_a"]) == ["task_1"]
    assert store.naming("tasks", "user_id", ["u1", "u2"]) == ["task_1"]
    assert [key for key, _ in store.states()] == [
        ("leads", "lead_a"), ("tasks", "task_1"), ("leads", "lead_b"), ("leads", "lead_c")]


def test_writes_while_paging_survive_the_spill(tmp_path: Path):
    """Paging the events while states are written moves the store to disk mid-way: the pages
    go on from where they were."""
    with WindowStore(tmp_path, memory_rows=2_500) as store:
        store.add_events([(i, event(f"ev_{i:05d}", f"lead_{i}", "updated", -i))
                          for i in range(2_400)])
        store.events_read()
        seen = []
        for change in store.latest_per_object():
            seen.append(change.object_id)
            store.put(("leads", change.object_id), {"id": change.object_id})
        assert store.spilled and store.path is not None and store.path.exists()
        assert seen == [f"lead_{i}" for i in reversed(range(2_400))]
        assert len(list(store.states())) == 2_400
        path = store.path
    assert not path.exists()
