"""PostgreSQL: each root table's key a primary key, and an index on each column that names a
lead and on each child table's parent key; made after a load, where missing.

dlt records our primary keys in its schema but makes no constraint of them on PostgreSQL (its
`create_indexes` turns only `unique` hints into UNIQUE, inside a CREATE TABLE, and never alters
a table that exists), and has no hint for a plain index. So they are made here, for the
pipeline's own tables only, and only where the table has none: a run that finds them all asks
PostgreSQL's catalog two queries. Tables dlt drops and makes again (`--full-refresh`) get them again
after their load; a table loaded in place is indexed after its rows are in, the cheap order.

Each table's keys are made in one transaction: a run killed part-way leaves a table with all of
them or none. An advisory lock on the dataset, held by that transaction, serialises two runs
(of two pipelines into one dataset) that both found a key missing; the second sees the first's
key and adds nothing. The unique index is built first, under a lock readers pass, and then made
the primary key, which holds readers off only for that moment; a lock wait longer than
`LOCK_TIMEOUT` leaves the table for the next run, with a warning. A table whose rows break its
key (duplicate ids from a load of an older version) keeps its rows and gets no primary key.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseException
from dlt.destinations.sql_client import SqlClientBase

from close_source.catalog import CATALOG
from close_source.shape.arrow_tables import table_specs
from close_source.stages import note

log = logging.getLogger("close_source.progress")

LOCK_TIMEOUT = "10s"
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are cut, and could collide


@dataclass
class Wanted:
    """The keys one table should have."""

    primary_key: tuple[str, ...] = ()
    indexed: tuple[str, ...] = ()  # each the first column of some index


@dataclass
class Present:
    """What a table has: its columns, its primary key or unique indexes, and the first column
    of each of its valid indexes."""

    columns: set[str] = field(default_factory=set)
    primary: bool = False
    unique: set[frozenset[str]] = field(default_factory=set)
    indexed: set[str] = field(default_factory=set)

    def has_key(self, key: tuple[str, ...]) -> bool:
        """A primary key, or a unique index on exactly the key: that is the key too."""
        return self.primary or frozenset(key) in self.unique


def ensure(pipeline: dlt.Pipeline) -> None:
    """Make what is missing in the pipeline's dataset (PostgreSQL only)."""
    destination = pipeline.destination
    if destination is None or destination.destination_type.rsplit(".", 1)[-1] != "postgres":
        return
    wanted = wanted_keys(pipeline.default_schema)
    started = time.monotonic()
    made: list[str] = []
    failed: list[str] = []
    with pipeline.sql_client() as client:
        dataset = client.dataset_name
        for table in sorted(_missing(wanted, _present(client, dataset, list(wanted)))):
            try:
                made += _make(client, dataset, table, wanted[table])
            except DatabaseException as error:
                failed.append(f"{table} ({_first_line(error)})")
    if made:
        note(log, "PostgreSQL: made %d primary keys and indexes (%s) in %.1fs", len(made),
             _names(made), time.monotonic() - started)
    if failed:
        log.warning("PostgreSQL: tables left without their primary key or indexes this run, "
                    "the next run tries again: %s", "; ".join(failed))


def wanted_keys(schema: dlt.Schema) -> dict[str, Wanted]:
    """Per data table of the schema: its primary key (the schema's `primary_key` columns),
    and the columns to index: those naming a lead, and a child table's parent key."""
    parent_keys = _parent_keys()
    wanted: dict[str, Wanted] = {}
    for table in schema.data_table_names():
        columns = schema.get_table_columns(table)
        primary_key = tuple(name for name, column in columns.items()
                            if column.get("primary_key"))
        indexed = [name for name in columns if name == "lead_id" or name.endswith("_lead_id")]
        if (parent := parent_keys.get(table)) and parent not in indexed:
            indexed.insert(0, parent)
        wanted[table] = Wanted(primary_key, tuple(c for c in indexed if c not in primary_key[:1]))
    return wanted


