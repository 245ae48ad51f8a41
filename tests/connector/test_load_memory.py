"""What bounds the load step's memory on destinations other than DuckDB: PostgreSQL gets INSERT
statements of half a MB unless it was given its own maximum query length."""

from __future__ import annotations

import dlt

from close_source.run.load_memory import STATEMENT_BYTES, bound_statements


def _pipeline(tmp_path, destination) -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name="bounded", destination=destination,
                        pipelines_dir=str(tmp_path))


def test_postgres_statements_are_bounded(tmp_path):
    pipeline = _pipeline(tmp_path, dlt.destinations.postgres("postgresql://u:p@localhost/db"))
    assert pipeline.destination.capabilities().max_query_length == 32 * 2**20  # dlt's own
    bound_statements(pipeline)
    assert pipeline.destination.capabilities().max_query_length == STATEMENT_BYTES == 2**20


def test_a_length_the_user_chose_is_kept(tmp_path):
    pipeline = _pipeline(tmp_path, dlt.destinations.postgres(
        "postgresql://u:p@localhost/db", max_query_length=8 * 2**20))
    bound_statements(pipeline)
    assert pipeline.destination.capabilities().max_query_length == 8 * 2**20


def test_other_destinations_keep_their_settings(tmp_path):
    pipeline = _pipeline(tmp_path, dlt.destinations.duckdb(str(tmp_path / "x.duckdb")))
    before = pipeline.destination.capabilities().max_query_length
    bound_statements(pipeline)
    assert pipeline.destination.capabilities().max_query_length == before
