"""`close-sync`: run, backup, restore, status, verify and demo.

User errors (bad key, bad config, unreachable API, unknown resource) print one line on stderr and
exit with code 2, without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import dlt

from close_source import logs
from close_source.api.client import CloseClient
from close_source.catalog import BY_TABLE, CATALOG, unknown_tables
from close_source.errors import ConfigError
from close_source.pipeline import (
    DATASET_NAME,
    PIPELINE_NAME,
    SOURCE_NAME,
    duckdb_destination,
    make_pipeline,
    table_counts,
)
from close_source.read.backup import backup_summary
from close_source.run import definition_changes
from close_source.run import state as st
from close_source.run.destination import describe as describe_destination
from close_source.run.destination import difference, read_destination
from close_source.run.environment import keep_pandas_out
from close_source.run.lock import describe, holder_of, run_lock
from close_source.run.verify import LEVELS, Report, close_client, parse_age, tables_to_heal, verify
from close_source.run.verify_report import as_json, as_text, record
from close_source.sync import sync
from close_source.user_errors import user_error_message

USER_ERROR = 2
DEMO_PIPELINE = "close_crm_demo"
DEMO_QUERY = """\
SELECT l.display_name AS lead, count(c.id) AS calls, max(c.date_created) AS last_call
FROM close.leads AS l JOIN close.calls AS c ON c.lead_id = l.id
GROUP BY 1 ORDER BY calls DESC, lead LIMIT 5"""


def main(argv: Sequence[str] | None = None) -> int:
    # dlt offers Airflow Variables as secrets when Airflow is installed, and importing Airflow
    # sets up logging anew: close-sync's lines vanished, and it cost ~3 s a run. close-sync is
    # not an Airflow task (examples/airflow calls `close_source.sync`); `true` brings it back.
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    args = _parser().parse_args(argv)
    keep_pandas_out()
    with logs.session(args.log_format, args.quiet, args.verbose) as args.log:
        try:
            return int(args.command(args) or 0)
        except Exception as exc:  # noqa: BLE001 - mapped to one line when it is the user's to fix
            message = user_error_message(exc, getattr(args, "pipeline", None))
            if message is None and not args.log.json:
                raise
            if message is None:
                args.log.bug(exc)
                return 1
            args.log.user_error(message, USER_ERROR)
            return USER_ERROR


def entry() -> NoReturn:
    """The `close-sync` command: `main`, then exit. What the run left is frozen first: the
    interpreter's last garbage collection would walk all of it (dlt, pyarrow, DuckDB: 0.3-0.5 s
    of every exit) to free memory the system takes back anyway."""
    code = main()
    gc.freeze()
    sys.exit(code)


# ---- commands -------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    tables = _resource_list(args.resources)
    pipeline = _pipeline(args)
    sync(pipeline, tables, args.full_refresh, **_source_args(args.full_load))
    _print_tables(args, pipeline)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    tables = _resource_list(args.resources)
    pipeline = _pipeline(args)
    output = Path(args.output).resolve()
    sync(pipeline, tables, command="backup", backup_dir=str(output), sync_mode="full",
         full_load="export")
    _print_tables(args, pipeline, f"{backup_summary(output)}: restore it with "
                                  f"`close-sync restore {output}`")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Every table from a backup, offline: no key, no request to Close."""
    directory = Path(args.directory).resolve()
    pipeline = _pipeline(args)
    sync(pipeline, command="restore", restore_from=str(directory), sync_mode="full")
    _print_tables(args, pipeline, f"Restored from {backup_summary(directory)}. The next "
                                  "`close-sync run` continues from the backup's time through "
                                  "the Event Log (if it is less than 29 days old).")
    return 0


def _source_args(full_load: str | None) -> dict[str, object]:
    """Only what the user said: dlt config fills in the rest (and would lose to explicit args)."""
    args: dict[str, object] = {}
    if full_load:
        args["full_load"] = full_load
    return args


