"""Progress lines: the amount, the share of a known total, the rate and the time left."""

from __future__ import annotations

import logging

from close_source.progress import Progress, megabytes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_period_with_share_rate_and_time_left(caplog):
    clock = Clock()
    progress = Progress("export download", 400e6, megabytes, clock=clock)
    with caplog.at_level(logging.INFO, logger="close_source.progress"):
        clock.now += 1
        progress.at(50e6)  # before the period: no line
        clock.now += 4
        progress.at(100e6, lambda: "leads 4,000")
    assert [r.getMessage() for r in caplog.records] == [
        "export download: 100.0 MB of 400.0 MB (25%), 20.0 MB/s, about 15s left; leads 4,000"]


def test_without_a_total_only_the_amount_and_rate():
    clock = Clock()
    progress = Progress("Event Log window", unit="events", clock=clock)
    clock.now += 3725
    progress.advance(7_450)
    assert progress.line() == "Event Log window: 7,450 events, 2 events/s"
