"""How often an export is polled: backoff, or sooner when Close's own progress says the build ends
sooner (`read/export.PollPace`)."""

from __future__ import annotations

import time

from close_fake import ExportSettings, FakeClose, generate_org
from close_source.api.client import CloseClient
from close_source.read.export import PollPace, run_export_job


def _export(status: str, done: int | None = None, total: int | None = 1000) -> dict:
    return {"status": status, "n_docs": total, "n_docs_processed": done}


def test_backoff_without_progress() -> None:
    pace = PollPace(1.0, 30.0)
    delays = [pace.next(_export("started", 0, None), float(t)) for t in range(5)]
    assert delays == [1.0, 1.5, 2.25, 3.375, 5.0625]
    capped = PollPace(1.0, 2.0)
    assert [capped.next(_export("created"), 0.0) for _ in range(4)] == [1.0, 1.5, 2.0, 2.0]


def test_progress_rate_shortens_the_wait_to_the_expected_end() -> None:
    pace = PollPace(1.0, 30.0)
    assert pace.next(_export("in_progress", 100), 10.0) == 1.0  # one sample: no rate yet
    # 300 more documents in 2 s: 150 a second, 600 left: 4 s; the backoff's 1.5 s is sooner
    assert pace.next(_export("in_progress", 400), 12.0) == 1.5
    # 800 done at 13.5 s: 700 in 3.5 s, 200 a second; 200 left: 1 s, sooner than 2.25 s
    assert pace.next(_export("in_progress", 800), 13.5) == 1.0
    # 990 done: 0.05 s left at that rate, but never sooner than a quarter of the initial delay
    assert pace.next(_export("in_progress", 990), 14.45) == 0.25
    # still just short of its end (its file still uploading): each such wait twice the last
    assert [pace.next(_export("in_progress", 999), t) for t in (14.8, 15.4, 16.5)] == [
        0.5, 1.0, 2.0]


def test_progress_that_says_nothing_is_not_a_rate() -> None:
    for export in (_export("in_progress", 0), _export("in_progress", 1000),
                   _export("in_progress", 500, None), _export("in_progress", None),
                   _export("started", 500)):
        pace = PollPace(1.0, 30.0)
        assert [pace.next(export, t) for t in (0.0, 1.0, 2.0)] == [1.0, 1.5, 2.25]
    stalled = PollPace(1.0, 30.0)  # the same count twice: no rate, backoff
    assert [stalled.next(_export("in_progress", 500), t) for t in (0.0, 1.0)] == [1.0, 1.5]


def test_a_timed_build_is_seen_done_soon_after_it_ends() -> None:
    """An export Close builds in 2.2 s (the fake's time-driven progress: `started` for the first
    third, then `n_docs_processed` growing with time), polled from 0.1 s with backoff: polls at
    0.1, 0.25, 0.48, 0.81, 1.32, 2.08, 3.22 s would see it done 1 s late; its progress rate says
    when it ends."""
    org = generate_org(seed=2, leads=40)
    settings = ExportSettings(polls_to_finish=0, seconds_to_finish=2.2)
    with FakeClose(org, export=settings) as fake:
        client = CloseClient(fake.api_key, fake.base_url)
        started = time.monotonic()
        job = run_export_job(client, poll_initial=0.1)
        waited = time.monotonic() - started
        polls = [r for r in fake.requests if r.endpoint == "/export/{id}/"]
    assert job.export["status"] == "done" and job.export["download_url"]
    assert 2.2 <= waited < 2.9
    assert len(polls) <= 9  # sooner, not a poll every few milliseconds
