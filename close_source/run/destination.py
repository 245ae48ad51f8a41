"""The destination is the truth about what has been loaded; the state belongs to one destination
and dataset.

The pipeline's working directory keeps dlt's copy of the state, but a user may delete or move
the DuckDB file, point the pipeline at another dataset, file or database, drop a table or a
schema, restore a database from an earlier copy, or run from a fresh working directory (a CI
runner, a container). So, before planning, a run (`check_destination`):

1. restores the state from the destination when the working directory has none (dlt's own
   `sync_destination`, which also brings the schema back);
2. reads the state dlt committed with the dataset's newest complete load, and which tables
   the dataset holds (`read/warehouse.read_stored`);
3. finishes a load package an earlier run left only when it was made for exactly that state
   (the run ids kept in the state) and no table that state says was loaded is gone; otherwise
   the package is dropped, and its changes are read again from the destination's watermarks;
4. makes the working directory's source state the destination's: none when the destination
   holds none (every table is loaded in full), the destination's when it is older (a restored
   backup) or from elsewhere (another dataset, another machine). Two datasets therefore never
   share watermarks: each run continues from the state its own dataset holds;
5. reads in full every selected table that state says was loaded but the destination lacks,
   and makes dlt compare its schema with the destination again (it skips that when the
   schema's version is already stored there), so the tables are created again.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dlt

from close_source.catalog import (
    BY_TABLE,
    CATALOG,
    EVENTS_TABLE,
    FIELD_CHANGES_TABLE,
    HISTORY_TABLES,
    LEAD_MERGES_TABLE,
    history_table,
    owned_tables,
)
from close_source.read.warehouse import Stored, Warehouse, read_stored
from close_source.run import resume
from close_source.run import state as st
from close_source.running import running_pipeline
from close_source.stages import note

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunIds:
    """This run's id and the id of the run whose state it continues from."""

    this: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    parent: str | None = None


@dataclass(frozen=True)
class Checked:
    """What the run plans with: the destination as it is."""

    warehouse: Warehouse = field(default_factory=Warehouse)
    # tables the state says were loaded but the destination lacks -> why they are read in full
    missing: Mapping[str, str] = field(default_factory=dict)
    run: RunIds = field(default_factory=RunIds)


def check_destination(selected: Iterable[str], history: Iterable[str] = (),
                      dropped: Collection[str] = ()) -> Checked:
    """Make the active pipeline's source state the one its destination holds; nothing to do
    outside a pipeline (unit tests) or without a destination. `dropped`: child tables no run
    writes (their lists are excluded)."""
    pipeline = running_pipeline()
    if pipeline is None or pipeline.destination is None:  # nothing was loaded
        return Checked()
    if not pipeline.config.restore_from_destination:  # dlt's own switch: trust the local state
        log.debug("restore_from_destination is off: the working directory's state is trusted")
        return Checked(Warehouse.of_pipeline(pipeline, Stored()),
                       run=RunIds(parent=st.run_id(_local_source_state(pipeline))))
    selected = list(selected)
    _restore_into_new_working_dir(pipeline)
    stored = read_destination(pipeline)
    destination = describe(pipeline)
    claimed = stored.source_state(st.SOURCE)
    local = _local_source_state(pipeline)
    gone = _gone_tables(claimed, stored, selected, dropped)
    if pipeline.has_pending_data:
        if st.parent_run(local) == st.run_id(claimed) and not gone:
            claimed = local  # the package is loaded first: its state is the destination's next
        else:
            resume.discard_pending(pipeline)
            log.warning("an earlier run's data that was never loaded was made for another "
                        "state of %s (%s): dropped; its changes are read again",
                        destination, "tables are gone" if gone else "replaced or restored")
    if (why := difference(destination, local, claimed)) is not None:
        log.log(logging.INFO if local is None else logging.WARNING, "%s", why)
        _install(pipeline, claimed)
    _recreate_missing(pipeline, stored, selected, gone, list(history))
    missing = {table: f"not in the destination ({destination}); loading it in full"
               for table in gone}
    return Checked(Warehouse.of_pipeline(pipeline, stored), missing,
                   RunIds(parent=st.run_id(claimed)))


def describe(pipeline: dlt.Pipeline) -> str:
    """`duckdb /data/close_crm.duckdb, dataset close`: where the run loads, no secret."""
    where = pipeline.destination.destination_name
    try:
        database = pipeline.destination_client().config.credentials.database  # type: ignore[attr-defined]
        if isinstance(database, str) and where == "duckdb":
            where = f"duckdb {database}"
    except Exception:  # noqa: BLE001 - naming the file is a courtesy
        pass
    return f"{where}, dataset {pipeline.dataset_name}"


