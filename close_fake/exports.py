"""The Export API of the fake: `POST /export/lead/`, `GET /export/{id}/`, `GET /export/`, and
the pre-signed file download [000:113-263; 003:7630-7890].

Creating an export freezes the organisation (`FakeOrg.snapshot()`, O(objects), no deep copy)
and selects the leads (`s_query`/`sort`/`results_limit`, evaluated like `/data/search/`); a
daemon thread then streams the file to a temp directory (`export_file.py`). Progress is
virtual, driven by polls and/or elapsed time (`ExportSettings`), and never runs ahead of the
real writer. Statuses: `created` -> `started` -> `in_progress` (`n_docs` set,
`n_docs_processed` growing) -> `done` (`download_url` set) or `error`.

The download lives on another host name than the API, like Close's pre-signed storage
URLs: `http://<download_host>:<port>/export-files/<token>.json.gz?signature=...`. It needs
no auth and refuses any `Authorization` header (400, counted in `key_leaks`), so tests can
prove a client never hands its API key to the file host. Errors there are S3-style XML.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .common import ApiError, iso, make_id
from .export_file import FileShape, count_docs, default_selection, write_documents
from .org import FakeOrg
from .request import Request
from .search.engine import SearchEngine

FILES_PREFIX = "/export-files/"
FAIL_MODES = (None, "error", "stuck", "broken_download", "expired_url")
# The first third of virtual progress is `started`; `stuck` exports stop at half the docs.
_STARTED_UNTIL = 1 / 3
_STUCK_AT = _STARTED_UNTIL + (1 - _STARTED_UNTIL) / 2
_LIST_CAP = 100
# `fields` the docs show when the request names none [000:7-24; 003:7686-7690,7776-7779].
# They are informational: the file holds every field unless the request restricts it.
DEFAULT_FIELDS = {
    "leads": [
        "id", "display_name", "name", "description", "url", "status_id", "status_label",
        "addresses", "contacts", "custom", "created_by", "created_by_name", "updated_by",
        "updated_by_name", "date_created", "date_updated",
    ],
    "contacts": [
        "id", "name", "title", "phones", "emails", "urls", "created_by", "updated_by",
        "date_created", "date_updated",
    ],
}  # fmt: skip
DEFAULT_FIELDS["lead_opps"] = DEFAULT_FIELDS["contacts"]  # as the docs show (sync ref #40)
DATE_FORMATS = ("original", "iso8601", "excel")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class ExportSettings:
    """How the fake's Export API behaves: `FakeClose(org, export=ExportSettings(...))`.

    Progress: an export is `done` after `polls_to_finish` polls of `GET /export/{id}/` *and*
    `seconds_to_finish` seconds (0 disables either condition); with 3 or more polls every
    status is seen. File shape: see `export_file.py`. `fail`: `"error"` ends in `error`;
    `"stuck"` stays `in_progress` at half the docs forever; `"broken_download"` closes the
    connection after half of the requested bytes (every time, or only for the first
    `download_failures` downloads); `"expired_url"` answers the download with 403.
    """

    polls_to_finish: int = 3
    seconds_to_finish: float = 0.0
    layout: str = "array"
    custom_style: str = "dict"
    contact_lead_id: bool = False
    include_threads: bool = False
    include_tasks: bool = True
    fail: str | None = None
    download_failures: int | None = None
    download_host: str = "localhost"
    compresslevel: int = 6

    def __post_init__(self) -> None:
        if self.fail not in FAIL_MODES:
            raise ValueError(f"fail must be one of {FAIL_MODES}, not {self.fail!r}")
        if self.polls_to_finish < 0 or self.seconds_to_finish < 0:
            raise ValueError("polls_to_finish and seconds_to_finish must not be negative")
        if self.download_failures is not None and self.download_failures < 0:
            raise ValueError("download_failures must be None or >= 0")
        self.shape()  # validates layout, custom_style, compresslevel

    def shape(self, **request: Any) -> FileShape:
        """The file shape for these settings and one request's options."""
        return FileShape(
            layout=self.layout,
            custom_style=self.custom_style,
            contact_lead_id=self.contact_lead_id,
            include_threads=self.include_threads,
            include_tasks=self.include_tasks,
            compresslevel=self.compresslevel,
            **request,
        )


@dataclass
class ExportJob:
    """One export: its public object, its frozen organisation and its file."""

    id: str
    token: str
    public: dict[str, Any]  # the export object as the API shows it (status etc. updated)
    shape: FileShape
    snapshot: FakeOrg | None  # dropped once the file is written
    leads: list[dict[str, Any]]
    n_docs: int
    path: Path
    created_at: float = field(default_factory=time.monotonic)
    polls: int = 0
    written: int = 0  # documents the writer has finished
    built: bool = False
    failed: bool = False  # the writer crashed: the export ends in `error`
    size: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    broken_served: int = 0
    thread: threading.Thread | None = None


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


