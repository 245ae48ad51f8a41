"""A throwaway PostgreSQL server for the tests, from the machine's own PostgreSQL binaries.

`initdb`/`postgres` refuse to run as root: under root the cluster is created and run as an
unprivileged user (`CLOSE_DLT_PG_USER`, default `nobody`), in a temporary directory it owns.
Durability is switched off (fsync, synchronous_commit, full_page_writes): the data dies with the
test session anyway. Each test pipeline gets a database of its own (`new_database`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("initdb", "pg_ctl", "postgres")


def find_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: `CLOSE_DLT_PG_BIN`, PATH, or pg_config."""
    candidates = [os.environ.get("CLOSE_DLT_PG_BIN")]
    if found := shutil.which("initdb"):
        candidates.append(str(Path(found).parent))
    if pg_config := shutil.which("pg_config"):
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(result.stdout.strip())
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).exists() for name in BINARIES):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    bindir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="close-dlt-pg-")))
    port: int = field(default_factory=_free_port)
    user: str | None = None  # the OS user running the server (None: ourselves)
    password: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> None:
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            kwargs["user"] = self.user
            kwargs["env"] = {**os.environ, "HOME": str(self.root)}
        result = subprocess.run(args, capture_output=True, text=True, cwd=self.root,
                                **kwargs)  # type: ignore[call-overload]
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr or result.stdout}")

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            self.user = self.user or os.environ.get("CLOSE_DLT_PG_USER", "nobody")
            account = pwd.getpwnam(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        password_file = self.root / "password"
        password_file.write_text(self.password)
        if self.user:
            os.chown(password_file, pwd.getpwnam(self.user).pw_uid, -1)
        # TCP connections need the password, so a wrong one fails as it would in production
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  f"--pwfile={password_file}", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "close") -> str:
        """A fresh database; returns its connection string."""
        import psycopg2

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        connection = psycopg2.connect(self.dsn())
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.dsn(name)
