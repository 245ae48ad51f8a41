"""The Arrow data batchers hold back to make larger items: one budget for all of them, since
a full load fills many at once (the list-endpoint tables in parallel, the export)."""

from close_source.catalog import BY_TABLE
from close_source.shape.batcher import HELD, ArrowBatcher, HeldBudget


def notes_batcher(budget: HeldBudget) -> ArrowBatcher:
    batcher = ArrowBatcher.for_entries([BY_TABLE["notes"]], batch_rows=10)
    batcher.budget = budget
    return batcher


def add_notes(batcher: ArrowBatcher, count: int, first: int = 0) -> list[object]:
    items: list[object] = []
    for i in range(first, first + count):
        items += batcher.add("notes", {"id": f"acti_{i:04d}", "note": "x" * 1000})
    return items


def rows(item: object) -> int:
    """Rows of an item handed to dlt (an Arrow table with its table name or hints)."""
    return item.data.num_rows  # type: ignore[attr-defined]


def test_every_batcher_of_a_run_shares_one_budget():
    made = [ArrowBatcher.for_entries([BY_TABLE[table]]) for table in ("notes", "calls")]
    assert made[0].budget is made[1].budget is HELD


def test_a_batcher_hands_out_its_data_when_all_batchers_together_hold_too_much():
    one = notes_batcher(HeldBudget(1 << 30))
    add_notes(one, 10)
    batch = one.budget.held  # the Arrow size of ten notes
    budget = HeldBudget(int(2.5 * batch))
    first, second = notes_batcher(budget), notes_batcher(budget)
    assert add_notes(first, 20) == []  # two batches: within the budget, held
    assert budget.held == 2 * batch
    # alone, the second batcher's one batch is far within the budget; with the first's two
    # it is over, and the second hands out what it holds (it cannot hand out the first's)
    items = add_notes(second, 10, first=100)
    assert [rows(item) for item in items] == [10]
    assert budget.held == 2 * batch
    assert sum(rows(item) for item in first.flush()) == 20
    assert budget.held == 0


def test_a_batcher_closed_while_holding_data_gives_its_share_back():
    budget = HeldBudget(1 << 30)
    failed, other = notes_batcher(budget), notes_batcher(budget)
    add_notes(failed, 30)
    add_notes(other, 10, first=100)
    others = sum(other._held_size.values())
    assert budget.held > others > 0
    failed.close()  # a read that failed: its data is never handed out
    assert budget.held == others
