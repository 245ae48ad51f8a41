"""The keys a table was given so far: every object once per table, whatever Close returns,
in memory that does not grow with the organisation.

A Python set of Close ids costs ~100 bytes a key, and a full load of 300,000 leads with 15
activities each passes 5.7 million keys. Here each key is two independent 64-bit hashes
(Python's keyed SipHash of the id and of the id reversed), kept in sorted numpy arrays
("levels", merged as they grow) and checked a block of keys at a time, so the per-key cost is
a hash, not a numpy call. Two different ids share both hashes with a probability of about
n^2 / 2^129 (1e-25 at 5.7 million keys): for a connector, exact.

Past `memory_keys` (16 MB of them) the levels go to disk, into a scratch directory, as one
sorted file each, and a Bloom filter in memory (16 MB, six bits a key) says which keys may be
in them: only those (about one in ten thousand at 5.7 million keys, and every true repeat)
are looked up in the files. Memory stays ~32 MB at any size.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

LEVEL_CAP = 1 << 20  # keys per level, at most: merges never copy more than 16 MB
MEMORY_KEYS = 1 << 20  # keys held in memory before the levels go to disk
BLOOM_BITS = 1 << 27  # 16 MB
BLOOM_HASHES = 6
SCRATCH_PREFIX = "close-keys-"


def _text(key: Hashable) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, tuple):
        return "\x1f".join(map(str, key))
    return f"\x00{key!r}"


Level = tuple[np.ndarray, np.ndarray]  # (h1 sorted, h2 aligned)


class KeySet:
    """Keys seen so far (one table's); add a block of keys, learn which are new."""

    def __init__(self, directory: str | Path | None = None, level_cap: int = LEVEL_CAP,
                 memory_keys: int = MEMORY_KEYS) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.level_cap, self.memory_keys = level_cap, memory_keys
        self._levels: list[Level] = []  # in memory
        self._in_memory = 0
        self._disk: list[Level] = []  # memory-mapped files
        self._bloom: np.ndarray | None = None
        self._scratch: Path | None = None
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

    def close(self) -> None:
        """Deletes the files of the levels on disk."""
        self._disk, self._bloom = [], None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # ---- lookups ------------------------------------------------------------------------

    def _contains(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        found = np.zeros(len(h1), dtype=bool)
        for level in self._levels:
            found |= _in_level(level, h1, h2)
        if self._bloom is not None:
            maybe = np.flatnonzero(~found & self._in_bloom(h1, h2))
            if len(maybe):
                for level in self._disk:
                    found[maybe] |= _in_level(level, h1[maybe], h2[maybe])
        return found

    def _bloom_bits(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        """Each key's `BLOOM_HASHES` bit positions (double hashing), one row per key."""
        steps = np.arange(BLOOM_HASHES, dtype=np.uint64)
        with np.errstate(over="ignore"):
            mixed = h1.astype(np.uint64)[:, None] + steps * (h2.astype(np.uint64)[:, None] | 1)
        return mixed % np.uint64(BLOOM_BITS)

    def _in_bloom(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        assert self._bloom is not None
        bits = self._bloom_bits(h1, h2)
        return np.all((self._bloom[bits >> np.uint64(3)] & _bit_masks(bits)) != 0, axis=1)

    # ---- growing ------------------------------------------------------------------------

    def _add_level(self, h1: np.ndarray, h2: np.ndarray) -> None:
        order = np.argsort(h1, kind="stable")
        self._levels.append((h1[order], h2[order]))
        self._size += len(h1)
        self._in_memory += len(h1)
        # merge the newest levels while they are of comparable size (a binary counter)
        while len(self._levels) > 1:
            older, newer = len(self._levels[-2][0]), len(self._levels[-1][0])
            if older > 2 * newer or older + newer > self.level_cap:
                break
            self._levels[-2:] = [_merged(self._levels[-2], self._levels[-1])]
        if self._in_memory > self.memory_keys and self.directory is not None:
            self._to_disk()

    def _to_disk(self) -> None:
        """Every level in memory becomes one sorted file, its keys marked in the filter."""
        level = self._levels[0]
        for other in self._levels[1:]:
            level = _merged(level, other)
        if self._scratch is None:
            assert self.directory is not None
            self.directory.mkdir(parents=True, exist_ok=True)
            self._scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self.directory))
            self._bloom = np.zeros(BLOOM_BITS // 8, dtype=np.uint8)
        assert self._bloom is not None
        bits = self._bloom_bits(*level).ravel()
        np.bitwise_or.at(self._bloom, bits >> np.uint64(3), _bit_masks(bits))
        mapped = []
        for part, values in zip(("h1", "h2"), level, strict=True):
            path = self._scratch / f"{len(self._disk)}.{part}.npy"
            np.save(path, values)
            mapped.append(np.load(path, mmap_mode="r"))
        self._disk.append((mapped[0], mapped[1]))
        self._levels, self._in_memory = [], 0


def _bit_masks(bits: np.ndarray) -> np.ndarray:
    """The mask of each bit position within its byte."""
    return np.left_shift(np.uint8(1), (bits & np.uint64(7)).astype(np.uint8))


def _merged(a: Level, b: Level) -> Level:
    h1, h2 = np.concatenate((a[0], b[0])), np.concatenate((a[1], b[1]))
    order = np.argsort(h1, kind="stable")
    return h1[order], h2[order]


def _in_level(level: Level, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Which keys are in the level (both hashes equal)."""
    level_h1, level_h2 = level
    found = np.zeros(len(h1), dtype=bool)
    at = np.searchsorted(level_h1, h1)
    inside = at < len(level_h1)
    hit = np.zeros(len(h1), dtype=bool)
    hit[inside] = level_h1[at[inside]] == h1[inside]
    for i in np.flatnonzero(hit):  # true repeats (and 1-in-1e19 look-alikes of h1)
        j = int(at[i])
        while j < len(level_h1) and level_h1[j] == h1[i]:
            if level_h2[j] == h2[i]:
                found[i] = True
                break
            j += 1
    return found


def _hashes(keys: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    texts = [_text(key) for key in keys]
    h1 = np.fromiter((hash(text) for text in texts), dtype=np.int64, count=len(texts))
    h2 = np.fromiter((hash(text[::-1]) for text in texts), dtype=np.int64, count=len(texts))
    return h1, h2
