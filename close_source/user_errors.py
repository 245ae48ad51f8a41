"""Exceptions the person running a sync can fix -> the one line `close-sync` prints for them.

Our own `CloseSyncError`s say it already; dlt's configuration and destination errors, and the
file system's (no space, read-only, locked DuckDB file), are translated here so they name what
to change. Nothing here may echo a secret: connection strings in driver messages are redacted,
and messages about files never mention credentials.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import Any

import tomlkit
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
    LookupTraces,
    ValueNotSecretException,
)
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.exceptions import MissingDependencyException
from dlt.common.schema.exceptions import DataValidationError
from dlt.destinations.exceptions import DatabaseException, DestinationConnectionError
from dlt.pipeline.exceptions import PipelineStepFailed

from close_source.errors import CloseSyncError, exception_chain
from close_source.run.lock import describe, holder_of
from close_source.settings import ACCEPTS, accepted, refused, setting_name

_SECRETS = (
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),  # scheme://user:password@host
    (re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE), r"\1***"),
)
_NO_SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
             errno.EFBIG: "file too large (the file size limit, ulimit -f)"}
_NOT_WRITABLE = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted"}
_TEXT_ERRNO = {"no space left on device": errno.ENOSPC, "disk quota exceeded": errno.EDQUOT,
               "file too large": errno.EFBIG, "read-only file system": errno.EROFS,
               "permission denied": errno.EACCES}
# a quoted absolute path, not a traceback's `File "/x.py", line 3` (dlt's job messages hold one)
_QUOTED_PATH = re.compile(r"[\"'](/[^\"']+)[\"'](?!, line \d)")
# DuckDB: Could not set lock on file "/x.duckdb": Conflicting lock is held in /bin/python (PID 7)
_AMBIGUOUS = "Ambiguous reference to catalog or schema"
_DUCKDB_LOCK = re.compile(r'Could not set lock on file "(?P<path>[^"]+)": Conflicting lock is '
                          r"held in (?P<program>\S+)(?: \(PID (?P<pid>\d+)\))?")


def user_error_message(exc: BaseException, pipeline: Any = None) -> str | None:
    """The one-line message for a user error anywhere in the exception chain, else None.

    `pipeline` (when the command made one) names its working directory and run lock.
    """
    causes = list(exception_chain(exc))
    failed = next((c for c in causes if isinstance(c, PipelineStepFailed)), None)
    if failed is not None:
        pipeline = failed.pipeline
    for cause in causes:  # the precise causes first, wherever they are in the chain
        if isinstance(cause, CloseSyncError):
            return str(cause)
        if isinstance(cause, ConfigFieldMissingException):
            return _missing_config(cause)
        if isinstance(cause, ConfigValueCannotBeCoercedException):
            return _uncoercible(cause, failed.step if failed is not None else None)
        if isinstance(cause, UnknownDestinationModule):
            return (f"unknown destination {cause.ref!r}: use duckdb, postgres, "
                    "bigquery or another dlt destination name")
        if isinstance(cause, TomlProviderReadException):
            return _unreadable_toml(cause)
        if isinstance(cause, MissingDependencyException):
            return _missing_driver(cause, causes)
        if isinstance(cause, DataValidationError):
            return _contract_refused(cause)
        if isinstance(cause, ValueNotSecretException):
            return (f"`{cause.key}` is a secret and {cause.provider_name} may not hold it: "
                    "move it to .dlt/secrets.toml or an environment variable")
    if message := _file_system_problem(causes, pipeline):
        return message
    if message := _file_named_like_dataset(causes, pipeline):
        return message
    for cause in causes:
        if isinstance(cause, PipelineStepFailed) and cause.step == "sync" or \
                isinstance(cause, DestinationConnectionError):
            return _unreachable_destination(exc, pipeline)
    return None


def _file_named_like_dataset(causes: list[BaseException], pipeline: Any) -> str | None:
    """DuckDB names a database after its file: `close.duckdb` holding dataset `close` makes
    every `close.<table>` ambiguous, and the first query fails."""
    if not any(isinstance(c, DatabaseException) and _AMBIGUOUS in str(c) for c in causes):
        return None
    dataset = getattr(pipeline, "dataset_name", None) or "the dataset"
    return (f"the DuckDB file is named like its dataset ({dataset}.duckdb holding dataset "
            f"{dataset}), and DuckDB cannot tell the two apart: name the file differently "
            "(DESTINATION__DUCKDB__CREDENTIALS) or the dataset (--dataset)")


def _missing_config(cause: ConfigFieldMissingException) -> str:
    if "api_key" in cause.fields:
        return ("No Close API key: set SOURCES__CLOSE__API_KEY or `api_key` under "
                "[sources.close] in .dlt/secrets.toml")
    destination = _destination_section(cause.traces)
    if destination and "credentials" in cause.fields:
        setting = f"DESTINATION__{destination.upper()}__CREDENTIALS"
        partial = next((t for t in cause.traces["credentials"] if isinstance(t, LookupTraces)
                        and t.resolved_fields_set), None)
        if partial is not None:  # given, but incomplete: say what is missing, not "none"
            missing = list(partial.traces)
            example = (" (postgresql://user:PASSWORD@host:5432/database)"
                       if destination == "postgres" and missing == ["password"] else "")
            return (f"the {destination} credentials have no {', '.join(missing)}: add it to "
                    f"{setting}{example} or set {setting}__{missing[0].upper()} "
                    "(see docs/destinations.md)")
        return (f"no credentials for the {destination} destination: set {setting} or "
                f"[destination.{destination}.credentials] in .dlt/secrets.toml "
                "(see docs/destinations.md)")
    return f"missing configuration: {', '.join(cause.fields)} (see docs/configuration.md)"


def _contract_refused(cause: DataValidationError) -> str:
    """The user's schema contract stopped the run, before anything of it was loaded. Not the
    offending row: it holds Close's data."""
    column = f" column {cause.column_name}" if cause.column_name else ""
    return (f"{setting_name('schema_contract')} refused{column} in table {cause.table_name} "
            f"({cause.schema_entity}: {cause.contract_mode}); nothing of this run was loaded")


