"""Reading back what earlier runs loaded: the destination is the truth about it.

Before planning, a run reads what the destination's dataset holds (`read_stored`): the pipeline
state dlt committed with the dataset's newest complete load (the watermarks it continues from)
and which tables exist. During the run, an incremental run asks the destination which rows
still name a deleted lead (their own events may be missing: Created activities have none) or a
renamed one, and, with soft deletes, for the rows it keeps with `_deleted_at`. A table or column
the destination does not have has no rows.

The SQL client is made once, when the source is created (dlt's configuration contexts must not
be entered from the extract's worker threads at the same time), and used one query at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import dlt
import orjson
from dlt.common.destination.client import WithStateSync
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.exceptions import DatabaseUndefinedRelation, DestinationConnectionError
from dlt.pipeline.state_sync import load_pipeline_state_from_destination

from close_source.records import TOMBSTONE, Json

CHUNK = 500  # values per IN (...) list
# rows read back at a time (`close-sync verify`): a page is Python tuples (at 50,000 rows,
# 26 MB more of verify's peak at 300,000 leads) and a query DuckDB answers by sorting the
# table again (600,000 rows read back take ~1.5 times as long as at 50,000 a page)
PAGE_ROWS = 20_000


@dataclass(frozen=True)
class Stored:
    """What the destination's dataset holds now."""

    # the pipeline state dlt committed with the dataset's newest complete load (None: none)
    state: Mapping[str, Any] | None = None
    # every table that exists there -> its columns (names as the destination folds them)
    tables: Mapping[str, set[str]] = field(default_factory=dict)
    # False when the destination cannot tell which tables exist (no SQL, or no destination)
    knows_tables: bool = False

    def source_state(self, source: str) -> dict[str, Any] | None:
        if self.state is None:
            return None
        return dict((self.state.get("sources") or {}).get(source) or {})


def read_stored(pipeline: dlt.Pipeline, candidates: Iterable[str]) -> Stored:
    """The destination's state of this pipeline and which of the `candidates` (and of the
    pipeline schema's tables) exist in its dataset. A destination that cannot be reached
    raises: nothing may be planned on a guess."""
    if pipeline.destination is None:
        return Stored()
    names = set(candidates)
    if pipeline.default_schema_name is not None:
        names |= set(pipeline.default_schema.data_table_names())
    with _connected(pipeline) as client:
        state = None
        if isinstance(client, WithStateSync):
            try:
                state = load_pipeline_state_from_destination(pipeline.pipeline_name, client)
            except DestinationUndefinedEntity:  # no dataset, or no state table in it
                state = None
        storage = getattr(client, "get_storage_tables", None)
        if storage is None:
            return Stored(state)
        tables = {name: set(columns) for name, columns in storage(sorted(names)) if columns}
    return Stored(state, tables, knows_tables=True)


