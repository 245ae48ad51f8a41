"""Where a command's log goes and how it looks: for a person at a terminal, for the log file of
a scheduler nobody watched, for a log shipper.

- text on a terminal: the live display (`display.py`); the stage lines (`stages.py`), warnings
  and the summary print above it, through the same console;
- text anywhere else (cron, CI, an orchestrator; also with `CI` set or `TERM=dumb`): no display,
  one line per stage, the warnings, the summary line last;
- `--quiet`: warnings, errors and the summary only;
- `--log-format json`: one JSON object per line on stderr, the summary last; nothing on stdout;
- `-v`: every detail besides (our INFO and DEBUG lines, dlt's failed load attempts).

Warnings are one line each in every format (text joins a multi-line message and leaves a
traceback out unless `-v`; JSON escapes it).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from close_source import collector, progress
from close_source.stages import STAGE_LOGGER, SUMMARY_LOGGER

TEXT, JSON = "text", "json"
FORMATS = (TEXT, JSON)
TIME = "%H:%M:%S"
OURS = "close_source"
DLT = "dlt"  # dlt's logger: its own handler, not propagated (dlt.common.logger)
ERRORS = "close_source.cli"


class _Text(logging.Formatter):
    """`12:42:38 WARNING close_source.read.lists: ...`; a stage or the summary without the
    logger: `12:42:38 extract: 19,368 rows of 43 tables in 3.8s`."""

    def __init__(self, verbose: bool) -> None:
        super().__init__(datefmt=TIME)
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, TIME)
        message = _one_line(record)
        line = f"{when} {message}" if record.name in (STAGE_LOGGER, SUMMARY_LOGGER) else \
            f"{when} {record.levelname} {record.name}: {message}"
        if self.verbose and record.exc_info:  # the one exception to one line a record
            return f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _one_line(record: logging.LogRecord) -> str:
    return " ".join(part.strip() for part in record.getMessage().splitlines() if part.strip())


class _Bare(logging.Formatter):
    """For a log that adds its own time and level: a stage or the summary as it is, anything
    else after its logger's name; one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = _one_line(record)
        return message if record.name in (STAGE_LOGGER, SUMMARY_LOGGER) else \
            f"{record.name}: {message}"


