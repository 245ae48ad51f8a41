"""Where stored objects stand in their collection's order, and the structures of `FakeOrg`
that need it: `children()` groups kept in that order, and `ranked()` views (the objects for
which a predicate holds, with their count and the k-th one in O(log n)).

A collection's order is its dict's insertion order: a new object comes last, a replaced one
keeps its place, a removed one leaves, one stored again comes last. `Slots` numbers those
places with a counter that only grows, so comparing slots compares positions without
scanning the collection. Every structure here changes in O(log n) per write (plus copying
the groups it edits, which callers may hold), where scans of a 300,000-object collection
cost milliseconds per write.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from typing import Any, overload

Obj = dict[str, Any]
# One write: (old, new), None for "absent".
Change = tuple[Obj | None, Obj | None]


class Slots:
    """Each stored object's place in its collection: `of[id]` (ids of removed objects
    leave, their slots stay empty in `ids`)."""

    def __init__(self, objs: dict[str, Obj]) -> None:
        self.ids: list[str | None] = list(objs)
        self.of: dict[str, int] = {object_id: i for i, object_id in enumerate(self.ids)}

    def add(self, object_id: str) -> int:
        slot = self.of[object_id] = len(self.ids)
        self.ids.append(object_id)
        return slot

    def drop(self, object_id: str) -> None:
        slot = self.of.pop(object_id, None)
        if slot is not None:
            self.ids[slot] = None


def place(members: list[Obj], slot_of: dict[str, int], slot: int) -> int:
    """Where `slot` stands (or would) in `members`, a list in collection order."""
    return bisect_left(members, slot, key=lambda x: slot_of[x["id"]])


class Index:
    """One `children()` index: the value of `key` -> the objects holding it, in collection
    order (None values are not indexed). A group handed out by `get` is never edited again
    (the next write to it edits a copy), so a list a caller holds stays as it was; groups
    nobody was given are edited in place (copying a 40,000-activity `_type` group on every
    write cost ~0.1 ms)."""

    def __init__(self, key: str, objs: dict[str, Obj]) -> None:
        self.key = key
        self.groups: dict[Any, list[Obj]] = {}
        self.exposed: set[Any] = set()
        for obj in objs.values():
            value = obj.get(key)
            if value is not None:
                self.groups.setdefault(value, []).append(obj)

    def get(self, value: Any) -> list[Obj]:
        members = self.groups.get(value)
        if members is None:
            return []
        self.exposed.add(value)
        return members

    def update(self, slot_of: dict[str, int], changes: list[Change]) -> None:
        """After writes: each object leaves the group it left, takes its place in the group
        it joined, or replaces its old self. `slot_of` must still know removed objects."""
        key = self.key
        for old, new in changes:
            was = old.get(key) if old is not None else None
            now = new.get(key) if new is not None else None
            obj = new if new is not None else old
            assert obj is not None
            object_id = obj["id"]
            slot = slot_of[object_id]
            if was is not None and (new is None or was != now):
                members = self._editable(was)
                i = place(members, slot_of, slot)
                if i < len(members) and members[i]["id"] == object_id:
                    del members[i]
                if not members:
                    del self.groups[was]
                    self.exposed.discard(was)
            if new is None or now is None:
                continue
            members = self._editable(now)
            i = place(members, slot_of, slot)
            if i < len(members) and members[i]["id"] == object_id:
                members[i] = new
            else:
                members.insert(i, new)

    def _editable(self, value: Any) -> list[Obj]:
        members = self.groups.get(value)
        if members is None:
            members = self.groups[value] = []
        elif value in self.exposed:
            members = self.groups[value] = list(members)
            self.exposed.discard(value)
        return members


class Ranks:
    """A set of slots with order statistics (a Fenwick tree): `count`, `set(slot, on)`,
    `kth(k)` (the k-th member slot, from 0). Capacity doubles as slots grow."""

    def __init__(self, members: bytes) -> None:
        self._build(members, max(16, 1 << max(len(members) - 1, 1).bit_length()))

    def _build(self, members: bytes, capacity: int) -> None:
        """`members`: one byte per slot, 1 for a member; node i sums slots (i & (i-1), i]."""
        bits = bytearray(capacity)
        bits[: len(members)] = members
        prefix = list(accumulate(bits, initial=0))
        tree = [0, *(prefix[i] - prefix[i & (i - 1)] for i in range(1, capacity + 1))]
        self.bits, self.tree, self.capacity = bits, tree, capacity
        self.count = prefix[capacity]

    def set(self, slot: int, on: bool) -> None:
        if slot >= self.capacity:
            if not on:
                return
            capacity = self.capacity
            while slot >= capacity:
                capacity *= 2
            self._build(self.bits, capacity)
        if self.bits[slot] == on:
            return
        self.bits[slot] = on
        step = 1 if on else -1
        self.count += step
        i, tree, capacity = slot + 1, self.tree, self.capacity
        while i <= capacity:
            tree[i] += step
            i += i & -i

    def kth(self, k: int) -> int:
        """The slot of the k-th member (0-based; 0 <= k < count)."""
        pos, tree, half = 0, self.tree, self.capacity
        while half:
            if tree[pos + half] <= k:
                pos += half
                k -= tree[pos]
            half >>= 1
        return pos


Predicate = Callable[[Any, Obj], bool]  # (org, object) -> is it a member


class Ranked(Sequence[Obj]):
    """The objects of one collection for which a predicate holds, in collection order, as
    a live sequence (`FakeOrg.ranked`): `len` in O(1), indexing in O(log n), so
    `rng.choice(view)` / `rng.sample(view, k)` draw exactly as on the equivalent list."""

    def __init__(
        self, org: Any, collection: str, predicate: Predicate | None, slots: Slots
    ) -> None:
        self.org, self.collection, self.predicate, self.slots = org, collection, predicate, slots
        objs, ids = org.collections[collection], slots.ids
        if predicate is None:
            self.ranks = Ranks(bytes(x is not None for x in ids))
        else:
            self.ranks = Ranks(bytes(x is not None and bool(predicate(org, objs[x])) for x in ids))

    def holds(self, obj: Obj) -> bool:
        return self.predicate is None or bool(self.predicate(self.org, obj))

    def update(self, changes: list[Change]) -> None:
        of = self.slots.of
        for old, new in changes:
            obj = new if new is not None else old
            assert obj is not None
            self.ranks.set(of[obj["id"]], new is not None and self.holds(new))

    def recheck(self, object_id: str) -> None:
        """The predicate may have changed for this object (it depends on another one)."""
        obj = self.org.collections[self.collection].get(object_id)
        if obj is not None:
            self.ranks.set(self.slots.of[object_id], self.holds(obj))

    def __len__(self) -> int:
        return self.ranks.count

    @overload
    def __getitem__(self, i: int) -> Obj: ...
    @overload
    def __getitem__(self, i: slice) -> list[Obj]: ...
    def __getitem__(self, i: int | slice) -> Obj | list[Obj]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = self.ranks.count
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("ranked view index out of range")
        object_id = self.slots.ids[self.ranks.kth(i)]
        assert object_id is not None
        return self.org.collections[self.collection][object_id]

    def __iter__(self) -> Iterator[Obj]:
        objs, bits = self.org.collections[self.collection], self.ranks.bits
        ids = self.slots.ids[: len(bits)]  # slots past the capacity are no members
        return iter([objs[x] for x, member in zip(ids, bits, strict=False) if member])