class Warehouse:
    """The running pipeline's dataset as earlier runs left it."""

    def __init__(self, client: Any = None, tables: dict[str, dict[str, Any]] | None = None):
        self._client = client
        self._tables = tables or {}
        self._lock = threading.Lock()

    @classmethod
    def of_pipeline(cls, pipeline: dlt.Pipeline, stored: Stored) -> Warehouse:
        """The tables and columns the destination has (typed as the pipeline schema knows
        them, when it does); empty when it has none."""
        known = ({name: table.get("columns", {}) for name, table in
                  pipeline.default_schema.tables.items()}
                 if pipeline.default_schema_name is not None else {})
        if not stored.knows_tables:  # only the schema can say
            return cls(_sql_client(pipeline), {name: dict(cols) for name, cols in known.items()})
        tables = {}
        for name, columns in stored.tables.items():
            typed = known.get(name, {})
            tables[name] = {column: dict(typed.get(column) or {"name": column})
                            for column in columns}
        return cls(_sql_client(pipeline), tables)

    def ids_where(self, table: str, column: str, values: Iterable[str],
                  key: str = "id") -> list[str]:
        """Keys of the rows whose `column` is one of `values`."""
        if not {column, key} <= set(self._tables.get(table, {})):
            return []
        found: list[str] = []
        for chunk in _chunks(values):
            found += [str(row[0]) for row in self._select(table, [key], column, chunk)]
        return found

    def tables(self) -> list[str]:
        """Tables the destination holds."""
        return list(self._tables)

    def columns(self, table: str) -> set[str] | None:
        """The table's columns in the destination; None when it has no such table."""
        return set(self._tables[table]) if table in self._tables else None

    def has_column(self, table: str, column: str) -> bool:
        return column in self._tables.get(table, {})

    def count(self, table: str, column: str | None = None,
              values: Iterable[str] = (), live: Mapping[str, str] | None = None) -> int:
        """Rows of the table (whose `column` is one of `values`, when given; that count, with
        `live`: see `keyed_pages`)."""
        if table not in self._tables or (column is not None and not self.has_column(table,
                                                                                    column)):
            return 0
        if live and self._client is not None:
            with self._lock, self._client as client:
                where = _live_where(client, self._tables[table], live)
                sql = f"SELECT count(*) FROM {client.make_qualified_table_name(table)}" + \
                    (f" WHERE {' AND '.join(where)}" if where else "")
                return int(client.execute_sql(sql)[0][0])
        if column is None:
            return sum(int(row[0]) for row in self._select(table, ["count(*)"], None, [],
                                                           raw=True))
        return sum(int(row[0]) for chunk in _chunks(values)
                   for row in self._select(table, ["count(*)"], column, chunk, raw=True))

    def all_ids(self, table: str, key: str = "id") -> list[str]:
        if key not in self._tables.get(table, {}):
            return []
        return [str(row[0]) for row in self._select(table, [key], None, [])]

    def rows_where(self, table: str, column: str, values: Iterable[str]) -> list[dict[str, Any]]:
        """Whole rows, without dlt's bookkeeping columns, typed as the Arrow path expects them
        (JSON columns as `Json` text, whichever way the destination returns them)."""
        known = self._tables.get(table, {})
        if column not in known:
            return []
        names = [name for name in known if not name.startswith("_dlt") and name != TOMBSTONE]
        json_columns = {name for name in names if known[name].get("data_type") == "json"}
        found: list[dict[str, Any]] = []
        for chunk in _chunks(values):
            for raw in self._select(table, names, column, chunk):
                found.append({name: _value(value, name in json_columns)
                              for name, value in zip(names, raw, strict=True)})
        return found

    def keyed_pages(self, table: str, key: Sequence[str], columns: Sequence[str],
                    live: Mapping[str, str] | None = None,
                    size: int = PAGE_ROWS) -> Iterator[list[tuple[Any, ...]]]:
        """(key, *columns) of every row, in key order, a page at a time, by keyset paging:
        memory is a page on every destination (no server-side cursor needed). A key of several
        columns is joined with ':'; a column the table lacks reads as NULL; `live`: column ->
        `null` or `not_true`, the rows that count (soft deletes, deleted definitions)."""
        known = self._tables.get(table)
        if known is None or self._client is None:
            return
        with self._lock, self._client as client:
            quoted = [client.escape_column_name(name) for name in key]
            key_sql = quoted[0] if len(quoted) == 1 else " || ':' || ".join(quoted)
            selected = [client.escape_column_name(name) if name in known else "NULL"
                        for name in columns]
            where = _live_where(client, known, live or {})
            base = (f"SELECT {key_sql}, {', '.join(selected)} "
                    f"FROM {client.make_qualified_table_name(table)}")
        after: str | None = None
        while True:
            conditions = where + ([f"{key_sql} > %s"] if after is not None else [])
            sql = base + (f" WHERE {' AND '.join(conditions)}" if conditions else "") + \
                f" ORDER BY {key_sql} LIMIT {int(size)}"
            with self._lock, self._client as client:
                rows = [tuple(row) for row in
                        client.execute_sql(sql, *([after] if after is not None else [])) or []]
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = str(rows[-1][0])

    def whole_table(self, table: str) -> list[dict[str, Any]]:
        """Every row of a small table, with every column it has when asked: also a table or
        column a load made since the run began (an earlier run's package, loaded first)."""
        if self._client is None:
            return []
        with self._lock, self._client as client:
            if not client.has_dataset():
                return []
            sql = f"SELECT * FROM {client.make_qualified_table_name(table)}"
            try:
                with client.execute_query(sql) as cursor:
                    names = [column[0] for column in cursor.description]
                    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            except DatabaseUndefinedRelation:
                return []

    def _select(self, table: str, columns: list[str], where: str | None,
                values: list[str], raw: bool = False) -> list[tuple[Any, ...]]:
        if self._client is None:
            return []
        with self._lock, self._client as client:
            if not client.has_dataset():
                return []
            selected = ", ".join(columns if raw else
                                 [client.escape_column_name(name) for name in columns])
            sql = f"SELECT {selected} FROM {client.make_qualified_table_name(table)}"
            if where is not None:
                placeholders = ", ".join(["%s"] * len(values))
                sql += f" WHERE {client.escape_column_name(where)} IN ({placeholders})"
            try:
                return [tuple(row) for row in client.execute_sql(sql, *values) or []]
            except DatabaseUndefinedRelation:
                return []


@contextmanager
def _connected(pipeline: dlt.Pipeline) -> Iterator[Any]:
    """The destination's job client, connected; failing to connect is reported as dlt
    reports it inside a pipeline step (the user's one line names the destination)."""
    client = pipeline.destination_client()
    try:
        client.__enter__()
    except Exception as error:
        raise DestinationConnectionError(type(client).__name__, pipeline.dataset_name,
                                         str(error), error) from error
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


def _live_where(client: Any, known: Mapping[str, Any], live: Mapping[str, str]) -> list[str]:
    """`live`: column -> `null` (the row counts while it is NULL) or `not_true`."""
    return [f"{client.escape_column_name(name)} IS NULL" if test == "null" else
            f"{client.escape_column_name(name)} IS NOT TRUE"
            for name, test in live.items() if name in known]


def _sql_client(pipeline: dlt.Pipeline) -> Any:
    try:
        return pipeline.sql_client()
    except Exception:  # noqa: BLE001 - a destination without SQL: nothing to read back
        return None


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for value in dict.fromkeys(values):
        chunk.append(value)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _value(value: Any, is_json: bool) -> Any:
    if is_json and isinstance(value, str):
        return Json(value)
    if is_json and value is not None:
        return Json(orjson.dumps(value).decode())
    if isinstance(value, Decimal):
        return float(value)
    return value