def cmd_status(args: argparse.Namespace) -> int:
    """The destination's truth: what it holds and where the next run continues from; what
    this working directory remembers comes second. Nothing is printed before the destination
    answered, so a wrong credential fails as `run` does."""
    pipeline = _pipeline(args, progress=False)
    holder = holder_of(pipeline.working_dir)
    if holder is not None:
        detail = describe(holder)
        print(f"A run of pipeline {args.pipeline_name!r} is in progress"
              + (f" ({detail})" if detail else "") + ".")
    try:
        stored = read_destination(pipeline)
    except Exception as exc:
        if holder is not None and user_error_message(exc, pipeline):
            print("The destination is busy with that run: status can say more after it.")
            return 0
        raise
    local = dict(pipeline.state.get("sources", {}).get(SOURCE_NAME) or {}) or None
    claimed = stored.source_state(SOURCE_NAME)
    trace = pipeline.last_trace
    if claimed is None and local is None and trace is None:
        print(f"No sync has run yet for pipeline {args.pipeline_name!r} into "
              f"{describe_destination(pipeline)} (working dir {pipeline.working_dir}).")
        return 0
    if trace is not None:
        failed = any(step.step_exception for step in trace.steps)
        print(f"Last run from this working directory: {trace.started_at} -> "
              f"{trace.finished_at} ({'failed' if failed else 'succeeded'})")
    if (why := difference(describe_destination(pipeline), local, claimed)) is not None:
        print(f"Note: {why.replace('continuing from', 'the next run continues from')}.")
    _print_watermarks(claimed or {}, pipeline)
    for line in definition_changes.last_run_lines(pipeline, stored.tables):
        print(line)
    if pipeline.has_pending_data:
        print("A run stopped before its data was loaded: the next run loads it first.")
    held = [name for name in stored.tables if not name.startswith("_dlt")] \
        if stored.knows_tables else None
    _print_counts(table_counts(pipeline, held), pipeline.dataset_name)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Each table against Close; exit 1 when one differs or the last run is too old. Under the
    run lock: a sync must not change the tables while they are compared."""
    tables = [name.strip() for name in (args.tables or "").split(",") if name.strip()]
    if unknown := [name for name in tables if name not in BY_TABLE]:
        raise ConfigError(f"unknown table(s): {', '.join(unknown)}; known: "
                          f"{', '.join(entry.table for entry in CATALOG)}")
    max_age = parse_age(args.max_age) if args.max_age else None
    pipeline = _pipeline(args)  # --heal syncs: its stage lines and display
    where = describe_destination(pipeline)
    with close_client() as client, run_lock(pipeline):
        report = verify(pipeline, client, args.level, tables, max_age, where)
        record(pipeline, report, _same_destination(pipeline))
        before = None
        if args.heal and report.differing:
            before = report
            counted = [result.table for result in report.differing if result.compared != "ids"]
            if counted:  # the ids that differ, for the tables a count found differing
                by_ids = verify(pipeline, client, "ids", counted, max_age, where)
                found = {result.table: result for result in by_ids.differing}
                report.tables = [found.get(result.table, result) for result in report.tables]
            healing = tables_to_heal(report)
            # sync() activates the pipeline again (recording the report activated another)
            sync(pipeline, list(healing), command="heal", heal=healing)
            report = verify(pipeline, client, args.level, tables, max_age, where)
            report.healed = {table: "read in full" if ids is None else
                             f"{len(ids)} object(s) read again by id"
                             for table, ids in healing.items()}
            report.requests += before.requests
            record(pipeline, report, _same_destination(pipeline))
    _print_verify(report, before, args.json)
    return report.exit_code


def _print_verify(report: Report, before: Report | None, as_document: bool) -> None:
    if as_document:
        document = json.loads(as_json(report))
        if before is not None:
            document["before_heal"] = json.loads(as_json(before))
        print(json.dumps(document, indent=2))
        return
    if before is not None:
        print(as_text(before, only_differing=True) + "\n\nAfter healing:\n")
    print(as_text(report))


def _same_destination(pipeline: dlt.Pipeline) -> object:
    """The pipeline's destination for another pipeline: DuckDB by its file (its default file
    is named after the pipeline)."""
    if pipeline.destination.destination_type.endswith("duckdb"):
        credentials = pipeline.destination_client().config.credentials  # type: ignore[attr-defined]
        return duckdb_destination(credentials.database)
    return pipeline.destination


def cmd_demo(args: argparse.Namespace) -> int:
    import random

    from close_fake import FakeClose, generate_org, random_changes

    print(f"Starting a fake Close organisation ({args.leads} leads) on loopback...")
    org = generate_org(seed=args.seed, leads=args.leads)
    with FakeClose(org) as fake:
        # its own file, wherever DESTINATION__DUCKDB__CREDENTIALS points the real syncs
        destination = duckdb_destination(Path.cwd() / f"{DEMO_PIPELINE}.duckdb")
        pipeline = make_pipeline(destination, DATASET_NAME, DEMO_PIPELINE)
        sync(pipeline, full_refresh=True, command="demo", api_key=fake.api_key,
             base_url=fake.base_url, export_poll_interval=0.2)
        _print_counts(table_counts(pipeline), pipeline.dataset_name)
        # then what a scheduled run does: apply what changed since, from the Event Log
        org.advance(timedelta(minutes=15))
        done = random_changes(org, random.Random(args.seed), 50, step=timedelta(seconds=5))
        org.advance(timedelta(seconds=30))
        first_request = len(fake.requests)
        started = time.monotonic()
        sync(pipeline, command="demo", api_key=fake.api_key, base_url=fake.base_url)
        print(f"\n{len(done)} changes made in the fake Close (creates, updates, deletes, "
              f"merges, custom fields); the next run applied them from the Event Log in "
              f"{time.monotonic() - started:.1f}s with {len(fake.requests) - first_request} "
              "API requests.")
        _print_counts(table_counts(pipeline), pipeline.dataset_name)
        with CloseClient(fake.api_key, fake.base_url) as client:
            checked = as_text(verify(pipeline, client, "ids")).splitlines()[-2:]
        print("\nclose-sync verify --level ids (every object's id and date_updated):\n  "
              + "\n  ".join(checked))
    database = pipeline.destination_client().config.credentials.database  # type: ignore[attr-defined]
    print(f"\nExample query ({database}):\n{DEMO_QUERY}\n")
    with pipeline.sql_client() as client:
        for row in client.execute_sql(DEMO_QUERY):
            print("  ", " | ".join(str(value) for value in row))
    print(f"\nExplore it yourself:  python -c \"import duckdb; "
          f"print(duckdb.connect('{database}').sql('SELECT * FROM close.leads LIMIT 5'))\"")
    return 0


# ---- helpers --------------------------------------------------------------------------------


def _pipeline(args: argparse.Namespace, progress: bool = True) -> dlt.Pipeline:
    """The command's pipeline, kept in `args` so an error message can name its files."""
    args.pipeline = make_pipeline(args.destination, args.dataset, args.pipeline_name,
                                  progress=progress)
    return args.pipeline  # type: ignore[no-any-return]


