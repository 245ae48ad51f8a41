"""One `close-sync` run at a time per pipeline.

Two runs of one pipeline interleave their load packages, state and watermark, so a run holds,
for as long as it lasts:

- a lock file in the pipeline's working directory (`fcntl.flock`): the OS releases it when the
  process dies, even by SIGKILL, so the next run takes it over with no manual step. The file
  says who holds it (pid, host, start time, destination) for the message the next run prints;
- on PostgreSQL, a session advisory lock on a key derived from pipeline name and dataset, on a
  connection kept open for the run: runs from two machines (two working directories) into one
  dataset cannot interleave either. The server releases it when the session ends.

The lock is re-entrant within a process: the CLI takes it before the source is created (the
source reads state and the warehouse) and `run_sync` takes it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.destinations.exceptions import DestinationConnectionError

from close_source.errors import CloseSyncError

LOCK_FILE = "close-sync.lock"
_held: set[str] = set()  # lock files this process holds


class RunLocked(CloseSyncError):
    """Another run of the same pipeline holds the lock."""


def lock_path(pipeline: dlt.Pipeline) -> Path:
    return Path(pipeline.working_dir) / LOCK_FILE


@contextmanager
def run_lock(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Hold the pipeline's run lock (and PostgreSQL's advisory lock) for the block."""
    path = lock_path(pipeline)
    key = str(path.resolve())
    if key in _held:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(_in_progress(pipeline, _read_holder(fd))) from None
        _write_holder(fd, pipeline)
        with _destination_lock(pipeline):
            _held.add(key)
            try:
                yield
            finally:
                _held.discard(key)
    finally:
        os.close(fd)  # releases the flock


def holder_of(working_dir: str | Path) -> dict[str, Any] | None:
    """Who holds the run lock of the pipeline in `working_dir` now, or None if nobody does."""
    path = Path(working_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe(holder: dict[str, Any]) -> str:
    """`pid 4242, started 05:31 UTC` from what the lock file holds (whatever part is there)."""
    parts = []
    if holder.get("pid"):
        host = holder.get("host")
        parts.append(f"pid {holder['pid']}" + (f" on {host}" if host != socket.gethostname()
                                                else ""))
    if started := holder.get("started_at"):
        with suppress(ValueError):
            parts.append(f"started {datetime.fromisoformat(started):%H:%M} UTC")
    return ", ".join(parts)


def _in_progress(pipeline: dlt.Pipeline, holder: dict[str, Any]) -> str:
    detail = describe(holder)
    return (f"another close-sync run of pipeline {pipeline.pipeline_name} is in progress"
            + (f" ({detail})" if detail else f" (it holds {lock_path(pipeline)})"))


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder's record; empty while the holder has not written it yet."""
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        holder = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _write_holder(fd: int, pipeline: dlt.Pipeline) -> None:
    destination = pipeline.destination.destination_name if pipeline.destination else None
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "destination": destination, "dataset": pipeline.dataset_name}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)


# ---- PostgreSQL: a session advisory lock, for runs from other machines ----------------------


def advisory_key(pipeline_name: str, dataset_name: str) -> int:
    """A stable signed 64-bit key (PostgreSQL's bigint) for pipeline + dataset."""
    digest = hashlib.sha256(f"close-sync\0{pipeline_name}\0{dataset_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _destination_lock(pipeline: dlt.Pipeline) -> Iterator[None]:
    if pipeline.destination is None or \
            pipeline.destination.destination_type.rsplit(".", 1)[-1] != "postgres":
        yield
        return
    key = advisory_key(pipeline.pipeline_name, pipeline.dataset_name)
    client = pipeline.sql_client()
    try:
        client.open_connection()  # this connection stays open for the run
    except Exception as error:  # as dlt reports it when it connects in a pipeline step
        raise DestinationConnectionError(type(client).__name__, pipeline.dataset_name,
                                         str(error), error) from error
    try:
        client.execute_sql("SET application_name = %s",
                           f"close-sync pid {os.getpid()} on {socket.gethostname()}")
        if not client.execute_sql("SELECT pg_try_advisory_lock(%s)", key)[0][0]:
            raise RunLocked(_held_elsewhere(pipeline, client, key))
        try:
            yield
        finally:
            with suppress(Exception):  # a lost connection has released it already
                client.execute_sql("SELECT pg_advisory_unlock(%s)", key)
    finally:
        client.close_connection()


def _held_elsewhere(pipeline: dlt.Pipeline, client: Any, key: int) -> str:
    """Who holds the advisory lock: the session's application name and start time."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    rows = client.execute_sql(
        "SELECT a.application_name, a.backend_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
        unsigned >> 32, unsigned & 0xFFFFFFFF)
    detail = ""
    if rows:
        name, started = rows[0]
        who = name.removeprefix("close-sync ") if name else "another session"
        detail = f" ({who}, started {started.astimezone(UTC):%H:%M} UTC)"
    return (f"another close-sync run of pipeline {pipeline.pipeline_name} is loading "
            f"dataset {pipeline.dataset_name} of this PostgreSQL database{detail}")
