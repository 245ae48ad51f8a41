"""Memory freed during a run goes back to the system while the run lasts, not only the top of
glibc's heaps (a whole run held 60-80 MB of free memory inside them: bench/WHOLE_RUN.md)."""

import threading

import pytest

from close_source.run.environment import (
    FreedMemoryTrim,
    _malloc_trim,
    return_freed_memory,
    run_environment,
)

BLOCK = 100_000  # bytes: below the mmap threshold, so from the heap


def test_a_run_trims_the_heaps_while_it_lasts_and_stops_after():
    with run_environment():
        names = {thread.name for thread in threading.enumerate()}
        assert "close-sync-malloc-trim" in names
    assert "close-sync-malloc-trim" not in {thread.name for thread in threading.enumerate()}


@pytest.mark.skipif(_malloc_trim() is None, reason="glibc's malloc_trim only")
def test_memory_freed_inside_the_heap_is_given_back():
    return_freed_memory()
    before = rss_mb()
    blocks = [bytes([i % 251]) * BLOCK for i in range(1000)]  # 100 MB
    kept = [*blocks[::20], blocks[-1]]  # in use between the freed ones, and at the top
    del blocks
    held = rss_mb() - before  # freed, yet still the process's
    trim = FreedMemoryTrim(period=0.01)
    trim.start()
    try:
        for _ in range(2):  # a whole pass begun after the frees
            trim.trimmed.clear()
            assert trim.trimmed.wait(timeout=10)
    finally:
        trim.stop()
    assert rss_mb() - before < 20 < held
    assert len(kept) == 51


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        found = next(line for line in status if line.startswith("VmRSS:"))
    return int(found.split()[1]) / 1024
