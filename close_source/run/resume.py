"""Finishing a load an earlier run began: its committed tables stay, the others load again.

A run that died after extracting (killed, disk full) left a load package whose state, the
Event Log watermarks among it, is already the pipeline's: the next run loads it before it
reads on. dlt records a job's completion after the destination committed it, so a job caught
in between sits in `started_jobs` and dlt would run it again on top of its own rows (a full
load then held every lead twice). `restart` decides per table:

- committed: a replace through staging or a merge whose follow-up SQL job (the swap, the
  merge) completed; a first load's table (written in place, truncate-and-insert) whose every
  job completed. Its jobs stay as they are and it is not loaded again;
- anything else, and every table of a refresh (`--full-refresh`: initialising the package
  again drops its tables again): its jobs go back to `new_jobs`, its follow-up jobs are
  dropped (dlt makes them again), and the package's schema update is restored so that dlt
  initialises the package again, emptying the staging tables (or, for a first load, the
  tables) of exactly the tables that load again. Swaps and delete-insert merges are idempotent.

Append jobs (dlt's own state row) are left to dlt. Which replace strategy the package was
begun with is remembered in a marker file: a first load's package is finished as a first load.
"""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from pathlib import Path

import dlt
from dlt.common.schema.utils import get_write_disposition

from close_source.key_set import SCRATCH_PREFIX as KEYS_SCRATCH
from close_source.read.window_store import SCRATCH_PREFIX as WINDOW_SCRATCH
from close_source.run.load_step import SPILL_DIRECTORY

log = logging.getLogger("close_source.progress")

FIRST_LOAD_MARKER = "close-sync-first-load"  # in the working directory while a first load runs


def first_load_marker(pipeline: dlt.Pipeline) -> Path:
    return Path(pipeline.working_dir) / FIRST_LOAD_MARKER


def remove_leftovers(pipeline: dlt.Pipeline) -> None:
    """What a run killed part-way left in the working directory: dlt extracts into a folder of
    its own per run (`normalize/<id>/`) and never comes back to one a killed run did not
    finish (gigabytes at 300,000 leads); the scratch files of an Event Log window, of the
    key sets of large tables and of DuckDB's load. Under the run lock, no other run is using
    them."""
    working_dir = Path(pipeline.working_dir)
    normalize = working_dir / "normalize"
    abandoned = [path for path in normalize.iterdir() if path.is_dir()
                 and path.name != "extracted"] if normalize.is_dir() else []
    scratch = [*working_dir.glob(f"{WINDOW_SCRATCH}*"), *working_dir.glob(f"{KEYS_SCRATCH}*"),
               *working_dir.glob(SPILL_DIRECTORY)]
    if not abandoned and not scratch:
        return
    files = [f for path in abandoned + scratch
             for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    for path in abandoned + scratch:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    log.warning("removed %.1f MB that a run stopped part-way had left behind", size / 1e6)


def discard_pending(pipeline: dlt.Pipeline) -> None:
    """Drop every load package an earlier run left, loaded in part or not at all (made for a
    destination state that is gone: `run/destination.py`)."""
    loads = pipeline._get_load_storage()  # noqa: SLF001 - dlt's own
    for load_id in loads.normalized_packages.list_packages():
        loads.normalized_packages.delete_package(load_id)
    extracted = pipeline._get_normalize_storage().extracted_packages  # noqa: SLF001 - dlt's own
    for load_id in extracted.list_packages():
        extracted.delete_package(load_id)
    first_load_marker(pipeline).unlink(missing_ok=True)


def is_refresh(pipeline: dlt.Pipeline, load_id: str) -> bool:
    """Whether the package drops or truncates tables when it is initialised (a refresh)."""
    packages = pipeline._get_load_storage().normalized_packages  # noqa: SLF001 - dlt's own
    state = packages.get_load_package_state(load_id)
    return bool(state.get("dropped_tables") or state.get("truncated_tables"))


def restart(pipeline: dlt.Pipeline, load_id: str, first_load: bool) -> bool:
    """Prepare a begun package so its load finishes exactly once; True if it had begun."""
    packages = pipeline._get_load_storage().normalized_packages  # noqa: SLF001 - dlt's own
    if packages.get_schema_update_file(load_id) is not None or packages.has_abort_flag(load_id):
        return False  # never initialised: dlt loads it from the start anyway
    tables = packages.load_schema(load_id).tables
    jobs = packages.list_all_jobs_with_states(load_id)
    data_states: dict[str, set[str]] = defaultdict(set)
    swapped: set[str] = set()
    for state, job in jobs:
        if job.file_format == "sql":
            if state == "completed_jobs":
                swapped.add(job.table_name)
        else:
            data_states[job.table_name].add(state)

    # a refresh (`--full-refresh`) drops its tables when the package is initialised, and
    # initialising it again drops them again, committed or not: every table loads again
    refreshed = is_refresh(pipeline, load_id)

    def committed(table: str) -> bool:
        if refreshed:
            return False
        if first_load and get_write_disposition(tables, table) == "replace":
            return data_states[table] == {"completed_jobs"}
        return table in swapped

    again = {table for table in data_states if table in tables and
             get_write_disposition(tables, table) in ("replace", "merge") and not committed(table)}
    for state, job in jobs:
        if job.table_name not in again:
            continue
        name = job.file_name()
        if job.file_format == "sql":
            packages.storage.delete(packages.get_job_file_path(load_id, state, name))
        elif state != "new_jobs":
            packages.storage.atomic_rename(packages.get_job_file_path(load_id, state, name),
                                           packages.get_job_file_path(load_id, "new_jobs", name))
        else:
            continue
        packages.clear_pending_transition(load_id, name)
    packages.save_schema_updates(load_id, packages.get_load_package_info(load_id).schema_update)
    kept = sorted(table for table in data_states if table in tables and table not in again
                  and get_write_disposition(tables, table) in ("replace", "merge"))
    log.warning("load package %s was partly loaded: %d tables were committed and stay (%s); "
                "%d load again (%s)", load_id, len(kept), _names(kept), len(again),
                _names(sorted(again)))
    return True


def _names(tables: list[str], shown: int = 40) -> str:
    if not tables:
        return "none"
    more = f", and {len(tables) - shown} more" if len(tables) > shown else ""
    return ", ".join(tables[:shown]) + more
