"""`Scratch.compare` on keys made up here (no Close, no warehouse): what each kind of difference
counts, which keys it names and in what order, and what a change after the last run is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from close_source.pipeline import duckdb_destination, make_pipeline
from close_source.read.close_keys import CloseKey
from close_source.run.verify_compare import EXAMPLES, HEAL_BY_ID_MAX, Scratch

LAST_RUN = datetime(2026, 6, 1, tzinfo=UTC)
BEFORE = LAST_RUN - timedelta(days=1)
AFTER = LAST_RUN + timedelta(hours=1)


def key(i: int) -> str:
    return f"cont_{i:06d}"


def close_pages(keys: list[tuple[str, datetime, str]], size: int = 200
                ) -> Iterator[list[CloseKey]]:
    for start in range(0, len(keys), size):
        yield [CloseKey(k, updated, BEFORE, lead) for k, updated, lead in keys[start:start + size]]


def test_each_kind_is_counted_named_in_key_order_and_healed_in_kind_order(
        tmp_path: Path) -> None:
    close = [(key(i), BEFORE, f"lead_{i}") for i in range(100)]
    stored = [(key(i), BEFORE, f"lead_{i}") for i in range(100) if i % 10]  # 10 missing
    stored = [(k, BEFORE - timedelta(days=1) if k in (key(3), key(1)) else updated, lead)
              for k, updated, lead in stored]  # 2 stale
    stored += [(key(7), BEFORE, "lead_7"), ("cont_zzz", BEFORE, "lead_x")]  # 2 extra
    close += [(key(5), BEFORE, "lead_5")]  # Close answering one object twice is no drift
    with Scratch(tmp_path) as scratch:
        found = scratch.compare(close_pages(close), [stored], LAST_RUN)
    assert (found.close_objects, found.warehouse_rows) == (100, 92)
    assert dict(found.drift) == {"missing": 10, "extra": 2, "stale": 2}
    assert found.since_last_run == 0
    assert found.examples == {"extra": [key(7), "cont_zzz"],
                              "missing": [key(i) for i in range(0, 10 * EXAMPLES, 10)],
                              "stale": [key(1), key(3)]}
    assert list(found.examples) == ["extra", "missing", "stale"]
    assert found.to_heal == [key(7), "cont_zzz", *(key(i) for i in range(0, 100, 10)), key(1),
                             key(3)]


def test_changes_after_the_last_run_are_apart(tmp_path: Path) -> None:
    close = [(key(0), AFTER, "lead_0"),  # updated in Close after the last run: stale, recent
             (key(1), AFTER, "lead_1"),  # created after it (below): missing, recent
             (key(2), BEFORE, "lead_2"),  # touched by an event after it: missing, recent
             (key(3), BEFORE, "lead_3")]  # missing, drift
    stored = [(key(0), BEFORE, "lead_0"),
              (key(8), BEFORE, "lead_8"),  # its lead deleted after the last run: recent
              (key(9), BEFORE, "lead_9")]  # extra, drift
    pages = [[CloseKey(k, updated, AFTER if k == key(1) else BEFORE, lead)
              for k, updated, lead in close]]
    with Scratch(tmp_path) as scratch:
        found = scratch.compare(pages, [stored], LAST_RUN, touched={key(2)},
                                touched_leads={"lead_8"})
        never_synced = scratch.compare(pages, [stored], None)
    assert dict(found.drift) == {"missing": 1, "extra": 1, "stale": 0}
    assert found.since_last_run == 4
    assert found.to_heal == [key(9), key(3)]
    assert dict(never_synced.drift) == {"missing": 3, "extra": 2, "stale": 1}
    assert never_synced.since_last_run == 0


def test_past_the_heal_limit_the_keys_to_heal_stop_one_over(tmp_path: Path) -> None:
    missing = HEAL_BY_ID_MAX + 50
    close = [(key(i), BEFORE, "lead") for i in range(missing)]
    with Scratch(tmp_path) as scratch:
        found = scratch.compare(close_pages(close, 5000), [], LAST_RUN)
    assert found.drift["missing"] == missing
    assert found.to_heal == [key(i) for i in range(HEAL_BY_ID_MAX + 1)]
    assert found.examples == {"missing": [key(i) for i in range(EXAMPLES)]}


def test_a_long_query_draws_nothing_on_stdout(tmp_path: Path, capfd: Any) -> None:
    """DuckDB draws a progress bar on stdout once a query runs past `progress_bar_time` (2 s):
    at 300,000 leads that broke `close-sync verify --json`'s document. Here the bar would be
    drawn at once, on the scratch file and on the destination verify reads."""
    close = [(key(i), BEFORE, "lead") for i in range(50_000)]
    with Scratch(tmp_path) as scratch:
        scratch._db.execute("SET progress_bar_time = 0")
        scratch.compare(close_pages(close, 5000), [], LAST_RUN)
    pipeline = make_pipeline(destination=duckdb_destination(tmp_path / "warehouse.duckdb"),
                             pipelines_dir=str(tmp_path / "pipelines"), progress=False)
    with pipeline.sql_client() as client:
        client.execute_sql("SET progress_bar_time = 0")
        client.execute_sql("SELECT count(*) FROM (SELECT i % 100003, count(*) FROM "
                           "range(3000000) t(i) GROUP BY 1)")
    assert capfd.readouterr().out == ""