class _Json(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...the record's numbers}`."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        document.update(getattr(record, "close", None) or {})
        if record.exc_info:
            document["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


class _Lines(logging.Handler):
    """Every record of the command through one writer. dlt sets a formatter on the handler it
    finds on its logger: this one keeps its own."""

    def __init__(self, formatter: logging.Formatter, write: Callable[[str, int], None]) -> None:
        super().__init__()
        self._formatter, self._write = formatter, write

    def format(self, record: logging.LogRecord) -> str:
        return self._formatter.format(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record), record.levelno)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


class _LoaderRetries(logging.Filter):
    """dlt logs every failed attempt of a load job with its traceback (a full disk: 55 of
    them); the run's outcome is our one line, so without `-v` these stay out of stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_loader = f"{os.sep}dlt{os.sep}load{os.sep}" in record.pathname
        return not record.exc_info and not (from_loader and record.levelno >= logging.WARNING)


@dataclass
class Session:
    """The command's log: `for_people` is a terminal's (tables on stdout are welcome)."""

    json: bool
    quiet: bool
    stream: TextIO
    display: Any = None  # display.Display on a terminal
    _restore: list[Callable[[], None]] = field(default_factory=list)

    @property
    def for_people(self) -> bool:
        return self.display is not None

    def user_error(self, message: str, exit_code: int) -> None:
        """The one line a user error gets: `close-sync: ...`, or a JSON object saying it."""
        self._off_screen()
        if self.json:
            logging.getLogger(ERRORS).error("%s", message, extra={"close": {
                "exit_code": exit_code}})
        else:
            print(f"close-sync: {message}", file=self.stream, flush=True)

    def bug(self, exc: BaseException) -> None:
        """JSON only: a bug's traceback inside one object (text keeps Python's own)."""
        self._off_screen()
        logging.getLogger(ERRORS).critical("close-sync failed: %s: %s", type(exc).__name__,
                                           exc, exc_info=exc, extra={"close": {"exit_code": 1}})

    def _off_screen(self) -> None:
        if self.display is not None:
            self.display.stop()


def wants_live(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """A person at a terminal: not a CI job, not a dumb terminal."""
    ci = environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return bool(stream.isatty()) and not ci and environ.get("TERM") != "dumb"


@contextmanager
def session(log_format: str = TEXT, quiet: bool = False, verbose: bool = False,
            stream: TextIO | None = None,
            environ: Mapping[str, str] | None = None) -> Iterator[Session]:
    """The command's log set up; every logger, the display and Python's warnings put back
    after it."""
    stream = stream or sys.stderr
    verbose = verbose and not quiet
    now = Session(json=log_format == JSON, quiet=quiet, stream=stream)
    if not now.json and not quiet and wants_live(stream, os.environ if environ is None
                                                 else environ):
        from rich.console import Console

        from close_source.display import Display

        now.display = Display(Console(file=stream))
    handler = _Lines(_Json() if now.json else _Text(verbose),
                     _printer(now.display.console) if now.display else _writer(stream))
    root, dlt_logger = logging.getLogger(), logging.getLogger(DLT)
    _set(now, root, handlers=[handler], level=logging.WARNING)
    _set(now, dlt_logger, handlers=[handler])
    _set(now, logging.getLogger(OURS), level=logging.DEBUG if verbose else logging.WARNING)
    _set(now, logging.getLogger(STAGE_LOGGER), level=logging.WARNING if quiet else logging.INFO)
    _set(now, logging.getLogger(SUMMARY_LOGGER), level=logging.INFO)
    if not verbose:
        retries = _LoaderRetries()
        dlt_logger.addFilter(retries)
        now._restore.append(lambda: dlt_logger.removeFilter(retries))
    logging.captureWarnings(True)
    progress.show_on(now.display)
    collector.show_on(now.display)
    try:
        yield now
    finally:
        now._off_screen()
        progress.show_on(None)
        collector.show_on(None)
        logging.captureWarnings(False)
        for undo in reversed(now._restore):
            undo()


@contextmanager
def run_lines(to: logging.Logger) -> Iterator[None]:
    """The block's stage lines, warnings and summary to `to` (an orchestrator's own log:
    Dagster's `context.log`), whatever levels `close_source` has, and put back after: the log
    reads as a cron log does, without configuring the orchestrator's logging."""
    handler = _Lines(_Bare(), lambda text, level: to.log(level, text))
    lines = [logging.getLogger(STAGE_LOGGER), logging.getLogger(SUMMARY_LOGGER)]
    warnings = logging.getLogger(OURS)
    kept = [(logger, logger.level, logger.propagate) for logger in (*lines, warnings)]
    for logger in lines:
        logger.setLevel(logging.INFO)
        logger.propagate = False  # not twice, through the handler on `close_source`
        logger.addHandler(handler)
    warnings.setLevel(logging.WARNING)
    warnings.addHandler(handler)
    try:
        yield
    finally:
        for logger, level, propagate in kept:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _set(now: Session, logger: logging.Logger, *, handlers: list[logging.Handler] | None = None,
         level: int | None = None) -> None:
    kept_handlers, kept_level = list(logger.handlers), logger.level

    def undo() -> None:
        logger.handlers[:] = kept_handlers
        logger.setLevel(kept_level)

    now._restore.append(undo)
    if handlers is not None:
        logger.handlers[:] = handlers
    if level is not None:
        logger.setLevel(level)


def _writer(stream: TextIO) -> Callable[[str, int], None]:
    def write(text: str, level: int) -> None:
        stream.write(text + "\n")
        stream.flush()
    return write


def _printer(console: Any) -> Callable[[str, int], None]:
    """Through the display's console: above the display, never through it."""
    def write(text: str, level: int) -> None:
        style = "red" if level >= logging.ERROR else "yellow" if level >= logging.WARNING \
            else None
        console.print(text, markup=False, highlight=False, soft_wrap=True, style=style)
    return write
