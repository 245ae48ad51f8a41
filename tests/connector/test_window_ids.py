"""The ids a date window keeps: the answers and the split of the dict of id -> date they replace."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from close_source.read.window_ids import WindowIds, from_micros, to_micros


def test_dates_go_to_microseconds_and_back_exactly():
    for when in (datetime(2026, 12, 7, 23, 59, 59, 999_999, tzinfo=UTC),
                 datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
                 datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)):
        assert from_micros(to_micros(when)) == when
        assert from_micros(to_micros(when)).isoformat() == when.isoformat()
    assert to_micros(datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == 1


def _held(ids: WindowIds, probe: list[str]) -> set[str]:
    """Which of these ids the set holds (adding them: probe a set once)."""
    return {i for i, new in zip(probe, ids.add_new(probe, [0] * len(probe)), strict=True)
            if not new}


def test_new_ids_and_splits_match_a_dict_of_id_to_date():
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids, reference = WindowIds(), {}
    for _ in range(300):
        page = [f"task_{rng.randrange(5_000)}" for _ in range(rng.randrange(1, 200))]
        dates = [None if rng.random() < 0.05
                 else start + timedelta(microseconds=rng.randrange(10**9)) for _ in page]
        expected = []
        for obj_id, when in zip(page, dates, strict=True):
            expected.append(obj_id not in reference)
            reference.setdefault(obj_id, when)
        assert ids.add_new(page, [to_micros(d) for d in dates]) == expected
    assert len(ids) == len(reference)

    at = start + timedelta(microseconds=5 * 10**8)
    below, above = ids.split(to_micros(at))
    every = sorted(reference)
    assert _held(below, every) == {i for i, d in reference.items() if d is None or d < at}
    assert _held(above, every) == {i for i, d in reference.items() if d is None or d >= at}
    # the halves keep the dates: splitting one again splits by the same dates
    quarter = start + timedelta(microseconds=10**8)
    lower, upper = ids.split(to_micros(at))[0].split(to_micros(quarter))
    assert _held(lower, every) == {i for i, d in reference.items() if d is None or d < quarter}
    assert _held(upper, every) == {
        i for i, d in reference.items() if d is None or quarter <= d < at}


def test_an_empty_set_splits_into_empty_halves():
    below, above = WindowIds().split(0)
    assert len(below) == len(above) == 0
    assert below.add_new(["a"], [5]) == [True]
