"""Reading back what earlier runs loaded, for the few decisions that need it.

An incremental run asks the destination which rows still name a deleted lead (their own events
may be missing: Created activities have none) or a renamed one, and, with soft deletes, for the
rows it keeps with `_deleted_at`. A table or column no earlier run created has no rows.

The SQL client is made once, when the source is created (dlt's configuration contexts must not
be entered from the extract's worker threads at the same time), and used one query at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import dlt
import orjson
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from close_source.records import TOMBSTONE, Json

CHUNK = 500  # values per IN (...) list


class Warehouse:
    """The running pipeline's dataset as earlier runs left it."""

    def __init__(self, client: Any = None, tables: dict[str, dict[str, Any]] | None = None):
        self._client = client
        self._tables = tables or {}
        self._lock = threading.Lock()

    @classmethod
    def of_current_pipeline(cls) -> Warehouse:
        """Empty on the first run, or outside a pipeline."""
        try:
            pipeline = dlt.current.pipeline()
        except Exception:  # noqa: BLE001 - no active pipeline: nothing was loaded
            return cls()
        if pipeline.default_schema_name is None or pipeline.destination is None:
            return cls()
        tables = {name: dict(table.get("columns", {}))
                  for name, table in pipeline.default_schema.tables.items()}
        return cls(pipeline.sql_client(), tables)

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
        """Tables earlier runs created (the pipeline schema's)."""
        return list(self._tables)

    def has_column(self, table: str, column: str) -> bool:
        return column in self._tables.get(table, {})

    def count(self, table: str, column: str | None = None,
              values: Iterable[str] = ()) -> int:
        """Rows of the table (whose `column` is one of `values`, when given)."""
        if table not in self._tables or (column is not None and not self.has_column(table,
                                                                                    column)):
            return 0
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
