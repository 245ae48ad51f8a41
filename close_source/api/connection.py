"""Where the client may connect (`base_url`), and why no connection could be made, in the
words of the one line the user sees.

Before Close has answered once, an unknown host or a TLS failure is not tried again (neither
mends itself in seconds); a refused connection or an unreachable network is, twice, quickly
(a server restarting). Once Close has answered, the client retries them like a timeout.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import ssl
from urllib.parse import urlsplit

import httpx

from close_source.errors import ConfigError, UnreachableError, exception_chain

# attempts at a connection before Close has answered once (~1.5 s of backoff in all)
FIRST_CONNECT_ATTEMPTS = 3
_SSL_REASON = re.compile(r"\] (.+?)(?: \(_ssl\.c:\d+\))?$")


def validate_base_url(base_url: str) -> str:
    """https anywhere; plain http only on loopback, so a key never crosses a network in clear."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    secure = parts.scheme == "https" and bool(host)
    if not (secure or (parts.scheme == "http" and _is_loopback(host))):
        raise ConfigError(
            f"base_url {base_url!r} is not allowed: use https (plain http only for loopback "
            "hosts); set SOURCES__CLOSE__BASE_URL or `base_url` under [sources.close]"
        )
    return base_url if base_url.endswith("/") else base_url + "/"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect_failure(exc: httpx.TransportError) -> tuple[str, bool] | None:
    """Why no connection could be made, in a few words, and whether it may succeed if tried
    again in a moment; None for failures after connecting (a dropped connection)."""
    if not isinstance(exc, httpx.ConnectError):
        return None
    for cause in exception_chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted: {cause.verify_message}", False
        if isinstance(cause, ssl.SSLError):
            found = _SSL_REASON.search(str(cause))
            return f"TLS failed: {found.group(1) if found else cause.reason}", False
        if isinstance(cause, socket.gaierror):
            if cause.errno == socket.EAI_AGAIN:
                return "name resolution failed for now (temporary DNS failure)", True
            return "unknown host (name resolution failed)", False
        if isinstance(cause, OSError) and cause.errno in (
                errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH):
            return os.strerror(cause.errno).lower(), True
    return None


def host_and_port(base_url: str) -> str:
    """`host:port` of the API, without any user info the URL may hold."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def cannot_connect(base_url: str, reason: str) -> UnreachableError:
    return UnreachableError(
        f"cannot connect to {host_and_port(base_url)}: {reason} (check base_url: "
        "SOURCES__CLOSE__BASE_URL or `base_url` under [sources.close], and the network)")
