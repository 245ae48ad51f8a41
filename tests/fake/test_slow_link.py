"""The fake Close over a slow link: round-trip latency, and Close's rate limit, as `python -m
close_fake --latency-ms ... --rate-limit ...` serves them (the small-organisation benchmark's
server, bench/small_org.py)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from close_fake import FakeClose, generate_org
from close_fake.__main__ import build

ROOT = Path(__file__).resolve().parents[2]
LATENCY = 0.25


def _timed_get(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = client.get(path)
    return response, time.perf_counter() - started


def test_latency_delays_every_answer_and_overlaps_across_connections() -> None:
    org = generate_org(seed=1, leads=3)
    with FakeClose(org, latency=LATENCY) as fake:
        with httpx.Client(base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10) as c:
            first, first_s = _timed_get(c, "me/")
            again = [_timed_get(c, "lead/") for _ in range(2)]
        assert first.status_code == 200 and all(r.status_code == 200 for r, _ in again)
        assert first_s >= 2 * LATENCY  # a new connection: the handshake's round trip too
        assert all(seconds >= LATENCY for _, seconds in again)  # keep-alive: one round trip

        # four requests on four connections at once: the delays overlap, as on a real link
        # (one after the other they would take 4 x 2 round trips)
        start = threading.Barrier(4)
        statuses: list[int] = []

        def one() -> None:
            start.wait()
            statuses.append(httpx.get(fake.url("lead/"), auth=(fake.api_key, "")).status_code)

        threads = [threading.Thread(target=one) for _ in range(4)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        together_s = time.perf_counter() - started
    assert statuses == [200] * 4
    assert 2 * LATENCY <= together_s < 4 * 2 * LATENCY


def test_negative_latency_is_refused() -> None:
    with pytest.raises(ValueError, match="latency"):
        FakeClose(generate_org(seed=1, leads=1), latency=-0.1)


def test_command_line_settings_reach_the_server() -> None:
    fake = build(["--leads", "2", "--latency-ms", "150", "--rate-limit", "20",
                  "--export-seconds", "6", "--export-polls", "0"])
    assert fake.latency == 0.15
    assert (fake.rate_limit.requests, fake.rate_limit.window, fake.rate_limit.enforce) == (
        20, 1.0, True)
    settings = fake.exports.settings
    assert (settings.seconds_to_finish, settings.polls_to_finish) == (6.0, 0)
    default = build(["--leads", "2"])
    assert default.latency == 0 and not default.rate_limit.enforce
    assert (default.exports.settings.seconds_to_finish,
            default.exports.settings.polls_to_finish) == (0.0, 3)


def test_command_line_serves_with_latency_and_a_rate_limit() -> None:
    """`python -m close_fake --latency-ms 200 --rate-limit 1`: each answer a round trip late;
    the second request to one endpoint group within its second answers 429 with the headers
    and body Close documents (Close API: Rate Limits), another group is still served."""
    server = subprocess.Popen(
        [sys.executable, "-m", "close_fake", "--port", "0", "--leads", "2",
         "--latency-ms", "200", "--rate-limit", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base_url = re.search(r"at (http://\S+)", server.stdout.readline())
        assert base_url is not None
        key = re.search(r"API key: (\S+)", server.stdout.readline())
        assert key is not None
        with httpx.Client(base_url=base_url.group(1), auth=(key.group(1), ""), timeout=10) as c:
            allowed, allowed_s = _timed_get(c, "me/")
            refused, refused_s = _timed_get(c, "me/")
            other, _ = _timed_get(c, "lead/")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert allowed_s >= 0.4 and refused_s >= 0.2
    assert (allowed.status_code, refused.status_code, other.status_code) == (200, 429, 200)
    assert allowed.headers["x-rate-limit-limit"] == "1"
    assert allowed.headers["x-rate-limit-remaining"] == "0"
    error = refused.json()["error"]
    assert (error["rate_limit"], error["rate_window"], error["rate_limit_type"]) == (1, 1, "key")
    assert 0 < error["rate_reset"] <= 1
    reset = float(refused.headers["x-rate-limit-reset"])
    assert 0 < reset <= 1 and refused.headers["retry-after"] == str(math.ceil(reset))
