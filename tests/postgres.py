"""A throwaway PostgreSQL server for the ledger tests: Debian's `postgresql` package, one cluster
per test session in a temporary folder, started and stopped here (initdb + pg_ctl), listening on
127.0.0.1 with trust auth. Run as root (containers), the server runs as the `postgres` user the
package creates (PostgreSQL refuses to run as root). `bindir()` is None when the package is not
installed (scripts/ensure-postgresql.sh installs it for `make test`): the tests then skip and
say so.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.helpers import free_port

NOT_INSTALLED = (
    "PostgreSQL is not installed (Debian package `postgresql`; scripts/ensure-postgresql.sh "
    "installs it): the ledger's PostgreSQL tests need a real server"
)


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """`with PostgresCluster(bindir()) as pg: pg.new_database()` -> the URL of a fresh database."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="wanpod-pg-"))
        self.data = self.folder / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def __enter__(self) -> PostgresCluster:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "wanpod", "--auth=trust",
                  "--no-sync", "-E", "UTF8")  # fmt: skip
        self._start()
        return self

    def _start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w",
                  "-l", str(self.folder / "server.log"), "start")  # fmt: skip

    def restart(self) -> None:
        """Stop the server (every connection dropped, as in a failover) and start it again."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self._start()

    @property
    def admin_url(self) -> str:
        return f"postgresql://wanpod@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        import psycopg

        name = "ledger_" + uuid.uuid4().hex[:10]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://wanpod:not-a-real-password@127.0.0.1:{self.port}/{name}"

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
