"""One export job: its public object, its frozen organisation, its file and its counters."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..org import FakeOrg
from .file import FileShape


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
