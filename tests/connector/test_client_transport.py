"""The client's retry, rate-limit and error rules on `httpx.MockTransport`: milliseconds per
case, beside the end-to-end tests on the loopback fake (test_client.py)."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

import httpx
import pytest

from close_source.api.client import CloseClient
from close_source.errors import AccessDenied, ApiError, AuthError, UnreachableError

KEY = "api_transport_test_key_5f1c"
BASE = "https://api.close.test/api/v1/"


def client_for(handler: Callable[[httpx.Request], httpx.Response],
               **kwargs: object) -> CloseClient:
    options = {"backoff_initial": 0.001, "backoff_max": 0.002, "max_attempts": 3, **kwargs}
    return CloseClient(KEY, BASE, transport=httpx.MockTransport(handler),
                       **options)  # type: ignore[arg-type]


def answers(*responses: httpx.Response) -> tuple[list[httpx.Request], Callable]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return seen, handler


def test_a_429_waits_the_bodys_rate_reset_then_retries_the_same_request():
    seen, handler = answers(
        httpx.Response(429, json={"error": {"rate_reset": 0.01, "message": "slow down"}}),
        httpx.Response(200, json={"data": [{"id": "lead_1"}], "has_more": False}))
    client = client_for(handler)
    started = time.monotonic()
    assert client.get("lead/", {"_limit": 5}) == {"data": [{"id": "lead_1"}], "has_more": False}
    assert time.monotonic() - started >= 0.01
    assert [r.url.params["_limit"] for r in seen] == ["5", "5"]
    assert client.retries == 1


def test_server_errors_are_retried_a_bounded_number_of_times():
    seen, handler = answers(httpx.Response(502, text="bad gateway"))
    with pytest.raises(UnreachableError) as failed:
        client_for(handler).get("lead/")
    assert len(seen) == 3
    assert "after 3 attempts" in str(failed.value) and KEY not in str(failed.value)


def test_dropped_connections_are_retried():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("reset by peer", request=request)
        return httpx.Response(200, json={"id": "me"})

    assert client_for(handler).get("me/") == {"id": "me"}
    assert len(calls) == 2


def refusing_then(answers: list[int | None]) -> tuple[list[httpx.Request], Callable]:
    """Each request takes the next entry: None refuses the connection, a status answers."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = answers.pop(0)
        if status is None:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request) \
                from ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        return httpx.Response(status, json={"id": "me"})

    return seen, handler


def test_a_server_restarting_at_the_first_request_is_waited_for_briefly():
    seen, handler = refusing_then([None, None, 200])
    assert client_for(handler, max_attempts=8).get("me/") == {"id": "me"}
    assert len(seen) == 3


def test_a_connection_refused_before_close_answered_stops_after_three_attempts():
    seen, handler = refusing_then([None] * 8)
    with pytest.raises(UnreachableError) as failed:
        client_for(handler, max_attempts=8).get("me/")
    assert str(failed.value).startswith("cannot connect to api.close.test:443: connection refused")
    assert len(seen) == 3


def test_once_close_answered_refused_connections_get_every_attempt():
    seen, handler = refusing_then([200] + [None] * 6 + [200])
    client = client_for(handler, max_attempts=8)
    client.get("me/")
    assert client.get("lead/") == {"id": "me"}
    assert len(seen) == 8


@pytest.mark.parametrize(("status", "path", "error"), [
    (401, "lead/", AuthError), (403, "me/", AuthError), (403, "lead/", AccessDenied),
    (404, "lead/lead_x/", AccessDenied), (400, "lead/", ApiError)])
def test_client_errors_are_not_retried_and_never_name_the_key(status, path, error):
    seen, handler = answers(httpx.Response(status, json={"error": f"no {KEY[:4]}"}))
    with pytest.raises(error) as failed:
        client_for(handler).get(path)
    assert len(seen) == 1
    assert KEY not in str(failed.value)


def test_the_key_travels_as_basic_auth_and_the_date_header_is_closes_clock():
    seen, handler = answers(httpx.Response(
        200, json={}, headers={"date": "Thu, 03 Dec 2026 10:00:00 GMT"}))
    client = client_for(handler)
    client.get("me/")
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert KEY not in str(seen[0].url)
    assert client.server_time is not None and client.server_time.isoformat() == \
        "2026-12-03T10:00:00+00:00"


def test_an_exhausted_window_holds_the_endpoint_group_until_its_reset():
    seen, handler = answers(
        httpx.Response(200, json={}, headers={"x-rate-limit-remaining": "0",
                                              "x-rate-limit-reset": "0.05"}),
        httpx.Response(200, json={}))
    client = client_for(handler)
    client.get("lead/")
    started = time.monotonic()
    client.get("lead/")
    assert time.monotonic() - started >= 0.04
    assert len(seen) == 2


def seconds_for_two_requests(headers: dict[str, str], **kwargs: object) -> float:
    """The second request's wait, after a first answer carrying `headers`."""
    seen, handler = answers(httpx.Response(200, json={}, headers=headers),
                            httpx.Response(200, json={}))
    client = client_for(handler, **kwargs)
    client.get("lead/")
    started = time.monotonic()
    client.get("lead/")
    assert len(seen) == 2
    return time.monotonic() - started


@pytest.mark.parametrize(("headers", "held"), [
    # half of 4 used: the share is spent until the reset
    ({"x-rate-limit-limit": "4", "x-rate-limit-remaining": "2", "x-rate-limit-reset": "0.2"},
     True),
    ({"x-rate-limit-limit": "4", "x-rate-limit-remaining": "3", "x-rate-limit-reset": "5"},
     False),
    # the combined header alone: `remaining=` is not read as `limit=`
    ({"ratelimit": "limit=4, remaining=2, reset=0.2"}, True),
    ({"ratelimit": "limit=4, remaining=3, reset=5"}, False),
    ({"ratelimit": "remaining=3, limit=4, reset=5"}, False),
    # both: the documented headers win
    ({"x-rate-limit-limit": "4", "x-rate-limit-remaining": "2", "x-rate-limit-reset": "0.2",
      "ratelimit": "limit=4, remaining=4, reset=5"}, True),
    # no limit said: as without a share (hold only when none remain)
    ({"x-rate-limit-remaining": "1", "x-rate-limit-reset": "5"}, False),
    ({}, False),
])
def test_a_share_of_half_holds_the_group_once_half_the_limit_is_used(headers, held):
    elapsed = seconds_for_two_requests(headers, rate_limit_share=0.5)
    if held:
        assert elapsed >= 0.15, "the second request did not wait for the window's reset"
    else:
        assert elapsed < 2, "the second request waited for a reset 5 s away"


def test_the_whole_limit_holds_only_when_nothing_remains():
    used_but_one = {"x-rate-limit-limit": "4", "x-rate-limit-remaining": "1",
                    "x-rate-limit-reset": "5"}
    assert seconds_for_two_requests(used_but_one) < 2
    assert seconds_for_two_requests({**used_but_one, "x-rate-limit-remaining": "0",
                                     "x-rate-limit-reset": "0.2"}) >= 0.15
