"""A command's log set up by `logs.session`: which records a scheduler's log keeps, one line
each, as text or JSON, dlt's own included; everything put back afterwards."""

from __future__ import annotations

import io
import json
import logging
import os
import pty

import pytest
from dlt.common import logger as dlt_logger

from close_source.logs import run_lines, session, wants_live
from close_source.stages import stage

DETAIL = logging.getLogger("close_source.read.export")
SUMMARY = logging.getLogger("close_source.summary")


def _log_a_run() -> None:
    DETAIL.info("export expo_1 created; waiting for Close to build it")  # a detail
    stage("extract", "12 rows of 2 tables in 0.1s", rows=12)
    DETAIL.warning("the export failed (%s);\nloading leads from list endpoints instead",
                   "status 'error'")
    SUMMARY.info("summary: run ok", extra={"close": {"rows_written": 12}})


@pytest.mark.parametrize(("options", "kept"), [
    ({}, ["extract", "WARNING", "summary"]),
    ({"quiet": True}, ["WARNING", "summary"]),
    ({"verbose": True}, ["INFO", "extract", "WARNING", "summary"]),
])
def test_without_a_terminal_a_line_per_stage_warning_and_summary(options, kept):
    out = io.StringIO()
    with session(stream=out, environ={}, **options) as log:
        _log_a_run()
    assert not log.for_people
    lines = out.getvalue().splitlines()
    assert [line.split()[1].rstrip(":") for line in lines] == kept, lines
    warning = next(line for line in lines if " WARNING " in line)
    assert warning.endswith("the export failed (status 'error'); loading leads from list "
                            "endpoints instead")  # one line
    assert lines[-1].endswith(" summary: run ok")


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("ours", [logging.NOTSET, logging.INFO, logging.DEBUG])
def test_an_orchestrators_log_gets_the_stages_warnings_and_summary_once(ours):
    """Dagster's `context.log`: the cron log's lines, whatever level `close_source` was given
    (Dagster's `python_log_level` sets it on the loggers it manages), each once."""
    orchestrator, kept = logging.getLogger("tests.orchestrator"), _Kept()
    orchestrator.addHandler(kept)
    orchestrator.setLevel(logging.DEBUG)
    managed = _Kept()  # as Dagster's handler on a `close_source` it manages
    logging.getLogger("close_source").addHandler(managed)
    logging.getLogger("close_source").setLevel(ours)
    try:
        with run_lines(orchestrator):
            _log_a_run()
    finally:
        orchestrator.removeHandler(kept)
        logging.getLogger("close_source").removeHandler(managed)
        logging.getLogger("close_source").setLevel(logging.NOTSET)
    assert [(r.levelno, r.getMessage()) for r in kept.records] == [
        (logging.INFO, "extract: 12 rows of 2 tables in 0.1s"),
        (logging.WARNING, "close_source.read.export: the export failed (status 'error'); "
                          "loading leads from list endpoints instead"),
        (logging.INFO, "summary: run ok")]
    assert "summary: run ok" not in [r.getMessage() for r in managed.records]  # not twice
    assert logging.getLogger("close_source.stage").handlers == []  # put back


def test_json_is_one_object_per_record_with_the_numbers_dlt_included(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(dlt_logger, "LOGGER", dlt_logger.LOGGER)  # put back after the test
    with session("json", stream=out, environ={}):
        _log_a_run()
        # dlt makes its logger when it reads its runtime config: it takes the handler it finds
        dlt_logger.LOGGER = dlt_logger._create_logger("dlt", "WARNING", "{message}", "p", {})
        dlt_logger.warning("a dlt warning\nover two lines")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["level"], r["logger"]) for r in records] == [
        ("info", "close_source.stage"), ("warning", "close_source.read.export"),
        ("info", "close_source.summary"), ("warning", "dlt")]
    assert records[0]["stage"] == "extract" and records[0]["rows"] == 12
    assert records[2]["rows_written"] == 12
    assert records[3]["msg"] == "a dlt warning\nover two lines"


def test_a_user_error_is_one_line_or_one_object():
    for log_format, expected in (("text", "close-sync: no key\n"), ("json", None)):
        out = io.StringIO()
        with session(log_format, stream=out, environ={}) as log:
            log.user_error("no key", 2)
        if expected:
            assert out.getvalue() == expected
        else:
            (line,) = out.getvalue().splitlines()
            assert {k: v for k, v in json.loads(line).items() if k != "ts"} == {
                "level": "error", "logger": "close_source.cli", "msg": "no key", "exit_code": 2}


def test_everything_is_put_back_after_the_command():
    def snapshot() -> list[object]:
        return [(name, logger.level, list(logger.handlers), list(logger.filters))
                for name, logger in (("", logging.getLogger()), ("dlt", logging.getLogger("dlt")),
                                     ("ours", logging.getLogger("close_source")),
                                     ("stage", logging.getLogger("close_source.stage")))]

    before = snapshot()
    with session("json", quiet=True, stream=io.StringIO(), environ={}):
        assert snapshot() != before
    assert snapshot() == before


def test_a_terminal_gets_the_display_unless_ci_or_a_dumb_one():
    primary, secondary = pty.openpty()
    try:
        with os.fdopen(secondary, "w", closefd=False) as terminal:
            assert wants_live(terminal, {"TERM": "xterm"})
            assert not wants_live(terminal, {"TERM": "xterm", "CI": "true"})
            assert not wants_live(terminal, {"TERM": "dumb"})
            assert wants_live(terminal, {"CI": "false"})
            with session(stream=terminal, environ={}) as log:
                assert log.for_people
            with session(stream=terminal, environ={}, quiet=True) as log:
                assert not log.for_people
        assert not wants_live(io.StringIO(), {})
    finally:
        os.close(primary)
        os.close(secondary)