def _restore_into_new_working_dir(pipeline: dlt.Pipeline) -> None:
    """A working directory that never ran (a CI runner, a container) takes the state and
    schema the destination holds, as dlt restores them."""
    if pipeline.default_schema_name is not None or pipeline.has_pending_data \
            or _local_source_state(pipeline) is not None:
        return
    pipeline.sync_destination()
    if _local_source_state(pipeline) is not None:
        note(log, "this working directory had no state: restored it from %s; continuing "
             "from its watermarks", describe(pipeline))


def _local_source_state(pipeline: dlt.Pipeline) -> dict[str, Any] | None:
    found = (pipeline.state.get("sources") or {}).get(st.SOURCE)
    return dict(found) if found is not None else None


def _candidate_tables() -> list[str]:
    return [name for entry in CATALOG for name in (*owned_tables(entry), *entry.written_with)] + \
        [LEAD_MERGES_TABLE, EVENTS_TABLE, FIELD_CHANGES_TABLE] + \
        [history_table(table) for table in HISTORY_TABLES]


def _gone_tables(claimed: Mapping[str, Any] | None, stored: Stored,
                 selected: list[str], dropped: Collection[str]) -> list[str]:
    """Selected tables the destination's state says were loaded, whose tables it lacks. A
    full read creates every table of its entry (empty ones too), so none may be missing."""
    if claimed is None or not stored.knows_tables:
        return []
    loaded = st.watermarks(claimed)
    return [table for table in selected if table in loaded and table in BY_TABLE
            and any(name not in stored.tables
                    for name in owned_tables(BY_TABLE[table], without=dropped))]


def difference(destination: str, local: Mapping[str, Any] | None,
               claimed: Mapping[str, Any] | None) -> str | None:
    """What it means that the destination's state is not the working directory's."""
    if claimed == local:
        return None
    if claimed is None:
        return (f"{destination} holds no data of this pipeline (a new or emptied database, "
                "file or dataset?): every table is loaded in full")
    if local is None:
        return f"continuing from the state {destination} holds"
    return (f"{destination} holds another state than this working directory's (a database "
            "restored from an earlier copy, another dataset, or a run from elsewhere): "
            "continuing from the destination's")


def read_destination(pipeline: dlt.Pipeline) -> Stored:
    """What the pipeline's destination holds, read only (`close-sync status`)."""
    return read_stored(pipeline, _candidate_tables())


def _install(pipeline: dlt.Pipeline, claimed: Mapping[str, Any] | None) -> None:
    """The working directory's source state becomes the destination's."""
    with pipeline.managed_state() as state:
        sources = state.setdefault("sources", {})
        if claimed is None:
            sources.pop(st.SOURCE, None)
        else:
            sources[st.SOURCE] = copy.deepcopy(dict(claimed))


def _recreate_missing(pipeline: dlt.Pipeline, stored: Stored, selected: list[str],
                      reloaded: list[str], history: list[str]) -> None:
    """dlt creates tables only when the schema's version is new to the destination, so tables
    it loaded there before and that are gone now would never come back:

    - those read in full this run (`reloaded`): the stored schema version is forgotten, so the
      load compares the schema with the destination and creates them with their rows. Not
      created now: a run that failed before loading would leave them empty, and the next run
      would take them for loaded;
    - the others (tables read in full every run, lead merges, custom field changes, the raw
      events, field changes): created now, empty, so that merging into them cannot fail. A
      table whose versions are kept (`history`) and whose history table is gone is read in
      full (`source.py`): its versions begin again.
    """
    if not stored.knows_tables or stored.state is None or pipeline.default_schema_name is None:
        return  # a dataset without loads has no stored schema: dlt creates everything
    schema = pipeline.default_schema
    wanted = {name for table in selected if table in BY_TABLE for name in
              (*owned_tables(BY_TABLE[table]), *BY_TABLE[table].written_with)} | \
        {LEAD_MERGES_TABLE, EVENTS_TABLE, FIELD_CHANGES_TABLE} | \
        {history_table(table) for table in history if table in selected}
    gone = [name for name in schema.data_table_names(seen_data_only=True)
            if name in wanted and name not in stored.tables]
    if not gone:
        return
    refilled = {name for table in reloaded for name in
                (*owned_tables(BY_TABLE[table]), history_table(table))}
    with pipeline.destination_client() as client:
        if client.get_stored_schema_by_hash(schema.stored_version_hash) is None:  # type: ignore[attr-defined]
            return  # new to the destination: its next load compares anyway
        if created := [name for name in gone if name not in refilled]:
            log.info("tables gone from the destination are created again: %s",
                     ", ".join(sorted(created)))
            client.update_stored_schema(only_tables=created, force=True)
        if any(name in refilled for name in gone):
            client.drop_tables(delete_schema=True)  # type: ignore[attr-defined]
