"""The keys a table was given so far: every object once per table, whatever Close returns,
in memory that does not grow with the organisation.

A Python set of Close ids costs ~100 bytes a key, and a full load of 300,000 leads with 15
activities each passes 5.7 million keys. Here each key is two independent 64-bit hashes
(Python's keyed SipHash of the id and of the id reversed), kept in sorted numpy arrays
("levels", merged as they grow) and checked a block of keys at a time, so the per-key cost is
a hash, not a numpy call. Two different ids share both hashes with a probability of about
n^2 / 2^129 (1e-25 at 5.7 million keys): for a connector, exact.

Past `memory_keys` (1 MB of them: a full load holds one key set per table, seventeen and
more) the levels go to disk, into a scratch directory, as one sorted file each, beside a Bloom
filter in memory (16 bits a key, six hashes) that says which keys may be in the file: only
those (about one in a thousand, and every true repeat) are looked up in it, by reading the 8 KB
around the key that a sparse index of every 256th key points to. Not memory-mapped: the pages
a map touches count in the process's memory. A key on disk costs ~2 bytes of memory: at
300,000 leads (5.7 million keys) ~12 MB, against ~90 MB held whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

LEVEL_CAP = 1 << 20  # keys per level, at most: merges never copy more than 16 MB
MEMORY_KEYS = 1 << 16  # keys held in memory (per table) before the levels go to disk
BLOOM_BITS_PER_KEY = 16
BLOOM_HASHES = 6
SEGMENT = 256  # keys between two entries of a file's sparse index
SCRATCH_PREFIX = "close-keys-"


def _text(key: Hashable) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, tuple):
        return "\x1f".join(map(str, key))
    return f"\x00{key!r}"


Level = tuple[np.ndarray, np.ndarray]  # (h1 sorted, h2 aligned)


class BloomFilter:
    """Which keys may be in a set of keys (no false "no"), in `BLOOM_BITS_PER_KEY` bits a key."""

    def __init__(self, keys: int) -> None:
        # not rounded up to a power of two: a level of 65,537 keys would take 4 bytes a key
        bits = max(1024, -(-keys * BLOOM_BITS_PER_KEY // 64) * 64)
        self._bits = np.zeros(bits // 8, dtype=np.uint8)
        self._size = np.uint64(bits)

    def add(self, h1: np.ndarray, h2: np.ndarray) -> None:
        bits = self._positions(h1, h2).ravel()
        np.bitwise_or.at(self._bits, bits >> np.uint64(3), _bit_masks(bits))

    def may_hold(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        bits = self._positions(h1, h2)
        return np.all((self._bits[bits >> np.uint64(3)] & _bit_masks(bits)) != 0, axis=1)

    def _positions(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        """Each key's `BLOOM_HASHES` bit positions (double hashing), one row per key."""
        steps = np.arange(BLOOM_HASHES, dtype=np.uint64)
        with np.errstate(over="ignore"):
            mixed = h1.astype(np.uint64)[:, None] + steps * (h2.astype(np.uint64)[:, None] | 1)
        return ((mixed >> np.uint64(32)) * self._size) >> np.uint64(32)  # in [0, size), no modulo


class DiskLevel:
    """One sorted level, (h1, h2) pairs appended to the key set's file, with its filter and
    sparse index (one file a key set: a file a level would be hundreds of open files)."""

    def __init__(self, path: Path, fd: int, level: Level) -> None:
        h1, h2 = level
        self.size = len(h1)
        with open(path, "ab") as file:
            self.offset = file.tell() // 16  # in pairs
            np.column_stack((h1, h2)).astype(np.int64).tofile(file)
        self.bloom = BloomFilter(self.size)
        self.bloom.add(h1, h2)
        self.index = h1[::SEGMENT].copy()
        self._fd = fd

    def holds(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        found = self.bloom.may_hold(h1, h2)
        for i in np.flatnonzero(found):
            found[i] = self._holds(int(h1[i]), int(h2[i]))
        return found

    def _holds(self, h1: int, h2: int) -> bool:
        # the segment before the first index entry >= h1 holds the first pair with h1 (a run
        # of equal h1, 1-in-1e19 look-alikes, may reach into the next segment: read both)
        start = max(int(np.searchsorted(self.index, h1, side="left")) - 1, 0) * SEGMENT
        count = min(2 * SEGMENT, self.size - start)
        pairs = np.frombuffer(os.pread(self._fd, count * 16, (self.offset + start) * 16),
                              dtype=np.int64).reshape(-1, 2)
        return bool(np.any((pairs[:, 0] == h1) & (pairs[:, 1] == h2)))


class KeySet:
    """Keys seen so far (one table's); add a block of keys, learn which are new."""

    def __init__(self, directory: str | Path | None = None, level_cap: int = LEVEL_CAP,
                 memory_keys: int = MEMORY_KEYS) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.level_cap, self.memory_keys = level_cap, memory_keys
        self._levels: list[Level] = []  # in memory
        self._in_memory = 0
        self._disk: list[DiskLevel] = []
        self._scratch: Path | None = None
        self._fd: int | None = None  # the scratch file of the levels, for reading
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add_new(self, keys: Sequence[Hashable]) -> list[bool]:
        """Adds the keys; True for each key seen for the first time (its first copy here)."""
        return self.add_new_hashed(*key_hashes(keys)).tolist()

    def add_new_hashed(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        """The same for keys hashed by `key_hashes`, for a caller that keeps the hashes too."""
        known = self._contains(h1, h2)
        fresh: list[bool] = []
        block: set[tuple[int, int]] = set()
        for first, second, seen in zip(h1.tolist(), h2.tolist(), known.tolist(), strict=True):
            pair = (first, second)
            new = not seen and pair not in block
            if new:
                block.add(pair)
            fresh.append(new)
        mask = np.fromiter(fresh, dtype=bool, count=len(fresh))
        if block:
            self._add_level(h1[mask], h2[mask])
        return mask

    def contains(self, keys: Sequence[Hashable]) -> list[bool]:
        h1, h2 = key_hashes(keys)
        return self._contains(h1, h2).tolist()

    def close(self) -> None:
        """Deletes the files of the levels on disk."""
        self._disk = []
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # ---- lookups ------------------------------------------------------------------------

    def _contains(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        found = np.zeros(len(h1), dtype=bool)
        for level in self._levels:
            found |= _in_level(level, h1, h2)
        for level in self._disk:
            unknown = np.flatnonzero(~found)
            if len(unknown):
                found[unknown] = level.holds(h1[unknown], h2[unknown])
        return found

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
        """Every level in memory becomes one sorted file."""
        level = self._levels[0]
        for other in self._levels[1:]:
            level = _merged(level, other)
        if self._scratch is None:
            assert self.directory is not None
            self.directory.mkdir(parents=True, exist_ok=True)
            self._scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self.directory))
            (self._scratch / "levels").touch()
            self._fd = os.open(self._scratch / "levels", os.O_RDONLY)
        assert self._fd is not None
        self._disk.append(DiskLevel(self._scratch / "levels", self._fd, level))
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


def key_hashes(keys: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    texts = [_text(key) for key in keys]
    h1 = np.fromiter((hash(text) for text in texts), dtype=np.int64, count=len(texts))
    h2 = np.fromiter((hash(text[::-1]) for text in texts), dtype=np.int64, count=len(texts))
    return h1, h2