def _resource_list(raw: str | None) -> list[str]:
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    if unknown := unknown_tables(names):
        known = ", ".join(entry.table for entry in CATALOG)
        raise ConfigError(f"unknown resource(s): {', '.join(unknown)}; known: {known}")
    return names


def _print_tables(args: argparse.Namespace, pipeline: dlt.Pipeline, then: str = "") -> None:
    """After the summary line: each table's rows for a person at a terminal, and what to do
    next (the log of a scheduler or shipper has the summary; JSON keeps stdout empty)."""
    if args.log.for_people:
        _print_counts(table_counts(pipeline), pipeline.dataset_name)
    if then and not args.log.json and not args.log.quiet:
        print(f"\n{then}" if args.log.for_people else then)


def _print_watermarks(source_state: dict[str, object], pipeline: dlt.Pipeline) -> None:
    """Each table kept current from the Event Log: how far the destination has it."""
    source_state = dict(source_state)
    st.migrate(source_state, pipeline.default_schema.tables if pipeline.default_schema_name
               else [])
    marks = st.watermarks(source_state)
    if not marks:
        print("Next run: a full load (no table has an Event Log watermark yet).")
        return
    width = max(len(table) for table in marks)
    print("\nEvent Log applied up to (Close's clock; the next run of a table reads from 5 "
          "minutes earlier):")
    for table, mark in sorted(marks.items()):
        print(f"  {table:<{width}}  {mark.newest_event.isoformat()}")


