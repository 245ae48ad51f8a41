"""Whole syncs: the connector against the fake Close into real DuckDB and PostgreSQL, through
the CLI or the Python API, including kills, locks and failures."""