def _uncoercible(cause: ConfigValueCannotBeCoercedException, step: str | None) -> str:
    """A value dlt could not read as its setting's type. The source's own settings are read
    before any step (`close_source()`); a step's (`[load] workers`) while it runs. The value
    is shown only for the source's settings: another one may be a secret."""
    field = cause.field_name
    if step is None and field in ACCEPTS:
        return refused(field, cause.field_value, ACCEPTS[field][1])
    where = setting_name(field, (step,)) if step in ("extract", "normalize", "load") else \
        f"the setting `{field}`"
    return f"{where} must be {accepted(cause.hint)} (see docs/configuration.md)"


# destinations whose drivers close-dlt's own extras install (pyproject.toml)
_OUR_EXTRAS = ("postgres", "bigquery")


def _missing_driver(cause: MissingDependencyException, causes: list[BaseException]) -> str:
    """A destination whose driver is not installed (psycopg2 after `pip install -e .`): the
    extra that installs it, ours where we have one (installed from the clone, as close-dlt is
    not on a package index), else dlt's."""
    module = next((c.name for c in causes if isinstance(c, ModuleNotFoundError) and c.name),
                  None)
    extras = [d.partition("[")[2].rstrip("]") for d in cause.dependencies]
    commands = [f'pip install -e ".[{extra}]" in close-dlt\'s clone' if extra in _OUR_EXTRAS
                else f'pip install "{dependency}"'
                for extra, dependency in zip(extras, cause.dependencies, strict=True)]
    needs = f"needs {module}, which is not installed" if module else "needs packages that are " \
        "not installed"
    return f"the {cause.caller} {needs}: {' and '.join(commands)} (see docs/destinations.md)"


def _destination_section(traces: Any) -> str | None:
    """`postgres` from lookups under `destination.postgres...`, however deeply nested."""
    if isinstance(traces, dict):
        traces = list(traces.values())
    if isinstance(traces, list):
        return next((found for item in traces if (found := _destination_section(item))), None)
    if hasattr(traces, "traces"):  # a nested configuration's own lookups
        return _destination_section(traces.traces)
    sections = getattr(traces, "sections", None) or []
    if len(sections) >= 2 and sections[0] == "destination" and sections[1] != "credentials":
        return str(sections[1])
    return None


def _unreadable_toml(cause: TomlProviderReadException) -> str:
    """Which file and line: dlt names every candidate path, so the existing ones are parsed."""
    for candidate in cause.full_paths:
        path = Path(candidate)
        if not path.is_file():
            continue
        try:
            tomlkit.parse(path.read_text(encoding="utf-8"))
        except tomlkit.exceptions.ParseError as error:
            return f"{path.resolve()} is not valid TOML: {error} (fix that line)"
        except (OSError, UnicodeDecodeError) as error:
            return f"cannot read {path.resolve()}: {error}"
    return f"cannot read {cause.file_name}: {str(cause).splitlines()[-1]}"


# ---- the file system: no space, read-only, a DuckDB file locked by another process ----------


def _file_system_problem(causes: list[BaseException], pipeline: Any) -> str | None:
    for cause in causes:
        if (locked := _DUCKDB_LOCK.search(str(cause))) is not None:
            return _duckdb_locked(locked, pipeline)
    for cause in causes:
        code, path = _os_error(cause)
        if code in _NO_SPACE:
            return _no_space(code, path, pipeline)
        if code in _NOT_WRITABLE:
            return f"cannot write {path or 'a file'}: {_NOT_WRITABLE[code]}{_where(path)}"
    return None


