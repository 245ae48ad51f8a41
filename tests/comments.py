"""The comments a dataset holds, read back from the destination's own catalog (DuckDB's
`duckdb_tables()` / `duckdb_columns()`, PostgreSQL's `obj_description` / `col_description`)."""

from __future__ import annotations

import dlt

from tests.helpers import rows

TABLE = None  # the key of a table's own comment among its columns'


def comments_of(pipeline: dlt.Pipeline) -> dict[str, dict[str | None, str | None]]:
    """Per table of the dataset: its comment (key None) and each column's."""
    dataset = pipeline.dataset_name
    if pipeline.destination.destination_name == "duckdb":
        tables = rows(pipeline, "SELECT table_name, comment FROM duckdb_tables() WHERE "
                                f"database_name = current_database() AND schema_name = '{dataset}'")
        columns = rows(pipeline, "SELECT table_name, column_name, comment FROM duckdb_columns() "
                                 "WHERE database_name = current_database() AND "
                                 f"schema_name = '{dataset}'")
    else:
        tables = rows(pipeline, "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM "
                                "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                f"WHERE n.nspname = '{dataset}' AND c.relkind = 'r'")
        columns = rows(pipeline, "SELECT c.relname, a.attname, col_description(c.oid, a.attnum) "
                                 "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                                 "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                                 f"n.nspname = '{dataset}' AND c.relkind = 'r' AND a.attnum > 0 "
                                 "AND NOT a.attisdropped")
    found: dict[str, dict[str | None, str | None]] = {table: {TABLE: comment}
                                                      for table, comment in tables}
    for table, column, comment in columns:
        found[table][column] = comment
    return found
