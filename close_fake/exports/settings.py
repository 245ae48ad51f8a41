"""`ExportSettings`: how one server's Export API behaves: progress, file shape, failures, host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .file import FileShape

FAIL_MODES = (None, "error", "stuck", "broken_download", "expired_url")


@dataclass
class ExportSettings:
    """How the fake's Export API behaves: `FakeClose(org, export=ExportSettings(...))`.

    Progress: an export is `done` after `polls_to_finish` polls of `GET /export/{id}/` *and*
    `seconds_to_finish` seconds (0 disables either condition); with 3 or more polls every
    status is seen. File shape: see `file.py`. `fail`: `"error"` ends in `error`;
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
