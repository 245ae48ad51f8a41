"""The COPY of one CSV file into PostgreSQL, NULL and the empty string kept apart; needs
psycopg2 (the `postgres` extra), so only `postgres_copy.postgres` imports it, when it loads.

pyarrow's CSV writer (dlt's `csv` format from Arrow, quoting `quote_needed`) quotes every
string, and writes NULL as an empty unquoted field: `NULL ''` alone tells them apart, where
dlt's job adds FORCE_NULL on every nullable column and makes `""` NULL too. This is dlt 1.31's
`PostgresCsvCopyJob.run` without that clause.

PostgreSQL cannot store the NUL character in text, and COPY refuses a file holding one;
`insert_values` drops it from every string (dlt's `escape_postgres_literal`), so this job
drops it from the file as it streams it: the values are those `insert_values` loaded. In UTF-8
the byte 0 is only ever that character.
"""

from __future__ import annotations

import csv
from typing import IO

from dlt.common import logger
from dlt.common.destination.client import (
    HasFollowupJobs,
    LoadJob,
    PreparedTableSchema,
    RunnableLoadJob,
)
from dlt.common.destination.configuration import CsvFormatConfiguration
from dlt.common.destination.exceptions import DestinationInvalidFileFormat
from dlt.common.storages.file_storage import FileStorage
from dlt.common.storages.load_storage import ParsedLoadJobFileName
from dlt.destinations.impl.postgres.postgres import PostgresClient

COPY_CHUNK = 64 * 1024  # bytes per read of the file (dlt: 8 KB)


class CopyClient(PostgresClient):
    """dlt's PostgreSQL client; `.csv` files load through `CsvCopyJob`."""

    def create_load_job(self, table: PreparedTableSchema, file_path: str, load_id: str,
                        restore: bool = False) -> LoadJob:
        if ParsedLoadJobFileName.parse(file_path).file_format == "csv":
            return CsvCopyJob(file_path)
        return super().create_load_job(table, file_path, load_id, restore)


class CsvCopyJob(RunnableLoadJob, HasFollowupJobs):
    """One file, one COPY, in one transaction."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path)
        self._job_client: PostgresClient = None  # type: ignore[assignment] # set by dlt

    def run(self) -> None:
        client = self._job_client
        csv_format = client.config.csv_format or CsvFormatConfiguration()
        table = self.load_table_name
        if csv_format.on_error_continue:
            logger.warning(f"{self._file_path}: PostgreSQL's COPY does not support "
                           "on_error_continue; a bad row fails the file")
        with FileStorage.open_zipsafe_ro(self._file_path, "rb") as f:
            columns = self._columns(f, csv_format, table)
            sql_client = client.sql_client
            copy = (f"COPY {sql_client.make_qualified_table_name(table)} ({', '.join(columns)}) "
                    f"FROM STDIN WITH (FORMAT CSV, DELIMITER '{csv_format.delimiter}', "
                    f"NULL '', ENCODING '{csv_format.encoding}')")
            with sql_client.begin_transaction(), \
                    sql_client.native_connection.cursor() as cursor:
                cursor.copy_expert(copy, _WithoutNul(f), size=COPY_CHUNK)

    def _columns(self, f: IO[bytes], csv_format: CsvFormatConfiguration,
                 table: str) -> list[str]:
        """The file's columns, quoted, from its header (read past; without a header, the
        table's columns in schema order, as dlt's job takes them)."""
        sql_client = self._job_client.sql_client
        known = list(self._job_client.schema.get_table_columns(table))
        if csv_format.include_header:
            header = f.readline().decode(csv_format.encoding).rstrip("\r\n")
            names = next(csv.reader([header], delimiter=csv_format.delimiter), [])
        else:
            names = known
        if unknown := set(names) - set(known):
            raise DestinationInvalidFileFormat(
                "postgres", "csv", self._file_path,
                f"columns {sorted(unknown)} are not columns of table {table}")
        return [sql_client.escape_column_name(name, quote=True) for name in names]


class _WithoutNul:
    """The file, as COPY reads it, without NUL bytes. A chunk that held nothing else is
    skipped rather than returned empty (psycopg2 takes an empty read for the end)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def read(self, size: int = -1) -> bytes:
        while True:
            chunk = self._f.read(size)
            kept = chunk.replace(b"\x00", b"")
            if kept or not chunk:
                return kept
