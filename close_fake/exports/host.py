"""The download host: pre-signed export file URLs, their checks, and file answers with ranges.

It is not the API: no auth (an `Authorization` header is refused and counted), S3-style XML
errors, no faults and no rate limits; the file is streamed from disk by the server.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .job import ExportJob
from .settings import ExportSettings

FILES_PREFIX = "/export-files/"
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class FileAnswer:
    """A download-host answer: headers, then either `body` or `length` bytes of `path`
    from `offset`; with `cut` set, the connection closes after `cut` bytes."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    path: Path | None = None
    offset: int = 0
    length: int = 0
    cut: int | None = None
    fault: str | None = None


class FileHost:
    """The file-host half of `Exports`: download URLs, signatures, answers and counters."""

    settings: ExportSettings
    port: Callable[[], int]
    key_leaks: int
    downloads: Counter[str]
    _by_token: dict[str, ExportJob]
    _secret: bytes
    _lock: threading.Lock

    def _download_url(self, job: ExportJob) -> str:
        return (
            f"http://{self.settings.download_host}:{self.port()}{FILES_PREFIX}"
            f"{job.token}.json.gz?signature={self._sign(job.token)}"
        )

    def _sign(self, token: str) -> str:
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()

    def download(
        self, method: str, path: str, params: dict[str, str], headers: Any, api_host: str
    ) -> FileAnswer:
        """Answer one request to the file host (`GET`/`HEAD /export-files/<token>.json.gz`)."""
        if headers.get("authorization") is not None:
            with self._lock:
                self.key_leaks += 1
            return self._outcome("rejected_auth", _xml(
                400, "InvalidArgument",
                "Only one auth mechanism allowed; the pre-signed URL already authenticates "
                "this request, do not send an Authorization header.",
            ))  # fmt: skip
        if method not in ("GET", "HEAD"):
            return self._outcome("bad_method", _xml(405, "MethodNotAllowed", "Use GET."))
        host = (headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
        wanted = self.settings.download_host.lower()
        if wanted != api_host.lower() and host != wanted:
            return self._outcome("wrong_host", _xml(404, "NoSuchKey", "No such file."))
        name = path[len(FILES_PREFIX) :]
        token = name.removesuffix(".json.gz")
        with self._lock:
            job = self._by_token.get(token)
        if job is None or name == token or not job.built or job.public["status"] != "done":
            return self._outcome("not_found", _xml(404, "NoSuchKey", "No such file."))
        if not hmac.compare_digest(params.get("signature", ""), self._sign(token)):
            return self._outcome("bad_signature", _xml(
                403, "SignatureDoesNotMatch", "The request signature does not match."
            ))  # fmt: skip
        if self.settings.fail == "expired_url":
            return self._outcome("expired", _xml(403, "AccessDenied", "Request has expired"))

        size = job.size or 0
        answer = FileAnswer(200, {
            "content-type": "application/json",
            "content-encoding": "gzip",
            "accept-ranges": "bytes",
        }, path=job.path, offset=0, length=size)  # fmt: skip
        match = _RANGE.match((headers.get("range") or "").replace(" ", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else size - 1
            if start >= size or end < start:
                answer = FileAnswer(416, {"content-range": f"bytes */{size}"})
                return self._outcome("bad_range", answer)
            end = min(end, size - 1)
            answer.status, answer.offset, answer.length = 206, start, end - start + 1
            answer.headers["content-range"] = f"bytes {start}-{end}/{size}"
        answer.headers["content-length"] = str(answer.length)
        if method == "HEAD":
            answer.path = None
            return self._outcome("head", answer)
        if self.settings.fail == "broken_download":
            limit = self.settings.download_failures
            with self._lock:
                breaks = limit is None or job.broken_served < limit
                if breaks:
                    job.broken_served += 1
            if breaks:
                answer.cut, answer.fault = answer.length // 2, "broken_download"
                return self._outcome("broken", answer)
        return self._outcome("partial" if answer.status == 206 else "ok", answer)

    def _outcome(self, kind: str, answer: FileAnswer) -> FileAnswer:
        with self._lock:
            self.downloads[kind] += 1
        return answer


def _xml(status: int, code: str, message: str) -> FileAnswer:
    """An S3-style error: the file host is not the API and does not answer JSON."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    return FileAnswer(status, {"content-type": "application/xml"}, body=body)
