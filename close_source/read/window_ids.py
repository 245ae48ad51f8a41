"""The ids a date window yielded, with those the windows around it yielded, each with its date:
~50 bytes an id, where a dict of id -> datetime took ~200.

A window reads up to the `_skip` cap (250,000 objects) before it splits, and a split hands each
half the ids whose date falls in it, so a window holds up to the cap's ids and more. At 300,000
leads the tasks (600,000) and the email threads (300,000) are both read past the cap, at once:
in Python objects their ids alone took ~100 MB of the run's peak. Here an id is kept as the key
set keeps a key (two 64-bit hashes, `key_set.py`), a date as microseconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from close_source.key_set import KeySet, key_hashes

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
NO_DATE = int(np.iinfo(np.int64).min)  # an object without a date: in both halves of a split


def to_micros(when: datetime | None) -> int:
    """A date as whole microseconds since the epoch (exact: Close stores microseconds)."""
    return NO_DATE if when is None else (when - EPOCH) // ONE_MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


class WindowIds:
    """Ids with their dates; add a page's ids, learn which are new; split by date."""

    def __init__(self) -> None:
        self._keys = KeySet()  # no scratch directory: held in memory, 16 bytes an id
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (h1, h2, dates)

    def __len__(self) -> int:
        return len(self._keys)

    def add_new(self, ids: Sequence[Hashable], dates: Sequence[int]) -> list[bool]:
        """Adds the ids not held yet, with their dates (`to_micros`); True for each of them
        (for its first copy, should a page hold an id twice)."""
        h1, h2 = key_hashes(ids)
        fresh = self._keys.add_new_hashed(h1, h2)
        if fresh.any():
            self._parts.append((h1[fresh], h2[fresh], np.asarray(dates, dtype=np.int64)[fresh]))
        return fresh.tolist()

    def split(self, at: int) -> tuple[WindowIds, WindowIds]:
        """The ids dated before `at`, and those dated at or after it; undated ids in both."""
        if not self._parts:
            return WindowIds(), WindowIds()
        h1, h2, dates = (np.concatenate(column) for column in zip(*self._parts, strict=True))
        undated = dates == NO_DATE
        halves = []
        for inside in (undated | (dates < at), undated | (dates >= at)):
            half = WindowIds()
            if inside.any():
                half._keys.add_new_hashed(h1[inside], h2[inside])
                half._parts.append((h1[inside], h2[inside], dates[inside]))
            halves.append(half)
        return halves[0], halves[1]
