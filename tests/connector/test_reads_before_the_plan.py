"""What a run reads before it plans, over a slow link: Close's newest event from the busy pairs at
once, the custom field definitions at once, and the references meanwhile
(`read_references_soon`), not one round trip after another."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_source.api.client import CloseClient
from close_source.errors import AuthError
from close_source.read.context import ReadContext
from close_source.read.custom_fields import fetch_definitions
from close_source.read.event_log import BUSY_PAIRS, newest_event
from close_source.read.references import read_references, read_references_soon

LATENCY = 0.5
TABLES = ["leads", "opportunities", "calls", "users", "pipelines"]


@pytest.fixture(scope="module")
def org() -> FakeOrg:
    return generate_org(seed=4, leads=5)


@pytest.fixture(scope="module")
def slow(org: FakeOrg) -> Iterator[FakeClose]:
    with FakeClose(org, latency=LATENCY) as fake:
        yield fake


def _context(fake: FakeClose, key: str | None = None) -> ReadContext:
    me = CloseClient(fake.api_key, fake.base_url).get("me/")  # the run's preflight
    return ReadContext(client=CloseClient(key or fake.api_key, fake.base_url), max_skip=250_000,
                       me=me)


def test_the_newest_event_is_asked_of_every_busy_pair_at_once(slow: FakeClose) -> None:
    """The fake answers a query without filters with 400, as the documented combinations allow
    (Close API: Event Log): the busy (object_type, action) pairs are asked next, in one round."""
    slow.reset_log()
    newest_event(CloseClient(slow.api_key, slow.base_url))  # None: a generated org logged none
    asked = [r for r in slow.requests if r.endpoint == "/event/"]
    assert [r.status for r in asked] == [400] + [200] * len(BUSY_PAIRS)
    arrivals = [r.at for r in asked[1:]]
    # one round: the pair on the kept connection arrives a handshake before those on new ones;
    # in two rounds the last would come two round trips after the first
    assert max(arrivals) - min(arrivals) < 1.5 * LATENCY


def test_definitions_are_read_at_once(org: FakeOrg, slow: FakeClose) -> None:
    with FakeClose(org) as fast:
        expected = fetch_definitions(CloseClient(fast.api_key, fast.base_url), 250_000)
    started = time.monotonic()
    found = fetch_definitions(CloseClient(slow.api_key, slow.base_url), 250_000)
    seconds = time.monotonic() - started
    assert found == expected and found.by_object_type["lead"]
    # eight reads on eight connections: two round trips (the handshake's and the request's);
    # one after another they would be nine
    assert seconds < 5 * LATENCY


def test_references_are_read_while_the_definitions_are(org: FakeOrg, slow: FakeClose) -> None:
    with FakeClose(org) as fast:
        expected = read_references(_context(fast), TABLES, also=("roles",))
    ctx = _context(slow)  # a new client: every read opens its connection, as a run's first do
    started = time.monotonic()
    pending = read_references_soon(ctx, TABLES, also=("roles",))
    fetch_definitions(ctx.client, ctx.max_skip)
    references = pending.result()
    seconds = time.monotonic() - started
    assert references.objects == expected.objects and references.objects["users"]
    assert set(references.objects) >= {"users", "pipelines", "roles", "lead_statuses"}
    # the references take four round trips (a connection's, then users: the list, the
    # organization's memberships, an inactive member), the definitions two: together four,
    # one after the other six
    assert seconds < 5 * LATENCY


def test_an_error_of_the_references_comes_to_whoever_waits(slow: FakeClose) -> None:
    pending = read_references_soon(_context(slow, key="not-the-key"), TABLES)
    with pytest.raises(AuthError):
        pending.result(timeout=30)
