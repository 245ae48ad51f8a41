"""PostgreSQL is loaded by COPY from CSV files (`run/postgres_copy.py`), with the values and
types `insert_values` loaded: the same organisation, with values that are hard to write as CSV
planted in it, is synced once each way (a full load, then an incremental run), and every
table must come out equal.

NULL and the empty string stay apart, in text and in JSON columns (dlt's own COPY job made
`""` NULL); the NUL character, which PostgreSQL cannot store, is dropped as `insert_values`
drops it. Tables dlt gets as Python rows rather than Arrow keep `insert_values`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import changes as c
from close_fake import org as o
from close_fake.mutations import add_field
from close_source.catalog import CATALOG
from close_source.pipeline import LOADER_FILE_FORMATS, loader_file_format, make_pipeline
from close_source.run.postgres_copy import copies
from tests.helpers import Warehouse, rows, sync

# a CSV field's worst: its delimiter, quotes, line breaks, COPY's text-format NULL marker and
# escape character, and characters beyond ASCII
HARD = 'comma, "quoted", line\nbreak\r\nand\ttab, \\N back\\slash, Zoë 東京 🚀'
EXACT = 2**53 + 1  # a bigint a double cannot hold
TABLES = [entry.table for entry in CATALOG] + ["events"]  # the raw Event Log too
ROWS_TABLES = {"lead_merges", "events", "custom_field_changes"}  # dlt gets them as dicts
RUN_TIMES = {"custom_field_changes": "seen_at"}  # when each run saw a change: runs differ


def by_id(org: FakeOrg, collection: str, index: int, kind: str | None = None) -> dict[str, Any]:
    objects = [obj for obj in org.all(collection) if kind is None or obj.get("_type") == kind]
    return sorted(objects, key=lambda obj: obj["id"])[index]


@pytest.fixture(scope="module")
def planted() -> FakeOrg:
    """A small organisation with the hard values on its first leads, a call and an
    opportunity."""
    org = generate_org(seed=29, leads=8)
    text = add_field(org, "lead", "Plain text", "text")["id"]
    multi = add_field(org, "lead", "Many choices", "choices", choices=["a", "b"],
                      multi=True)["id"]
    number = add_field(org, "lead", "A number", "number")["id"]
    when = add_field(org, "lead", "A moment", "datetime")["id"]
    plants: list[dict[str, Any]] = [
        {"name": HARD, "description": "", f"custom.{text}": "", f"custom.{multi}": ["", HARD],
         f"custom.{number}": 0.1, f"custom.{when}": "2024-02-29T23:59:59.999999+05:30",
         "date_created": "2024-02-29T23:59:59.999999+05:30"},
        {"description": None, "url": None, f"custom.{number}": 1e20},
        {"name": "NUL\x00inside", "description": "\x00", f"custom.{text}": "\x00\x00",
         f"custom.{number}": float(2**53)},
        {"description": '""', "url": "NULL", f"custom.{text}": "\\N", f"custom.{multi}": [""],
         f"custom.{number}": -1.5e-300},
    ]
    for i, plant in enumerate(plants):
        lead = by_id(org, o.LEAD, i)
        org.put(o.LEAD, {**{k: v for k, v in lead.items() if not k.startswith("custom.")},
                         **plant})
    call = by_id(org, o.ACTIVITY, 0, "Call")
    org.put(o.ACTIVITY, {**call, "duration": "five", "note": HARD})  # a variant column
    org.put(o.OPPORTUNITY, {**by_id(org, o.OPPORTUNITY, 0), "value": EXACT, "note": ""})
    return org


def change(org: FakeOrg) -> None:
    """What the incremental run reads: a merge, edits to and from empty, a new field."""
    org.advance(timedelta(minutes=10))
    c.merge_leads(org, by_id(org, o.LEAD, 6)["id"], by_id(org, o.LEAD, 7)["id"])
    c.update(org, o.LEAD, by_id(org, o.LEAD, 1)["id"], {"description": ""})
    c.update(org, o.LEAD, by_id(org, o.LEAD, 4)["id"], {"description": None, "name": HARD})
    add_field(org, "lead", "Added later", "text")
    org.advance(timedelta(seconds=30))


@dataclass
class Synced:
    by_copy: dlt.Pipeline
    by_insert: dlt.Pipeline
    formats: dict[str, dict[str, set[str]]]  # run -> table -> file formats it was loaded from


@pytest.fixture(scope="module")
def loaded(planted: FakeOrg, postgres_server, tmp_path_factory) -> Iterator[Synced]:
    """The organisation synced by COPY, and by insert_values (as before) into another
    database; a full load, then an incremental run after `change`."""
    warehouse = Warehouse("postgres", postgres_server)
    formats: dict[str, dict[str, set[str]]] = {}

    def both(run: str, pipelines: tuple[dlt.Pipeline | None, dlt.Pipeline | None]
             ) -> tuple[dlt.Pipeline, dlt.Pipeline]:
        synced = []
        for way, pipeline in zip(("copy", "insert"), pipelines, strict=True):
            with pytest.MonkeyPatch.context() as patch:
                if way == "insert":
                    patch.setitem(LOADER_FILE_FORMATS, "postgres", "insert_values")
                synced.append(sync(fake, tmp_path_factory.mktemp(way), pipeline=pipeline,
                                   warehouse=warehouse, resources=TABLES))
            formats[f"{run} by {way}"] = loaded_files(synced[-1])
        return synced[0], synced[1]

    with FakeClose(planted) as fake:
        pipelines = both("full", (None, None))
        change(planted)
        by_copy, by_insert = both("incremental", pipelines)
    yield Synced(by_copy, by_insert, formats)


def loaded_files(pipeline: dlt.Pipeline) -> dict[str, set[str]]:
    """Data table -> the file formats its rows were loaded from in the pipeline's last run
    (not the SQL jobs that follow them)."""
    data_tables = set(pipeline.default_schema.data_table_names())
    formats: dict[str, set[str]] = {}
    for package in pipeline.last_trace.last_load_info.load_packages:
        for job in package.jobs["completed_jobs"]:
            info = job.job_file_info
            if info.file_format != "sql" and info.table_name in data_tables:
                formats.setdefault(info.table_name, set()).add(info.file_format)
            if info.file_format == "csv" and Path(job.file_path).exists():
                assert Path(job.file_path).read_bytes()[:2] != b"\x1f\x8b", "gzipped"
    return formats


def test_tables_of_arrow_batches_are_loaded_by_copy(loaded):
    full, incremental = loaded.formats["full by copy"], loaded.formats["incremental by copy"]
    assert {"leads", "calls", "contacts__emails", "users"} <= set(full)
    assert {"lead_merges", "events", "custom_field_changes", "leads"} <= set(incremental)
    for run in (full, incremental):
        assert {table: run[table] for table in run if table not in ROWS_TABLES} == \
            {table: {"csv"} for table in run if table not in ROWS_TABLES}
        assert {table: run[table] for table in run if table in ROWS_TABLES} == \
            {table: {"insert_values"} for table in run if table in ROWS_TABLES}
    for run in ("full by insert", "incremental by insert"):
        assert set().union(*loaded.formats[run].values()) == {"insert_values"}


def column_types(pipeline: dlt.Pipeline) -> list[tuple[str, str, str]]:
    return rows(pipeline, "SELECT table_name, column_name, data_type FROM "
                          "information_schema.columns WHERE table_schema = 'close' "
                          "ORDER BY 1, 2")


def test_tables_and_column_types_are_those_insert_values_made(loaded):
    assert column_types(loaded.by_copy) == column_types(loaded.by_insert)
    schema = loaded.by_copy.default_schema
    json_columns = {(table, column) for table in schema.data_table_names()
                    for column, spec in schema.get_table_columns(table).items()
                    if spec.get("data_type") == "json"}
    assert ("leads", "contact_ids") in json_columns and ("events", "data") in json_columns
    types = {(table, column): kind for table, column, kind in column_types(loaded.by_copy)}
    assert {types[key] for key in json_columns} == {"jsonb"}


def table_rows(pipeline: dlt.Pipeline, table: str) -> list[tuple[Any, ...]]:
    """Every row, in order, without dlt's load id (each load has its own) and the run's own
    times."""
    columns = [name for name, in rows(pipeline, (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'close' "
        f"AND table_name = '{table}' AND column_name NOT LIKE '\\_dlt\\_%' ORDER BY 1"))
        if name != RUN_TIMES.get(table)]
    listed = ", ".join(f'"{name}"' for name in columns)
    return rows(pipeline, f"SELECT {listed} FROM close.{table} ORDER BY {listed}")


def test_every_table_holds_the_rows_insert_values_loaded(loaded):
    tables = sorted(loaded.by_copy.default_schema.data_table_names())
    assert tables == sorted(loaded.by_insert.default_schema.data_table_names())
    assert {"lead_merges", "events", "custom_field_changes", "field_changes"} <= set(tables)
    differing = {table: [row for row in table_rows(loaded.by_copy, table)
                         if row not in table_rows(loaded.by_insert, table)][:3]
                 for table in tables
                 if table_rows(loaded.by_copy, table) != table_rows(loaded.by_insert, table)}
    assert differing == {}


def lead_values(pipeline: dlt.Pipeline, org: FakeOrg, lead_index: int,
                *columns: str) -> tuple[Any, ...]:
    lead_id = by_id(org, o.LEAD, lead_index)["id"]
    return rows(pipeline, f"SELECT {', '.join(columns)} FROM close.leads "
                          f"WHERE id = '{lead_id}'")[0]


def custom_column(pipeline: dlt.Pipeline, name: str) -> str:
    return rows(pipeline, "SELECT column_name FROM close.custom_fields "
                          f"WHERE name = '{name}'")[0][0]


def test_empty_strings_stay_apart_from_null_in_text_and_json_columns(planted, loaded):
    by_copy = loaded.by_copy
    text = custom_column(by_copy, "Plain text")
    multi = custom_column(by_copy, "Many choices")
    assert lead_values(by_copy, planted, 0, "description", text, multi) == ("", "", ["", HARD])
    assert lead_values(by_copy, planted, 1, "description", "url", text, multi) == \
        ("", None, None, None)  # its description made empty by the incremental run
    assert lead_values(by_copy, planted, 3, "description", "url", text, multi) == \
        ('""', "NULL", "\\N", [""])
    assert lead_values(by_copy, planted, 4, "description") == (None,)  # made so incrementally
    assert lead_values(by_copy, planted, 0, f"jsonb_typeof({multi})") == ("array",)


def test_hard_text_lands_whole_and_nul_is_dropped(planted, loaded):
    by_copy = loaded.by_copy
    text = custom_column(by_copy, "Plain text")
    assert lead_values(by_copy, planted, 0, "name") == (HARD,)
    assert lead_values(by_copy, planted, 4, "name") == (HARD,)  # by the incremental run
    assert lead_values(by_copy, planted, 2, "name", "description", text) == \
        ("NULinside", "", "")
    call = by_id(planted, o.ACTIVITY, 0, "Call")
    assert rows(by_copy, "SELECT duration, duration__v_text, note FROM close.calls "
                         f"WHERE id = '{call['id']}'") == [(None, "five", HARD)]


def test_numbers_and_moments_keep_their_precision(planted, loaded):
    by_copy = loaded.by_copy
    number, when = custom_column(by_copy, "A number"), custom_column(by_copy, "A moment")
    moment = datetime(2024, 2, 29, 18, 29, 59, 999999, tzinfo=UTC)
    assert lead_values(by_copy, planted, 0, number, when, "date_created") == \
        (0.1, moment, moment)
    assert [lead_values(by_copy, planted, i, number)[0] for i in (1, 2, 3)] == \
        [1e20, float(2**53), -1.5e-300]
    opportunity = by_id(planted, o.OPPORTUNITY, 0)
    assert rows(by_copy, "SELECT value, note FROM close.opportunities "
                         f"WHERE id = '{opportunity['id']}'") == [(EXACT, "")]


def test_a_working_directory_dlts_own_postgres_loaded_continues_without_a_warning(
        postgres_server, tmp_path):
    """Its state names dlt's destination type; the pipeline takes ours, and dlt's warning that
    the state's type "will be ignored" says nothing a user can act on."""
    dsn = postgres_server.new_database()
    earlier = dlt.pipeline("upgraded", destination=dlt.destinations.postgres(dsn),
                           pipelines_dir=str(tmp_path), dataset_name="close")
    earlier.run([{"a": 1}], table_name="t")
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("dlt").addHandler(handler)
    try:
        pipeline = make_pipeline(dlt.destinations.postgres(dsn), pipeline_name="upgraded",
                                 pipelines_dir=str(tmp_path), progress=False)
    finally:
        logging.getLogger("dlt").removeHandler(handler)
    assert copies(pipeline.destination) and loader_file_format(pipeline) == "csv"
    assert warnings == []
