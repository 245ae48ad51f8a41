"""Bytes on the socket: a threading HTTP/1.1 server with keep-alive, replies written in one
piece (with TCP_NODELAY, so small ones do not wait on delayed ACKs), export files streamed
from disk in chunks, idle connections closed on `stop()`, and a slow link's round trips
(`latency`) waited out in each connection's own thread, so they overlap as on a real link."""

from __future__ import annotations

import contextlib
import http
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from ..common import http_date
from ..exports.host import FileAnswer
from .pipeline import RequestPipeline

_CHUNK = 64 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    fake: RequestPipeline

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def close_all_connections(self) -> None:
        """Close idle keep-alive connections so no handler thread outlives `stop()`."""
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)
        if self.server.fake.latency:
            time.sleep(self.server.fake.latency)  # the TCP handshake's round trip

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._read_body()
        fake = self.server.fake
        if fake.latency:
            time.sleep(fake.latency / 2)  # the request on its way in
        reply = fake.process(self.command, self.path, self.headers, body)
        if fake.latency:
            time.sleep(fake.latency / 2)  # the reply on its way out
        if reply.fault == "drop":
            self.close_connection = True
            return
        try:
            phrase = http.HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = ""
        date = f"date: {http_date(fake.clock() + fake.date_skew)}"
        if reply.file is not None:
            self._send_file(f"HTTP/1.1 {reply.status} {phrase}", date, reply.file)
            return
        payload = orjson.dumps(reply.body)
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            date,
            "content-type: application/json",
            f"content-length: {len(payload)}",
        ]
        lines += [f"{k}: {val}" for k, val in reply.headers.items()]
        if reply.fault == "partial" or self.close_connection:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if reply.fault == "partial":
            self.wfile.write(head + payload[: max(1, len(payload) // 2)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(head if self.command == "HEAD" else head + payload)
        self.wfile.flush()

    def _send_file(self, status_line: str, date: str, answer: FileAnswer) -> None:
        """A download-host answer: a small body, or a file range streamed in chunks; with
        `cut`, the connection closes after that many body bytes (a broken download)."""
        body = answer.body
        lines = [status_line, date]
        lines += [f"{k}: {val}" for k, val in answer.headers.items()]
        if "content-length" not in answer.headers:
            lines.append(f"content-length: {len(body)}")
        if answer.cut is not None:
            lines.append("connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if self.command == "HEAD":
            pass
        elif answer.path is None:
            self.wfile.write(body)
        else:
            left = answer.length if answer.cut is None else answer.cut
            with open(answer.path, "rb") as f:
                f.seek(answer.offset)
                while left > 0:
                    chunk = f.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        self.wfile.flush()
        if answer.cut is not None:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815
