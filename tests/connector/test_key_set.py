"""The key set behind one row per key: exact answers for repeats within a block, across
blocks and across merged levels, for every kind of key."""

from __future__ import annotations

import random

from close_source.key_set import KeySet


def test_first_copies_are_new_and_repeats_are_not():
    keys = KeySet()
    assert keys.add_new(["a", "b", "a", "c"]) == [True, True, False, True]
    assert keys.add_new(["c", "d", ("x", 1), None, ("x", 1), None]) == [
        False, True, True, True, False, False]
    assert keys.contains(["a", "d", "z", ("x", 1), ("x", 2), None]) == [
        True, True, False, True, False, True]
    assert len(keys) == 6


def _same_as_a_set(keys: KeySet, seed: int, blocks: int, span: int, most: int) -> None:
    """Random blocks of keys (repeats within and across blocks): the answers a set gives."""
    rng, reference = random.Random(seed), set()
    for _ in range(blocks):
        block = [f"obj_{rng.randrange(span)}" for _ in range(rng.randrange(1, most))]
        expected = []
        for key in block:
            expected.append(key not in reference)
            reference.add(key)
        assert keys.add_new(block) == expected
    probe = [f"obj_{n}" for n in range(span + 1_000)]
    assert keys.contains(probe) == [key in reference for key in probe]
    assert len(keys) == len(reference)


def test_the_same_answers_as_a_set_through_many_merges():
    _same_as_a_set(KeySet(level_cap=300), seed=5, blocks=200, span=5_000, most=60)


def test_levels_on_disk_give_the_same_answers_and_are_deleted(tmp_path):
    keys = KeySet(tmp_path, level_cap=500, memory_keys=800)
    _same_as_a_set(keys, seed=9, blocks=300, span=20_000, most=80)
    scratch = [path for path in tmp_path.iterdir() if path.name.startswith("close-keys-")]
    assert len(scratch) == 1 and len(keys._disk) >= 4  # levels on disk, in one file
    assert (scratch[0] / "levels").stat().st_size == 16 * sum(level.size for level in keys._disk)
    keys.close()
    assert list(tmp_path.iterdir()) == []
