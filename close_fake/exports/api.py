"""`Exports`: the export endpoints of one server (`POST /export/lead/`, `GET /export/{id}/`,
`GET /export/`), the jobs' virtual progress, their writer threads and temp files."""

from __future__ import annotations

import hashlib
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..common import ApiError, iso, make_id
from ..org import FakeOrg
from ..request import Request
from ..search.engine import SearchEngine
from .file import count_docs, default_selection, write_documents
from .host import FileHost
from .job import ExportJob
from .settings import ExportSettings

# The first third of virtual progress is `started`; `stuck` exports stop at half the docs.
_STARTED_UNTIL = 1 / 3
_STUCK_AT = _STARTED_UNTIL + (1 - _STARTED_UNTIL) / 2
_LIST_CAP = 100
# `fields` the docs show when the request names none (Close API: Exports).
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


class Exports(FileHost):
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
