"""What a throughput of 0.9 of the floor leaves a connector that loads through dlt.

The costs no way of shaping can avoid, each measured on the same export file in the same run
as the floor (`export_load.py` runs them at its floor sizes, each in a fresh subprocess):

- `decode`: the connector's own decoder (`iter_leads`: gunzip on a thread, orjson per lead)
  over every lead, and the router that sends each object to its table; no shaping;
- `arrow`: pyarrow's own C++ conversion of the routed objects, 1,000 per table at a time
  (`Table.from_pylist`, then `flatten`), unshaped: what turning Python objects into Arrow
  costs before any of the connector's rules (child tables, typed custom columns, JSON text);
- `dlt` (and `dlt_pg`): dlt alone loading the connector's finished tables: they are read
  back from the connector's DuckDB file into Arrow IPC files first (not timed), then one
  resource per table yields them to `run_sync` with the connector's settings (timed: extract,
  normalize, load), into a new DuckDB file (or, `dlt_pg`, a new PostgreSQL database, by the
  connector's COPY), but DuckDB's memory limit at 1 GB, so that no load runs out and is
  repeated: the second half of the floor a connector that loads through dlt can reach
  (`export_load.py`: floor + dlt);
- DuckDB's schema detection over every record (the `schema` stage, `sample_size=-1`): what
  DuckDB's `read_json` must pay before reading an export whose fields it is not told (with a
  sample instead, the first field outside the sample stops the read).

Only `dlt` needs the connector's DuckDB file; the others read the export file alone.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import rss_mb


def _routed(file: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, object) for every object of the export file: the connector's decoder and
    router, and nothing else (imported now, before the caller measures its memory)."""
    from close_source.read.export import ExportRouter, exported_tables
    from close_source.read.export_file import iter_leads

    router = ExportRouter(exported_tables())
    return ((entry.table, obj) for lead in iter_leads(Path(file))
            for entry, obj in router.route(lead))


def child_decode(job: dict[str, Any]) -> dict[str, Any]:
    routed = _routed(job["file"])
    counts: dict[str, int] = {}
    start_rss = rss_mb()
    started = time.perf_counter()
    for table, _obj in routed:
        counts[table] = counts.get(table, 0) + 1
    return {"wall_s": time.perf_counter() - started, "counts": counts, "steps": {},
            "start_rss_mb": start_rss}


def child_arrow(job: dict[str, Any]) -> dict[str, Any]:
    import pyarrow as pa

    routed = _routed(job["file"])
    pending: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    converting, refused = 0.0, 0
    start_rss = rss_mb()

    def convert(table: str) -> None:
        nonlocal converting, refused
        objects = pending.pop(table)
        began = time.perf_counter()
        try:
            rows = pa.Table.from_pylist(objects).flatten().num_rows
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            rows, refused = 0, refused + 1  # mixed types: the connector's per-value path
        converting += time.perf_counter() - began
        counts[table] = counts.get(table, 0) + rows

    started = time.perf_counter()
    for table, obj in routed:
        batch = pending.setdefault(table, [])
        batch.append(obj)
        if len(batch) >= 1_000:
            convert(table)
    for table in list(pending):
        convert(table)
    return {"wall_s": time.perf_counter() - started, "counts": counts,
            "steps": {"from_pylist": converting, "batches refused": refused},
            "start_rss_mb": start_rss}


def child_dlt(job: dict[str, Any]) -> dict[str, Any]:
    import dlt
    import duckdb
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from close_source.pipeline import duckdb_destination, make_pipeline, run_sync
    from close_source.run import load_memory
    from close_source.run.environment import keep_pandas_out

    keep_pandas_out()
    # its 50,000-row batches make row groups larger than the connector's, which DuckDB's sized
    # limit did not hold (2026-12-07: out of memory, the load repeated): 1 GB, so that nothing
    # is repeated and dlt alone is, if anything, measured faster than it runs in the connector
    load_memory.FLOOR_MB = 1024
    work = Path(job["work"])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    counts = _finished_tables(duckdb, ipc, Path(job["connector_db"]), work)

    def resource(table: str) -> Any:
        def batches() -> Any:
            reader = ipc.open_file(pa.memory_map(str(work / f"{table}.arrow")))
            for i in range(reader.num_record_batches):
                yield pa.Table.from_batches([reader.get_batch(i)])
        return dlt.resource(batches, name=table, write_disposition="replace")

    @dlt.source(name="close")
    def finished() -> Any:
        return [resource(table) for table in counts]

    start_rss = rss_mb()
    destination = dlt.destinations.postgres(job["dsn"]) if job.get("dsn") else \
        duckdb_destination(str(work / "dlt.duckdb"))
    pipeline = make_pipeline(destination=destination,
                             pipeline_name="bench_dlt", pipelines_dir=str(work / "pipelines"),
                             progress=False)
    started = time.perf_counter()
    run_sync(pipeline, finished())
    wall = time.perf_counter() - started
    steps = {step.step: (step.finished_at - step.started_at).total_seconds()
             for step in pipeline.last_trace.steps
             if step.step in ("extract", "normalize", "load") and step.finished_at is not None}
    shutil.rmtree(work, ignore_errors=True)
    return {"wall_s": wall, "counts": counts, "steps": steps, "start_rss_mb": start_rss}


def _finished_tables(duckdb: Any, ipc: Any, database: Path, work: Path) -> dict[str, int]:
    """The data tables the connector loaded through dlt, written as Arrow IPC files of
    50,000-row batches; their row counts. Not the stage history tables: the connector builds
    them in SQL from tables dlt loaded."""
    from close_source.run.stage_history import STAGES

    built_in_sql = {stage.table for stage in STAGES}
    con = duckdb.connect(str(database), read_only=True)
    tables = [row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'close' "
        "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' ORDER BY 1").fetchall()
        if row[0] not in built_in_sql]
    counts: dict[str, int] = {}
    for table in tables:
        columns = [row[0] for row in con.execute(f'DESCRIBE close."{table}"').fetchall()
                   if not row[0].startswith("_dlt")]
        arrow = con.sql("SELECT " + ", ".join(f'"{c}"' for c in columns)
                        + f' FROM close."{table}"').to_arrow_table()
        with ipc.new_file(str(work / f"{table}.arrow"), arrow.schema) as writer:
            writer.write_table(arrow, max_chunksize=50_000)
        counts[table] = arrow.num_rows
    con.close()
    return counts