def _print_counts(counts: dict[str, int], dataset: str) -> None:
    width = max((len(name) for name in counts), default=10)
    print(f"\n{'table':<{width}}  rows   ({dataset})")
    for name, count in counts.items():
        print(f"{name:<{width}}  {count}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="close-sync", description="Copy a Close CRM organisation into a SQL warehouse.")
    _log_options(parser)  # before the command or after it: `close-sync -q run`, `run -q`
    parser.set_defaults(verbose=False, quiet=False, log_format=logs.TEXT)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        _log_options(sub)
        sub.add_argument("--destination", default=None,
                         help="duckdb (default), postgres, bigquery or any dlt destination")
        sub.add_argument("--dataset", default=DATASET_NAME, help="dataset/schema name")
        sub.add_argument("--pipeline-name", default=PIPELINE_NAME, help=argparse.SUPPRESS)

    run = commands.add_parser("run", help="sync Close into the destination")
    common(run)
    run.add_argument("--resources", help="comma-separated tables to sync (default: all)")
    run.add_argument("--full-refresh", action="store_true",
                     help="drop the selected tables and load them again from scratch")
    run.add_argument("--full-load", choices=("export", "lists"), default=None,
                     help="read leads, contacts, opportunities and activities through the "
                          "Export API (default) or their list endpoints")
    run.set_defaults(command=cmd_run)

    backup = commands.add_parser(
        "backup", help="a full load that keeps everything it read from Close in a directory: "
                       "`close-sync restore` rebuilds every table from it, offline")
    common(backup)
    backup.add_argument("--output", required=True,
                        help="the backup's directory (the export file, one file per other "
                             "table, manifest.json)")
    backup.add_argument("--resources", help="comma-separated tables to back up (default: all; "
                                            "the manifest then says the backup is partial)")
    backup.set_defaults(command=cmd_backup)

    restore = commands.add_parser(
        "restore", help="load every table of a backup into the destination, offline (no key)")
    common(restore)
    restore.add_argument("directory", help="a directory written by `close-sync backup`")
    restore.set_defaults(command=cmd_restore)

    status = commands.add_parser("status", help="last run and per-table row counts")
    common(status)
    status.set_defaults(command=cmd_status)

    check = commands.add_parser(
        "verify", help="compare every table with Close; exit 1 when one differs")
    common(check)
    check.add_argument("--level", choices=LEVELS, default="counts",
                       help="counts (default: Close's totals, seconds) or ids (every object's "
                            "id and date_updated)")
    check.add_argument("--tables", help="comma-separated tables to verify (default: all loaded)")
    check.add_argument("--heal", action="store_true",
                       help="re-read what differs through a normal sync, then verify again")
    check.add_argument("--max-age", help="fail (exit 1) when the last run read Close longer "
                                         "ago than this: 90s, 30m, 2h, 1d")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(command=cmd_verify)

    demo = commands.add_parser("demo", help="sync a fake Close organisation into DuckDB")
    demo.add_argument("--leads", type=int, default=200, help="size of the fake organisation")
    demo.add_argument("--seed", type=int, default=7, help=argparse.SUPPRESS)
    demo.set_defaults(command=cmd_demo)
    _log_options(demo)
    return parser


def _log_options(parser: argparse.ArgumentParser) -> None:
    """`logs.py`: what a terminal, a scheduler's log file and a log shipper get. Unset unless
    given (the top parser's defaults stand), so a command's parser keeps the top's values."""
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                      help="every detail: our INFO and DEBUG lines, dlt's failed load attempts")
    loud.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                      help="only warnings, errors and the summary line")
    parser.add_argument("--log-format", choices=logs.FORMATS, default=argparse.SUPPRESS,
                        help="text (default) or json: one JSON object per line on stderr, "
                             "the summary last, nothing on stdout")


if __name__ == "__main__":  # pragma: no cover
    entry()
