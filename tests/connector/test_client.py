"""The HTTP client against the fake Close: rate limits, retries, errors."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from close_fake import FakeClose, Faults, RateLimit, generate_org
from close_source.api.client import CloseClient
from close_source.api.connection import FIRST_CONNECT_ATTEMPTS
from close_source.errors import AccessDenied, AuthError, ConfigError, UnreachableError

KEY = "api_connect_test_key_9c2e"


@pytest.fixture(scope="module")
def org():
    return generate_org(seed=2, leads=5)


def client_for(fake: FakeClose, **kwargs) -> CloseClient:
    return CloseClient(fake.api_key, fake.base_url, **kwargs)


def test_429_waits_rate_reset_from_the_body(org):
    faults = Faults(rate_reset=0.3)
    faults.fail_next("/user/", ["429", "429"])
    with FakeClose(org, faults=faults) as fake, client_for(fake) as client:
        started = time.monotonic()
        users = client.get("user/")
        elapsed = time.monotonic() - started
    assert users["data"] and faults.injected["429"] == 2
    assert elapsed >= 0.6, "each 429 must be followed by a wait of error.rate_reset"
    assert [r.status for r in fake.requests] == [429, 429, 200]


def test_429_storm_is_absorbed_without_losing_pages(org):
    faults = Faults(seed=1, p_429=0.6, rate_reset=0.01)
    with FakeClose(org, faults=faults) as fake, client_for(fake) as client:
        for _ in range(10):
            assert client.get("lead/", {"_limit": 5})["data"]
    assert faults.injected["429"] >= 10


def test_exhausted_window_holds_the_group_instead_of_hitting_429(org):
    """`remaining: 0` in the headers -> wait for the reset; the fake enforces a real limit."""
    with FakeClose(org, rate_limit=RateLimit(3, 0.3)) as fake, client_for(fake) as client:
        for _ in range(9):
            client.get("role/")
    statuses = [r.status for r in fake.requests]
    assert statuses == [200] * 9, "the client ran into the limit instead of slowing down"


def counted_per_window(fake: FakeClose) -> Counter[tuple[str, float]]:
    """The fake limiter's count of requests per (endpoint group, window)."""
    return Counter((r.rate.group_id, r.rate.window_start) for r in fake.requests
                   if r.rate and not r.rate.exceeded)


@pytest.mark.parametrize(("share", "requests", "most"), [
    (0.5, 12, 5), (0.3, 9, 3), (0.05, 3, 1),  # 0.05 of 10 is less than one: one a window
])
def test_a_share_holds_each_window_to_that_part_of_the_limit_under_threads(
        org, share, requests, most):
    """Six threads at once on one endpoint group: at most `share` of the limit is ever
    counted in one of the fake's windows (in-flight requests included), and that much is."""
    limit = RateLimit(10, 0.3, enforce=False)
    with FakeClose(org, rate_limit=limit) as fake, \
            client_for(fake, rate_limit_share=share) as client, \
            ThreadPoolExecutor(max_workers=6) as pool:
        for page in pool.map(lambda _: client.get("role/"), range(requests)):
            assert page["data"]
    counts = [n for (group, _), n in counted_per_window(fake).items()
              if group == RateLimit.group_id("GET /role/")]
    assert sum(counts) == requests and max(counts) == most, counts


def test_the_whole_limit_is_the_default_as_before(org):
    """Share 1.0: requests go until a response says none remain, as before the setting."""
    with FakeClose(org, rate_limit=RateLimit(10, 1.0, enforce=False)) as fake, \
            client_for(fake) as client:
        assert client.rate_limit_share == 1.0
        for _ in range(11):
            client.get("role/")
    assert list(counted_per_window(fake).values()) == [10, 1]


def test_endpoint_groups_are_limited_independently(org):
    """A held group does not hold the others: Close rate-limits per endpoint group. The
    user/ request reaches the server while role/ still waits out its 3 s reset."""
    faults = Faults(rate_reset=3.0)
    faults.fail_next("/role/", ["429"])
    with FakeClose(org, faults=faults) as fake, client_for(fake) as client:
        import threading
        slow = threading.Thread(target=client.get, args=("role/",))
        slow.start()
        while not fake.requests:  # the 429 has been served
            time.sleep(0.001)
        client.get("user/")
        slow.join()
    limited, = [r for r in fake.requests if r.status == 429]
    user, = [r for r in fake.requests if r.path.endswith("/user/")]
    retried, = [r for r in fake.requests if r.path.endswith("/role/") and r.status == 200]
    assert user.at < retried.at and user.at - limited.at < faults.rate_reset


@pytest.mark.parametrize("kind", ["500", "502", "503", "drop", "partial"])
def test_transient_failures_are_retried(org, kind):
    faults = Faults()
    faults.fail_next("/lead/", [kind, kind])
    with FakeClose(org, faults=faults) as fake, \
            client_for(fake, backoff_initial=0.01) as client:
        body = client.get("lead/")
    assert len(body["data"]) == 5 and faults.injected[kind] == 2


