"""BigQuery, verified offline: BigQuery is unreachable from here, so the run stops after dlt's
normalize step and the load package is checked instead of a dataset.

Verified: the loader file format (jsonl), every column's BigQuery type as dlt will create it,
identifiers, and the values in the files BigQuery would load. Not verified (needs a real
project): the load jobs themselves, BigQuery's parsing of the files, merge SQL, credentials.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.configuration.specs import GcpServiceAccountCredentials
from dlt.common.schema import Schema

from close_fake import FakeClose, FakeOrg, generate_org
from close_source.pipeline import loader_file_format, make_pipeline
from close_source.shape.descriptions import table_description
from close_source.source import close_source
from close_source.timestamps import to_utc
from tests.oracle import custom_definitions, expected_objects, plain_column, typed

BIGQUERY_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,299}$")


@pytest.fixture(scope="module")
def normalized(tmp_path_factory) -> Iterator[tuple[FakeOrg, dlt.Pipeline, dict[str, list]]]:
    org = generate_org(seed=31, leads=10)
    workdir: Path = tmp_path_factory.mktemp("bigquery")
    pipeline = make_pipeline(dlt.destinations.bigquery(), pipeline_name="bq_offline",
                             pipelines_dir=str(workdir), progress=False)
    pipeline.config.restore_from_destination = False  # nothing to read the state from here
    with FakeClose(org) as fake:
        source = close_source(api_key=fake.api_key, base_url=fake.base_url,
                              export_poll_interval=0.01)
        pipeline.extract(source, loader_file_format=loader_file_format(pipeline))
    pipeline.normalize()
    (load_id,) = pipeline.list_normalized_load_packages()
    files: dict[str, list[dict[str, Any]]] = {}
    for job in pipeline.get_load_package_info(load_id).jobs["new_jobs"]:
        path = Path(job.file_path)
        assert path.name.endswith(".jsonl.gz") or path.name.endswith(".jsonl"), path.name
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            table = job.job_file_info.table_name
            files.setdefault(table, []).extend(json.loads(line) for line in handle)
    yield org, pipeline, files


def bigquery_types(pipeline: dlt.Pipeline, table: str) -> dict[str, str]:
    capabilities = pipeline.destination.capabilities()
    mapper = capabilities.get_type_mapper()
    schema_table = pipeline.default_schema.get_table(table)
    return {name: mapper.to_destination_type(column, schema_table)
            for name, column in schema_table["columns"].items()}


def test_jsonl_is_the_loader_file_format(normalized):
    _, pipeline, files = normalized
    assert loader_file_format(pipeline) == "jsonl"
    assert {"leads", "contacts", "custom_activities", "custom_fields", "notes"} <= set(files)


def test_column_types_as_bigquery_will_create_them(normalized):
    _, pipeline, _ = normalized
    leads = bigquery_types(pipeline, "leads")
    assert leads["date_created"] == "TIMESTAMP"
    assert leads["custom_employees"] == "FLOAT64"
    assert leads["custom_trial_ends"] == "DATE"
    assert leads["custom_next_demo"] == "TIMESTAMP"
    assert leads["custom_industry"] == "STRING"
    # JSON travels as text: STRING columns with JSON text (see arrow_tables.json_data_type)
    assert leads["custom_products"] == "STRING"
    assert leads["custom_unmapped"] == "STRING"
    assert leads["contact_ids"] == "STRING"
    every_type = {t for table in pipeline.default_schema.data_table_names()
                  for t in bigquery_types(pipeline, table).values()}
    assert "JSON" not in every_type


def test_identifiers_are_valid_bigquery_names(normalized):
    _, pipeline, _ = normalized
    schema = pipeline.default_schema
    for table in schema.data_table_names():
        assert BIGQUERY_NAME.match(table), table
        for column in schema.get_table_columns(table):
            assert BIGQUERY_NAME.match(column), (table, column)


def test_files_hold_close_values_typed_for_bigquery(normalized):
    org, _, files = normalized
    by_id = {row["id"]: row for row in files["leads"]}
    definitions = {fid: d for (kind, fid), d in custom_definitions(org).items() if kind == "lead"}
    checked = 0
    for lead_id, lead in expected_objects(org, "leads").items():
        row = by_id[lead_id]
        assert to_utc(row["date_created"]) == to_utc(lead["date_created"])
        for fid, definition in definitions.items():
            value, stored = lead.get(f"custom.{fid}"), row.get(plain_column(definition["name"]))
            if value is None:
                assert stored is None
                continue
            expected = typed(definition, value)
            if definition.get("accepts_multiple_values"):
                stored = json.loads(stored)  # JSON text, BigQuery's JSON functions read it
            elif definition["type"] == "date":
                stored = date.fromisoformat(stored)
            elif definition["type"] == "datetime":
                stored = to_utc(stored)
                assert row[plain_column(definition["name"])].endswith("+00:00")
            assert stored == expected, (lead_id, definition["name"])
            checked += 1
    assert checked > 30


def test_the_load_package_carries_every_description(normalized):
    """dlt writes a column's `description` hint and a table's x-bigquery-table-description into
    BigQuery's DDL: the package's schema holds them for every table and column (dlt's own
    columns aside), a custom column naming its field."""
    org, pipeline, _ = normalized
    (load_id,) = pipeline.list_normalized_load_packages()
    package = pipeline.get_load_package_info(load_id)
    schema = Schema.from_dict(json.loads(
        (Path(package.package_path) / "schema.json").read_text()))
    tables = schema.data_table_names()
    assert {"leads", "leads__addresses", "custom_fields", "custom_field_changes",
            "field_changes"} <= set(tables)
    for table in tables:
        hints = schema.get_table(table)
        assert hints["x-bigquery-table-description"] == hints["description"] == \
            table_description(table), table
        undescribed = [name for name, column in hints["columns"].items()
                       if not name.startswith("_dlt") and not column.get("description")]
        assert undescribed == [], table
    leads = schema.get_table_columns("leads")
    assert leads["date_created"]["description"] == "When the object was created in Close (UTC)."
    for (kind, field_id), definition in custom_definitions(org).items():
        if kind == "lead":
            assert leads[plain_column(definition["name"])]["description"].startswith(
                f'Close custom field "{definition["name"]}" ({field_id}), type '), definition


def test_dlt_writes_the_descriptions_into_bigquerys_create_table(normalized):
    """The DDL dlt's BigQuery client makes of the package's schema (a client with made-up
    credentials: nothing is sent): each column's description and the table's, quotes escaped."""
    _, pipeline, _ = normalized
    credentials = GcpServiceAccountCredentials()
    credentials.project_id, credentials.client_email, credentials.private_key = \
        "project", "offline@example.com", "not a key"
    factory = dlt.destinations.bigquery(credentials=credentials)
    config = factory.spec(credentials=credentials)._bind_dataset_name(dataset_name="close")
    client = factory.client(pipeline.default_schema, config)
    table = client.prepare_load_table("leads")
    (create,) = client._get_table_update_sql("leads", list(table["columns"].values()), False)
    assert "`status_label` STRING   OPTIONS (description='Label of the lead\\'s status" in create
    assert "`custom_industry` STRING   OPTIONS (description='Close custom field \"Industry\"" \
        in create
    assert create.endswith(f"OPTIONS (description='{table_description('leads')}')")
