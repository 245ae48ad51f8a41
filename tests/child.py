"""`python -m tests.child HOOK ARGS...`: `close-sync ARGS...` with one fault or probe in dlt.

The faults patch dlt's layers (its DuckDB SQL client, its load package storage), never
close_source, so the code under test runs as it does for a user:

- `kill-in-replace`: SIGKILL the process right after the first statement that writes rows into
  a data table of the dataset itself (not staging) ran, before anything commits it.
- `kill-between-statements`: SIGKILL the process between two statements of one SQL job: right
  after the `DELETE FROM` (PostgreSQL: `TRUNCATE TABLE`) of table `CLOSE_TEST_TABLE` in the
  dataset ran, before the job's next statement (as a kill from another thread may land).
- `kill-after-commit`: SIGKILL the process when the destination has committed the first load
  job of table `CLOSE_TEST_TABLE`, before dlt records that the job completed.
- `kill-mid-extract`: SIGKILL the process when dlt's extract writes the `CLOSE_TEST_NTH` (default
  1) item of table `CLOSE_TEST_TABLE` (the export was downloaded; nothing was loaded).
- `kill-in-keys`: SIGKILL the process right after the first `CREATE UNIQUE INDEX` ran on
  PostgreSQL (inside the transaction that makes a table's primary key, before it commits).
- `no-psycopg2`: `import psycopg2` fails as where it is not installed (close-dlt installed
  without the `postgres` extra).
- `import-spy`: record every module first imported outside the main thread, and every module
  imported at all; both are written to `CLOSE_TEST_IMPORTS` when the run ends.
- `offline`: the network is off: every attempt to connect a socket or resolve a host name
  fails as on a machine without a network, and is written to `CLOSE_TEST_CONNECTS` when the
  run ends. (Local sockets still work; libpq, PostgreSQL's C client, does not go through
  Python's sockets.)
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import sys
import threading
from importlib.abc import MetaPathFinder
from pathlib import Path
from typing import Any


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_in_replace() -> None:
    from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

    writes = re.compile(r'INSERT INTO (?:"[^"]+"\.)?"close"\."(?!_dlt)', re.IGNORECASE)
    original = DuckDbSqlClient.execute_sql

    def execute_sql(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, sql, *args, **kwargs)
        if isinstance(sql, str) and writes.search(sql):
            _kill()
        return result

    DuckDbSqlClient.execute_sql = execute_sql  # type: ignore[method-assign]


def kill_between_statements() -> None:
    from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
    from dlt.destinations.impl.postgres.sql_client import Psycopg2SqlClient

    table = os.environ["CLOSE_TEST_TABLE"]
    delete = re.compile(rf'^(?:DELETE FROM|TRUNCATE TABLE) (?:"[^"]+"\.)?"close"\."{table}"',
                        re.IGNORECASE)
    for client in (DuckDbSqlClient, Psycopg2SqlClient):
        original = client.execute_sql

        def execute_sql(self: Any, sql: Any, *args: Any, _original: Any = original,
                        **kwargs: Any) -> Any:
            statements = sql.split("\n") if isinstance(sql, str) and not args else [sql]
            if len(statements) < 2 or not any(delete.search(s) for s in statements):
                return _original(self, sql, *args, **kwargs)
            for statement in statements:  # dlt joined the job's statements with newlines
                _original(self, statement)
                if delete.search(statement):
                    _kill()
            return None

        client.execute_sql = execute_sql  # type: ignore[method-assign]


def kill_after_commit() -> None:
    from dlt.common.storages.load_package import PackageStorage

    table = os.environ["CLOSE_TEST_TABLE"]
    original = PackageStorage.save_pending_transition

    def save_pending_transition(self: Any, load_id: str, file_name: str, state: str,
                                failed_message: str | None = None) -> None:
        if state == "completed" and file_name.startswith(f"{table}."):
            _kill()
        original(self, load_id, file_name, state, failed_message)

    PackageStorage.save_pending_transition = save_pending_transition  # type: ignore[method-assign]


def kill_mid_extract() -> None:
    from dlt.common.storages.data_item_storage import DataItemStorage

    table, nth = os.environ["CLOSE_TEST_TABLE"], int(os.environ.get("CLOSE_TEST_NTH", "1"))
    original = DataItemStorage.write_data_item
    seen = [0]

    def write_data_item(self: Any, load_id: str, schema_name: str, table_name: str,
                        *args: Any, **kwargs: Any) -> Any:
        if table_name == table:
            seen[0] += 1
            if seen[0] == nth:
                _kill()
        return original(self, load_id, schema_name, table_name, *args, **kwargs)

    DataItemStorage.write_data_item = write_data_item  # type: ignore[method-assign]


def kill_in_keys() -> None:
    from dlt.destinations.impl.postgres.sql_client import Psycopg2SqlClient

    original = Psycopg2SqlClient.execute_sql

    def execute_sql(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, sql, *args, **kwargs)
        if isinstance(sql, str) and sql.startswith("CREATE UNIQUE INDEX"):
            _kill()
        return result

    Psycopg2SqlClient.execute_sql = execute_sql  # type: ignore[method-assign]


class _NotInstalled(MetaPathFinder):
    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name.split(".")[0].startswith(self.package):  # psycopg2, psycopg2cffi
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def no_psycopg2() -> None:
    sys.meta_path.insert(0, _NotInstalled("psycopg2"))


def import_spy() -> None:
    main = threading.main_thread()
    imported: dict[str, str] = {}

    class Spy(MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> None:
            thread = threading.current_thread()
            if thread is not main and name not in sys.modules:
                imported.setdefault(name, thread.name)
            return None

    sys.meta_path.insert(0, Spy())
    target = Path(os.environ["CLOSE_TEST_IMPORTS"])
    atexit.register(lambda: target.write_text(json.dumps(
        {"in_workers": imported, "loaded": sorted(sys.modules)})))


def offline() -> None:
    import socket

    attempts: list[str] = []
    target = Path(os.environ["CLOSE_TEST_CONNECTS"])
    atexit.register(lambda: target.write_text(json.dumps(attempts)))

    def refuse(what: str) -> OSError:
        attempts.append(what)
        return OSError(101, f"Network is unreachable (the network is off): {what}")

    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(method: Any) -> Any:
        def attempt(self: socket.socket, address: Any) -> Any:
            if self.family == socket.AF_UNIX:
                return method(self, address)
            raise refuse(f"connect {address!r}")
        return attempt

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise refuse(f"resolve {host!r}")

    socket.socket.connect = guarded(connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded(connect_ex)  # type: ignore[method-assign]
    socket.getaddrinfo = resolve


HOOKS = {"kill-in-replace": kill_in_replace, "kill-after-commit": kill_after_commit,
         "kill-between-statements": kill_between_statements,
         "kill-mid-extract": kill_mid_extract, "import-spy": import_spy, "offline": offline,
         "kill-in-keys": kill_in_keys, "no-psycopg2": no_psycopg2}

if __name__ == "__main__":
    HOOKS[sys.argv[1]]()
    from close_source.cli import main as cli

    sys.exit(cli(sys.argv[2:]))
