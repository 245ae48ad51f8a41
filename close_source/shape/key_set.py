"""The keys a table was given so far, 16 bytes each: every object once per table, whatever
Close returns, at 300,000 leads too.

A Python set of Close ids costs ~100 bytes a key; a full load of 300,000 leads with 15
activities each passes 5.7 million keys, more than the whole run's memory budget. Here each key
is two independent 64-bit hashes (Python's keyed SipHash of the id and of the id reversed), kept
in sorted numpy arrays ("levels", merged as they grow, a million keys at most per level).
Keys are checked a block at a time, so the per-key cost is a hash, not a numpy call. Two
different ids share both hashes with a probability of about n^2 / 2^129 (1e-25 at 5.7 million
keys): for a connector, exact.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

LEVEL_CAP = 1 << 20  # keys per level, at most: merges never copy more than 16 MB


def _text(key: Hashable) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, tuple):
        return "\x1f".join(map(str, key))
    return f"\x00{key!r}"


class KeySet:
    """Keys seen so far (one table's); add a block of keys, learn which are new."""

    def __init__(self, level_cap: int = LEVEL_CAP) -> None:
        self.level_cap = level_cap
        self._levels: list[tuple[np.ndarray, np.ndarray]] = []  # (h1 sorted, h2 aligned)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add_new(self, keys: Sequence[Hashable]) -> list[bool]:
        """Adds the keys; True for each key seen for the first time (its first copy here)."""
        h1, h2 = _hashes(keys)
        known = self._contains(h1, h2)
        fresh: list[bool] = []
        block: set[tuple[int, int]] = set()
        for first, second, seen in zip(h1.tolist(), h2.tolist(), known.tolist(), strict=True):
            pair = (first, second)
            new = not seen and pair not in block
            if new:
                block.add(pair)
            fresh.append(new)
        if block:
            mask = np.fromiter(fresh, dtype=bool, count=len(fresh))
            self._add_level(h1[mask], h2[mask])
        return fresh

    def contains(self, keys: Sequence[Hashable]) -> list[bool]:
        h1, h2 = _hashes(keys)
        return self._contains(h1, h2).tolist()

    def _contains(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        found = np.zeros(len(h1), dtype=bool)
        for level_h1, level_h2 in self._levels:
            at = np.searchsorted(level_h1, h1)
            inside = at < len(level_h1)
            hit = np.zeros(len(h1), dtype=bool)
            hit[inside] = level_h1[at[inside]] == h1[inside]
            for i in np.flatnonzero(hit & ~found):  # true repeats (and 1-in-1e19 look-alikes)
                j = int(at[i])
                while j < len(level_h1) and level_h1[j] == h1[i]:
                    if level_h2[j] == h2[i]:
                        found[i] = True
                        break
                    j += 1
        return found

    def _add_level(self, h1: np.ndarray, h2: np.ndarray) -> None:
        order = np.argsort(h1, kind="stable")
        self._levels.append((h1[order], h2[order]))
        self._size += len(h1)
        # merge the newest levels while they are of comparable size (a binary counter)
        while len(self._levels) > 1:
            (a1, a2), (b1, b2) = self._levels[-2], self._levels[-1]
            if len(a1) > 2 * len(b1) or len(a1) + len(b1) > self.level_cap:
                break
            merged1, merged2 = np.concatenate((a1, b1)), np.concatenate((a2, b2))
            order = np.argsort(merged1, kind="stable")
            self._levels[-2:] = [(merged1[order], merged2[order])]


def _hashes(keys: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    texts = [_text(key) for key in keys]
    h1 = np.fromiter((hash(text) for text in texts), dtype=np.int64, count=len(texts))
    h2 = np.fromiter((hash(text[::-1]) for text in texts), dtype=np.int64, count=len(texts))
    return h1, h2
