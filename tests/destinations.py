"""What users do to a warehouse behind the pipeline's back: delete the DuckDB file, drop a schema
or a table, restore the database from an earlier copy, load another dataset, run from a fresh
working directory. Each works on DuckDB and PostgreSQL through the pipeline's own connection."""

from __future__ import annotations

import shutil
from pathlib import Path

import dlt

from close_source.pipeline import make_pipeline


def duckdb_file(pipeline: dlt.Pipeline) -> Path | None:
    """The pipeline's DuckDB file, None on another destination."""
    if pipeline.destination.destination_name != "duckdb":
        return None
    return Path(pipeline.destination_client().config.credentials.database)  # type: ignore[attr-defined]


def execute(pipeline: dlt.Pipeline, *statements: str) -> None:
    with pipeline.sql_client() as client:
        for statement in statements:
            client.execute_sql(statement)


def dataset_tables(pipeline: dlt.Pipeline, dataset: str | None = None) -> list[str]:
    """Every table of the dataset, dlt's own included."""
    with pipeline.sql_client() as client:
        found = client.execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            dataset or pipeline.dataset_name)
    return sorted(row[0] for row in found or [])


def delete_database(pipeline: dlt.Pipeline) -> str:
    """DuckDB: the file is deleted (a new database the next run); elsewhere the dataset
    (schema) is dropped. Says which."""
    path = duckdb_file(pipeline)
    if path is None:
        return drop_dataset(pipeline)
    for found in path.parent.glob(path.name + "*"):  # the file and its WAL
        found.unlink()
    return "file deleted"


def drop_dataset(pipeline: dlt.Pipeline) -> str:
    execute(pipeline, f"DROP SCHEMA IF EXISTS {pipeline.dataset_name} CASCADE",
             f"DROP SCHEMA IF EXISTS {pipeline.dataset_name}_staging CASCADE")
    return "schema dropped"


def drop_table(pipeline: dlt.Pipeline, table: str) -> str:
    execute(pipeline, f"DROP TABLE {pipeline.dataset_name}.{table}")
    return f"table {table} dropped"


class Snapshot:
    """A copy of the destination as it is now, to be put back later (a restored backup):
    the DuckDB file, or on PostgreSQL every table of the dataset in a schema of its own."""

    def __init__(self, pipeline: dlt.Pipeline, name: str = "snapshot") -> None:
        self.name = f"{pipeline.dataset_name}_{name}"
        self.path = duckdb_file(pipeline)
        if self.path is not None:
            self.copy = self.path.with_name(f"{self.path.stem}.{name}.copy")
            shutil.copyfile(self.path, self.copy)
            return
        tables = dataset_tables(pipeline)
        execute(pipeline, f"DROP SCHEMA IF EXISTS {self.name} CASCADE",
                 f"CREATE SCHEMA {self.name}",
                 *(f"CREATE TABLE {self.name}.{table} AS TABLE "
                   f"{pipeline.dataset_name}.{table}" for table in tables))

    def restore(self, pipeline: dlt.Pipeline) -> str:
        if self.path is not None:
            for found in self.path.parent.glob(self.path.name + "*"):
                found.unlink()
            shutil.copyfile(self.copy, self.path)
            return "database restored from an earlier copy"
        execute(pipeline, f"DROP SCHEMA IF EXISTS {pipeline.dataset_name} CASCADE",
                 f"ALTER SCHEMA {self.name} RENAME TO {pipeline.dataset_name}")
        return "dataset restored from an earlier copy"


def same_pipeline_elsewhere(pipeline: dlt.Pipeline, *, dataset: str | None = None,
                            fresh: bool = False) -> dlt.Pipeline:
    """The pipeline with another dataset (its working directory shared, as `--dataset` does),
    or in a new working directory (`fresh`: the old one is deleted)."""
    if fresh:
        shutil.rmtree(pipeline.working_dir)
    return make_pipeline(pipeline.destination, dataset_name=dataset or pipeline.dataset_name,
                         pipeline_name=pipeline.pipeline_name,
                         pipelines_dir=pipeline.pipelines_dir, progress=False)