def test_retries_are_bounded_then_a_clear_error(org):
    faults = Faults(p_503=1.0)
    with FakeClose(org, faults=faults) as fake, \
            client_for(fake, max_attempts=3, backoff_initial=0.01) as client, \
            pytest.raises(UnreachableError, match=r"GET lead/ kept failing .*503.* 3 attempts"):
        client.get("lead/")
    assert len(fake.requests) == 3


def test_bad_key_names_the_setting_to_fix(org):
    with FakeClose(org) as fake, CloseClient("wrong-key", fake.base_url) as client, \
            pytest.raises(AuthError, match="SOURCES__CLOSE__API_KEY"):
        client.get("me/")


def test_forbidden_endpoint_is_access_denied_not_auth(org):
    with FakeClose(org, forbidden={"/webhook/"}) as fake, client_for(fake) as client:
        with pytest.raises(AccessDenied):
            client.get("webhook/")
        assert client.get("me/")["id"]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_fails_fast_and_says_so():
    """Before Close has answered once, a refused connection is a wrong base_url or an
    outage: two quick retries, then one clear error, not 8 attempts over a minute."""
    port = closed_port()
    with CloseClient(KEY, f"http://127.0.0.1:{port}/api/v1/") as client:
        started = time.monotonic()
        with pytest.raises(UnreachableError) as failed:
            client.get("me/")
        assert time.monotonic() - started < 5
    assert str(failed.value).startswith(f"cannot connect to 127.0.0.1:{port}: connection refused")
    assert client.requests_sent == FIRST_CONNECT_ATTEMPTS and KEY not in str(failed.value)


def test_an_unknown_host_is_not_retried():
    with CloseClient(KEY, "https://close-dlt-test.invalid/api/v1/") as client, \
            pytest.raises(UnreachableError) as failed:
        client.get("me/")
    assert str(failed.value).startswith(
        "cannot connect to close-dlt-test.invalid:443: unknown host (name resolution failed)")
    assert client.requests_sent == 1


def test_tls_to_a_plain_http_server_is_not_retried(org):
    with FakeClose(org) as fake, \
            CloseClient(KEY, fake.base_url.replace("http://", "https://")) as client, \
            pytest.raises(UnreachableError) as failed:
        client.get("me/")
    assert str(failed.value).startswith(
        f"cannot connect to 127.0.0.1:{fake.port}: TLS failed: wrong version number")
    assert client.requests_sent == 1 and fake.requests == []


def test_a_certificate_not_trusted_says_so(tmp_path):
    """A self-signed certificate (a TLS-intercepting proxy, a test server): one attempt."""
    with tls_server(tmp_path) as port, \
            CloseClient(KEY, f"https://127.0.0.1:{port}/api/v1/") as client, \
            pytest.raises(UnreachableError) as failed:
        client.get("me/")
    assert str(failed.value).startswith(f"cannot connect to 127.0.0.1:{port}: TLS certificate "
                                        "not accepted: self-signed certificate")
    assert client.requests_sent == 1


def test_once_close_has_answered_a_refused_connection_is_retried_like_a_timeout(org):
    """Mid-run, a refused connection is a server restarting: the full retry budget."""
    with FakeClose(org) as fake:
        client = CloseClient(fake.api_key, fake.base_url, max_attempts=4, backoff_initial=0.01)
        assert client.get("me/")["id"]
    with client, pytest.raises(UnreachableError) as failed:
        client.get("lead/")  # the server is gone: its port refuses connections
    assert "GET lead/ kept failing (connection refused) after 4 attempts" in str(failed.value)
    assert client.requests_sent == 1 + 4


@contextmanager
def tls_server(directory: Path) -> Iterator[int]:
    """A loopback TLS server with a self-signed certificate; yields its port."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with contextlib.suppress(OSError), \
                    context.wrap_socket(connection, server_side=True):
                pass  # the client refuses the certificate during the handshake

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()
        thread.join(timeout=10)


@pytest.mark.parametrize("url", ["http://api.close.com/api/v1/", "ftp://127.0.0.1/",
                                 "http://10.0.0.1/api/v1/"])
def test_plain_http_only_for_loopback(url):
    with pytest.raises(ConfigError, match="https"):
        CloseClient("k", url)


@pytest.mark.parametrize("url", ["https://api.close.com/api/v1", "http://localhost:8000/api/v1/",
                                 "http://127.0.0.2:1/api/v1/", "http://[::1]:80/api/v1/"])
def test_allowed_base_urls(url):
    assert CloseClient("k", url).base_url.endswith("/")


def test_missing_key_is_a_config_error():
    with pytest.raises(ConfigError, match="SOURCES__CLOSE__API_KEY"):
        CloseClient("  ", "https://api.close.com/api/v1/")
