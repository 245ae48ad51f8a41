"""Dagster assets for the Close tables: one per table, materialized through `close-sync run`'s
run path (`close_source.sync`). Needs the `dagster` extra: `pip install -e '.[dagster]'` in
the clone.

    import dagster as dg
    from close_source.dagster import close_assets

    defs = dg.Definitions(assets=[close_assets()])   # the key from SOURCES__CLOSE__API_KEY

The assets come from the catalog: defining them sends no request and opens no warehouse (Dagster
loads definitions often). Materializing a selection is one sync of exactly those tables, each
continuing from its own Event Log watermark: the run lock, finishing a load an earlier run left
unfinished and atomic replaces included. dagster-dlt's `DagsterDltResource.run` is not used: it
drops the pipeline's working directory (the run lock, an unfinished load) and runs a bare
`pipeline.run`.
"""

# no `from __future__ import annotations`: Dagster reads the `context` annotation as a type
from collections.abc import Iterator, Sequence
from typing import Any

try:
    import dagster as dg
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("close_source.dagster needs Dagster: install close-dlt with its "
                      "dagster extra (pip install -e '.[dagster]' in the clone)") \
        from exc

import dlt

from close_source.catalog import BY_TABLE, CATALOG, Entry, history_table, owned_tables
from close_source.logs import run_lines
from close_source.pipeline import DATASET_NAME, PIPELINE_NAME, make_pipeline, table_counts
from close_source.sync import rows_loaded, sync
from close_source.user_errors import user_error_message

# Catalog order: a table's `belongs_to` comes before it, so results are yielded upstream first
# (Dagster fails a multi-asset that yields an asset before one it depends on).
ORDER = tuple(entry.table for entry in CATALOG)


def close_assets(
    *,
    destination: Any = None,
    dataset_name: str = DATASET_NAME,
    pipeline_name: str = PIPELINE_NAME,
    pipelines_dir: str | None = None,
    key_prefix: Sequence[str] = ("close",),
    group_name: str = "close",
    name: str = "close_sync",
    pool: str | None = "close_sync",
    **source_args: Any,
) -> dg.AssetsDefinition:
    """One asset per Close table (`close/leads`, ...), in one group; a table whose rows belong to
    a lead depends on `close/leads`. `destination`, `dataset_name`, `pipeline_name` and
    `pipelines_dir` are `make_pipeline`'s (the working directory must persist between runs: the
    run lock and an unfinished load live there); `source_args` are `close_source`'s, the rest
    comes from dlt's config as for `close-sync`. `pool`: Dagster runs of one pipeline wait for
    each other when the pool has one slot (a second run would stop at the run lock)."""
    kind = _destination_kind(destination)
    specs = [_spec(entry, tuple(key_prefix), group_name, kind, dataset_name) for entry in CATALOG]

    @dg.multi_asset(specs=specs, can_subset=True, name=name, pool=pool)
    def close_sync(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        selected = {key.path[-1] for key in context.selected_asset_keys}
        tables = [table for table in ORDER if table in selected]
        pipeline = None
        try:
            pipeline = make_pipeline(destination, dataset_name, pipeline_name, pipelines_dir)
            with run_lines(context.log):
                sync(pipeline, tables, **source_args)
        except Exception as exc:
            if (message := user_error_message(exc, pipeline)) is None:
                raise
            raise dg.Failure(description=message) from None  # one line, as `close-sync` says it
        loaded = rows_loaded(pipeline)
        yield from _results(pipeline, tables, loaded, tuple(key_prefix))

    return close_sync


def asset_key(table: str, key_prefix: Sequence[str] = ("close",)) -> dg.AssetKey:
    return dg.AssetKey([*key_prefix, table])


def _spec(entry: Entry, key_prefix: tuple[str, ...], group_name: str, kind: str,
          dataset_name: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        asset_key(entry.table, key_prefix),
        deps=[asset_key(entry.belongs_to, key_prefix)] if entry.belongs_to else [],
        group_name=group_name, description=entry.doc, kinds={"dlt", kind},
        metadata={"dagster/table_name": f"{dataset_name}.{entry.table}",
                  "tables": list(_tables_of(entry))},
    )


def _tables_of(entry: Entry) -> tuple[str, ...]:
    """The dataset tables selecting the entry may write: its own, its children, the tables
    written with it and its versions (`history = [...]`)."""
    return (*owned_tables(entry), *entry.written_with, history_table(entry.table))


def _results(pipeline: dlt.Pipeline, tables: list[str], loaded: dict[str, int],
             key_prefix: tuple[str, ...]) -> Iterator[dg.MaterializeResult]:
    """One result per table synced, in catalog order, with what Dagster shows of a table."""
    counts = table_counts(pipeline, tables)
    schema = pipeline.default_schema
    for table in tables:
        metadata: dict[str, Any] = {  # Dagster's own keys for tables, and this run's rows
            "dagster/table_name": f"{pipeline.dataset_name}.{table}",
            "dagster/row_count": counts.get(table),
            "dagster/column_schema": dg.TableSchema(columns=[
                dg.TableColumn(column, str(hints.get("data_type", "unknown")))
                for column, hints in schema.get_table_columns(table).items()
            ]) if table in schema.tables else None,
            "rows_loaded": sum(loaded.get(name, 0) for name in _tables_of(BY_TABLE[table])),
        }
        yield dg.MaterializeResult(asset_key=asset_key(table, key_prefix),
                                   metadata={k: v for k, v in metadata.items() if v is not None})


def _destination_kind(destination: Any) -> str:
    """The destination's name as Dagster shows it among an asset's kinds (`duckdb`)."""
    if destination is None or destination == "":
        return "duckdb"
    if isinstance(destination, str):
        return destination
    return str(destination.destination_type).rsplit(".", 1)[-1]
