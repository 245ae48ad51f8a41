"""History survives `--full-refresh`: it is the one thing a reload cannot bring back.

dlt's refresh (`drop_resources`) drops every table the extracted resources wrote before, by
the `resource` its schema records for the table. The history tables (`field_changes`,
`custom_field_changes`, each `<table>_history`) are written by the same resources as the
tables they follow; before a refresh they are recorded under a resource no run extracts, so
dlt keeps them (the run's extraction records their resource again). The reload then writes
each unchanged object's version under the key it has, which adds nothing
(`shape/versions.py`).
"""

from __future__ import annotations

import dlt

from close_source.catalog import (
    CUSTOM_FIELD_CHANGES_TABLE,
    FIELD_CHANGES_TABLE,
    HISTORY_TABLES,
    history_table,
)

KEPT = frozenset({FIELD_CHANGES_TABLE, CUSTOM_FIELD_CHANGES_TABLE,
                  *(history_table(table) for table in HISTORY_TABLES)})
KEPT_RESOURCE = "close_history_kept_on_refresh"  # no resource of the source has this name


def on_refresh(pipeline: dlt.Pipeline) -> None:
    if not pipeline.default_schema_name:
        return
    schema = pipeline.default_schema
    tables = [table for name, table in schema.tables.items() if name in KEPT]
    if not tables:
        return
    for table in tables:
        table["resource"] = KEPT_RESOURCE
    pipeline.schemas.save_schema(schema)