@cache
def _parent_keys() -> dict[str, str]:
    """Child table -> the parent key its rows are merged on (`contacts__emails`: contact_id)."""
    return {spec.name: spec.merge_key for entry in CATALOG for spec in table_specs(entry)
            if spec.merge_key}


def _present(client: SqlClientBase[Any], dataset: str, tables: list[str]) -> dict[str, Present]:
    """What the tables have, from PostgreSQL's catalog (two queries)."""
    present: dict[str, Present] = {}
    for table, column in client.execute_sql(
            "SELECT c.relname, a.attname FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p') "
            "AND a.attnum > 0 AND NOT a.attisdropped", dataset, tables):
        present.setdefault(table, Present()).columns.add(column)
    for table, primary, unique, columns in client.execute_sql(
            "SELECT c.relname, i.indisprimary, i.indisunique, ARRAY(SELECT a.attname "
            "FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.position) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = ANY(%s) AND i.indisvalid", dataset, tables):
        found = present.setdefault(table, Present())
        found.primary |= bool(primary)
        if unique:
            found.unique.add(frozenset(columns))
        if columns:
            found.indexed.add(columns[0])
    return present


def _missing(wanted: dict[str, Wanted], present: dict[str, Present]) -> set[str]:
    """Tables that exist and lack a key or an index they should have."""
    return {table for table, found in present.items()
            if _statements_needed(table, wanted[table], found)}


def _statements_needed(table: str, wanted: Wanted, found: Present) -> list[tuple[str, str]]:
    """(name, kind) of each key or index to make: kind is "primary" or the indexed column."""
    needed: list[tuple[str, str]] = []
    key = wanted.primary_key
    if key and set(key) <= found.columns and not found.has_key(key):
        needed.append((index_name(table, "pkey"), "primary"))
    for column in wanted.indexed:
        if column in found.columns and column not in found.indexed:
            needed.append((index_name(table, f"{column}_idx"), column))
    return needed


def _make(client: SqlClientBase[Any], dataset: str, table: str, wanted: Wanted) -> list[str]:
    """One transaction: lock, look again (another run may have made them), make."""
    execute = client.execute_sql
    quote = client.escape_column_name
    qualified = client.make_qualified_table_name(table)
    with client.begin_transaction():
        execute("SELECT pg_advisory_xact_lock(%s)", advisory_key(dataset))
        execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")  # for the tables' locks only
        found = _present(client, dataset, [table]).get(table, Present())
        needed = _statements_needed(table, wanted, found)
        for name, kind in needed:
            if kind == "primary":
                columns = ", ".join(quote(column) for column in wanted.primary_key)
                execute(f"CREATE UNIQUE INDEX {quote(name)} ON {qualified} ({columns})")
                execute(f"ALTER TABLE {qualified} ADD CONSTRAINT {quote(name)} "
                        f"PRIMARY KEY USING INDEX {quote(name)}")
            else:
                execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {qualified} "
                        f"({quote(kind)})")
    return [name for name, _ in needed]


def index_name(table: str, suffix: str) -> str:
    """`<table>_<suffix>`, within PostgreSQL's 63 characters: a long table name is cut and
    a hash of it added, so two long names never meet."""
    name = f"{table}_{suffix}"
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    return f"{table[:MAX_IDENTIFIER - len(suffix) - 10]}_{digest}_{suffix}"


def advisory_key(dataset: str) -> int:
    """A signed 64-bit key for the dataset's key making, apart from the run lock's keys."""
    digest = hashlib.sha256(f"close-sync keys\0{dataset}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _first_line(error: BaseException) -> str:
    cause = error.__cause__ or error
    return next((line.strip() for line in str(cause).splitlines() if line.strip()),
                type(cause).__name__)


def _names(names: list[str], shown: int = 8) -> str:
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