class Exports:
    """The export jobs of one `FakeClose`, their files and the download counters."""

    def __init__(
        self,
        org: FakeOrg,
        settings: ExportSettings,
        *,
        clock: Callable[[], datetime],
        port: Callable[[], int],
    ) -> None:
        self.org = org
        self.settings = settings
        self.clock = clock
        self.port = port
        self.key_leaks = 0  # download requests that carried an Authorization header
        self.downloads: Counter[str] = Counter()  # outcome -> count
        self._jobs: dict[str, ExportJob] = {}
        self._by_token: dict[str, ExportJob] = {}
        self._rng = random.Random(f"exports:{org.organization_id}")
        self._secret = hashlib.sha256(f"fake-export-files:{org.organization_id}".encode()).digest()
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._dir: Path | None = None

    # -- API handlers (called under the organisation lock) ------------------------------------

    def create(self, req: Request) -> dict[str, Any]:
        """`POST /export/lead/`: validate, freeze the org, select the leads, start the writer."""
        body = req.body if req.body is not None else {}
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        fmt, type_ = body.get("format"), body.get("type")
        if fmt not in ("json", "csv"):
            raise ApiError(400, "`format` is required: one of csv, json.")
        if type_ not in ("leads", "contacts", "lead_opps"):
            raise ApiError(400, "`type` is required: one of leads, contacts, lead_opps.")
        if fmt == "csv":
            raise ApiError(400, "CSV exports are not supported by the fake Close API; use json.")
        flags = {}
        for name, default in (("include_activities", False), ("include_smart_fields", False),
                              ("send_done_email", True)):  # fmt: skip
            value = body.get(name, default)
            if not isinstance(value, bool):
                raise ApiError(400, f"`{name}` must be a boolean.")
            flags[name] = value
        if flags["include_activities"] and type_ != "leads":
            raise ApiError(400, "include_activities only works for the leads type.")
        fields = body.get("fields")
        if fields is not None and (
            not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)
        ):
            raise ApiError(400, "`fields` must be a list of field names.")
        date_format = body.get("date_format")
        if date_format is not None and date_format not in DATE_FORMATS:
            raise ApiError(400, f"`date_format` must be one of {', '.join(DATE_FORMATS)}.")

        snap = self.org.snapshot()
        public: dict[str, Any] = {}
        if "query" in body and "s_query" in body:
            raise ApiError(400, "Send either `query` (older) or `s_query`, not both.")
        if "query" in body:
            query = body["query"]
            if query not in ("*", "", None):
                raise ApiError(
                    400,
                    "The fake Close API does not implement search-syntax `query` strings "
                    "(only '*'); use s_query.",
                )
            leads = default_selection(snap)
            public["query"] = query if query is not None else "*"
        else:
            s_query, sort = body.get("s_query"), body.get("sort", [])
            results_limit = body.get("results_limit")
            if s_query is None:
                leads = default_selection(snap)
                if sort or results_limit is not None:
                    leads = SearchEngine(snap, cursor_ttl=0, walk_max=0).select(
                        {"type": "match_all"}, sort, results_limit
                    )
            else:
                leads = SearchEngine(snap, cursor_ttl=0, walk_max=0).select(
                    s_query, sort, results_limit
                )
            public.update(s_query=s_query, sort=sort, results_limit=results_limit)
        if date_format is not None:
            public["date_format"] = date_format

        shape = self.settings.shape(
            export_type=type_,
            include_activities=flags["include_activities"],
            fields=tuple(fields) if fields is not None else None,
        )
        now = iso(self.clock())
        with self._lock:
            export_id = make_id(self._rng, "expo")
            token = f"{self._rng.getrandbits(128):032x}"
        public = {
            "id": export_id,
            "status": "created",
            "download_url": None,
            "type": type_,
            "format": fmt,
            **public,
            "fields": list(fields) if fields is not None else list(DEFAULT_FIELDS[type_]),
            "n_docs": None,
            "n_docs_processed": 0,
            "created_by": req.user_id,
            "updated_by": req.user_id,
            "date_created": now,
            "date_updated": now,
            "organization_id": self.org.organization_id,
            "send_done_email": flags["send_done_email"],
        }
        for name in ("include_activities", "include_smart_fields"):
            if name in body:
                public[name] = flags[name]
        job = ExportJob(
            id=export_id,
            token=token,
            public=public,
            shape=shape,
            snapshot=snap,
            leads=leads,
            n_docs=count_docs(snap, leads, type_),
            path=self._files_dir() / f"{token}.json.gz",
        )
        with self._lock:
            self._jobs[export_id] = job
            self._by_token[token] = job
        job.thread = threading.Thread(
            target=self._build, args=(job,), name=f"fake-export:{export_id[:12]}", daemon=True
        )
        job.thread.start()
        return dict(public)

    def get(self, req: Request) -> dict[str, Any]:
        """`GET /export/{id}/`: one poll (advances poll-driven progress)."""
        job = self._jobs.get(req.match["id"])
        if job is None:
            raise ApiError(404, f"Export {req.match['id']} not found.")
        return self._observe(job, poll=True)

    def list(self, req: Request) -> dict[str, Any]:
        """`GET /export/`: newest first; shows time-driven progress but is not a poll."""
        limit = req.params.int("_limit", _LIST_CAP)
        skip = req.params.int("_skip", 0)
        if limit < 0 or skip < 0:
            raise ApiError(400, "_limit and _skip must not be negative.")
        if limit > _LIST_CAP:
            raise ApiError(400, f"Invalid _limit {limit}: the maximum _limit for /export/ is 100.")
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: (j.created_at, j.id), reverse=True)
        page = jobs[skip : skip + limit]
        return {
            "has_more": skip + len(page) < len(jobs),
            "data": [self._observe(j, poll=False) for j in page],
        }

    def job(self, export_id: str) -> ExportJob | None:
        """A job by export id (tests: counts, file path)."""
        return self._jobs.get(export_id)

    # -- progress --------------------------------------------------------------------------

    def _observe(self, job: ExportJob, *, poll: bool) -> dict[str, Any]:
        s = self.settings
        with self._lock:
            pub = job.public
            if poll:
                job.polls += 1
            if pub["status"] in ("done", "error"):
                return dict(pub)
            p_polls = 1.0 if s.polls_to_finish == 0 else min(1.0, job.polls / s.polls_to_finish)
            elapsed = time.monotonic() - job.created_at
            p_time = 1.0 if s.seconds_to_finish == 0 else min(1.0, elapsed / s.seconds_to_finish)
            progress = min(p_polls, p_time)
            if s.fail == "stuck":
                progress = min(progress, _STUCK_AT)
            n = job.n_docs
            if progress <= 0:
                status, processed = "created", 0
            elif progress <= _STARTED_UNTIL:
                status, processed = "started", 0
            elif progress < 1 or not job.built:
                share = (progress - _STARTED_UNTIL) / (1 - _STARTED_UNTIL)
                processed = min(int(n * share), job.written, max(n - 1, 0))
                status, processed = "in_progress", max(processed, pub["n_docs_processed"])
            else:
                status = "error" if s.fail == "error" or job.failed else "done"
                processed = pub["n_docs_processed"] if status == "error" else n
            if (status, processed) != (pub["status"], pub["n_docs_processed"]):
                pub["status"], pub["n_docs_processed"] = status, processed
                pub["date_updated"] = iso(self.clock())
                if status not in ("created", "started"):
                    pub["n_docs"] = n
                if status == "done":
                    pub["download_url"] = self._download_url(job)
            return dict(pub)

    def _build(self, job: ExportJob) -> None:
        def progress(n: int) -> None:
            job.written = n

        assert job.snapshot is not None
        cancel = self._cancel
        try:
            counts = write_documents(
                job.snapshot, job.leads, job.path, job.shape, on_document=progress, cancel=cancel
            )
        except Exception:  # pragma: no cover - a bug or a full disk; the export fails
            traceback.print_exc(file=sys.stderr)
            with self._lock:
                job.failed = job.built = True
            return
        if cancel.is_set():
            return
        with self._lock:
            job.counts = counts
            job.size = job.path.stat().st_size
            job.built = True
            job.snapshot, job.leads = None, []  # the file is all that is needed now

    # -- the file host ---------------------------------------------------------------------

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

    # -- files -------------------------------------------------------------------------------

    def _files_dir(self) -> Path:
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="fake-close-exports-"))
            return self._dir

    def close(self) -> None:
        """Stop the writers and delete every export file (called by `FakeClose.stop()`)."""
        self._cancel.set()
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout=30)
        with self._lock:
            folder, self._dir = self._dir, None
            self._jobs.clear()
            self._by_token.clear()
            self._cancel = threading.Event()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _xml(status: int, code: str, message: str) -> FileAnswer:
    """An S3-style error: the file host is not the API and does not answer JSON."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    return FileAnswer(status, {"content-type": "application/xml"}, body=body)