def _os_error(cause: BaseException) -> tuple[int | None, str | None]:
    """errno and path of an OSError, or of a driver error that quotes one (DuckDB's IO Error
    says `Could not write file "/x.duckdb.wal": No space left on device`)."""
    if isinstance(cause, OSError) and cause.errno in _NO_SPACE | _NOT_WRITABLE:
        path = cause.filename or _quoted_path(str(cause))
        return cause.errno, str(path) if path else None
    text = str(cause).lower()
    for phrase, code in _TEXT_ERRNO.items():
        if phrase in text and (isinstance(cause, OSError) or "io error" in text
                               or "could not write" in text or "cannot open" in text):
            return code, _quoted_path(str(cause))
    return None, None


def _quoted_path(text: str) -> str | None:
    found = _QUOTED_PATH.search(text)
    return found.group(1) if found else None


def _no_space(code: int, path: str | None, pipeline: Any) -> str:
    """Names the fullest of the named path and the places the run writes to: a write() names
    no file, and a failed move names its source (dlt writes follow-up jobs to /tmp first)."""
    if code == errno.EFBIG:  # a per-process limit, not the disk
        return (f"{_NO_SPACE[code]} writing {path or 'a file'}: raise the limit and run "
                "close-sync again; it finishes this load first")
    path = _fullest(([path] if path else []) + _places(pipeline))
    where, free = (f" writing {path}", "") if path else ("", "")
    if path and (existing := _existing(path)) is not None:
        free = f" ({shutil.disk_usage(existing).free // 1024} KiB free)"
    return (f"{_NO_SPACE[code]}{where}{free}: free some space and run close-sync again; it "
            "finishes this load first")


def _where(path: str | None) -> str:
    """What the file is and which setting moves it."""
    if path and Path(path).name.split(".")[-1] in ("duckdb", "wal"):
        return (" (the DuckDB file: run close-sync in a writable directory or choose another "
                "file, see docs/destinations.md)")
    from dlt.common.runtime.run_context import active

    if path and _inside(path, active().data_dir):
        return (" (dlt's pipeline directory: set DLT_DATA_DIR to a writable directory, "
                "see docs/configuration.md)")
    return ""


def _duckdb_locked(found: re.Match[str], pipeline: Any) -> str:
    """DuckDB lets one process write a file: say who has it and what to do; this run stops
    at once rather than wait (a scheduler would pile runs up)."""
    pid = f" (PID {found['pid']})" if found["pid"] else f" ({found['program']})"
    message = f"the DuckDB file {found['path']} is in use by another process{pid}"
    holder = holder_of(pipeline.working_dir) if pipeline is not None else None
    if holder is not None:
        detail = describe(holder)
        return (f"{message}: a close-sync run of pipeline {pipeline.pipeline_name} is in "
                f"progress{f' ({detail})' if detail else ''}; this command does not wait: run "
                "it again when that run has finished")
    return (f"{message}: DuckDB lets one process write a file at a time; close the file there "
            "(or stop that process) and run close-sync again, it does not wait")


def _places(pipeline: Any) -> list[str]:
    if pipeline is None:
        return []
    places = [pipeline.working_dir]
    try:
        database = pipeline.destination_client().config.credentials.database
        if isinstance(database, str) and database.startswith("/"):
            places.append(database)
    except Exception:  # noqa: BLE001 - no DuckDB file to name
        pass
    return places


def _fullest(paths: list[str]) -> str | None:
    existing = [(shutil.disk_usage(found).free, path) for path in paths
                if (found := _existing(path)) is not None]
    return min(existing)[1] if existing else None


def _existing(path: str) -> str | None:
    """The path, or its nearest existing parent (where the file would be)."""
    current = Path(path)
    while not current.exists() and current != current.parent:
        current = current.parent
    return str(current) if current.exists() else None


def _inside(path: str, directory: str) -> bool:
    try:
        return os.path.commonpath([os.path.abspath(path), os.path.abspath(directory)]) == \
            os.path.abspath(directory)
    except ValueError:
        return False


def _unreachable_destination(exc: BaseException, pipeline: Any) -> str:
    """The driver's first line (what failed, where), without any password in it."""
    name = "the"
    if pipeline is not None and pipeline.destination is not None:
        name = pipeline.destination.destination_name
    root = list(exception_chain(exc))[-1]
    detail = next((line.strip() for line in str(root).splitlines() if line.strip()),
                  type(root).__name__)
    for pattern, replacement in _SECRETS:
        detail = pattern.sub(replacement, detail)
    return (f"cannot connect to the {name} destination: {detail} (check "
            f"DESTINATION__{name.upper()}__CREDENTIALS, see docs/destinations.md)")
