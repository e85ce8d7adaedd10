"""The ledger's database behind one small interface: SQLite (a file, the default) or PostgreSQL.

`open_database(url)` takes `WANPOD_DATABASE_URL`: a path or `sqlite:///path` for a SQLite file (one
studio), `postgresql://user:password@host:port/db` for a ledger several studio replicas share.
Callers write SQL once, with `?` placeholders; the few places the two dialects differ are methods
here (`json_text`, `float_type`, `claim_where`). Every statement runs on its own in autocommit
mode; `transaction()` makes what one thread reads and writes inside it one atomic step, holding a
lock that every other writer of the ledger (in this process, another studio or another replica)
waits for: SQLite's BEGIN IMMEDIATE, PostgreSQL's transaction-scoped advisory lock. Migrations run
in one (replicas starting together migrate one after the other), and so can e.g. a budget check
with the row it admits.

PostgreSQL goes through psycopg 3 (the maintained successor of psycopg2, with its binary wheel: no
compiler or libpq headers needed in the image).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.errors import ConfigError

SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
_LOCK_KEY = 7_318_401  # pg_advisory_xact_lock key of the ledger's transactions


@dataclass(frozen=True)
class Result:
    rows: list[dict[str, Any]]
    rowcount: int

    def one(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None


def database_url(raw: str, data_dir: Path) -> str:
    """The ledger URL for `WANPOD_DATABASE_URL=raw` (blank: the SQLite file in the data folder)."""
    raw = raw.strip()
    if not raw:
        return f"sqlite:///{Path(data_dir) / 'ledger.sqlite3'}"
    if not raw.startswith(SCHEMES):
        raise ConfigError(
            f"WANPOD_DATABASE_URL={redact(raw)!r} is not a database URL; allowed: "
            "sqlite:///path/to/ledger.sqlite3 or postgresql://user:password@host:port/database"
        )
    return raw


def redact(url: str) -> str:
    """`url` without its password (for messages)."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of a database URL that must be scrubbed from messages."""
    password = urlsplit(url).password if url.startswith(SCHEMES[1:]) else None
    return (password,) if password else ()


def open_database(url: str | Path) -> Database:
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(text)
    return SQLiteDatabase(Path(text.removeprefix("sqlite:///")) if "://" in text else Path(text))


class Database:
    """What the ledger needs of a database; `kind` is "sqlite" or "postgresql"."""

    kind = ""
    float_type = "REAL"

    def __init__(self) -> None:
        self._local = threading.local()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        raise NotImplementedError

    def columns(self, table: str) -> list[str]:
        cur = self._conn().execute(f"SELECT * FROM {table} LIMIT 0")
        return [d[0] for d in cur.description]

    def json_text(self, column: str, key: str) -> str:
        """SQL for the text value of `key` in the JSON object stored in `column`."""
        raise NotImplementedError

    def claim_where(self) -> str:
        """The WHERE clause of a lease claim: `id = ? AND (free or expired or ours)`, taken on
        PostgreSQL without waiting for a row another replica holds locked at this moment."""
        return "id = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)"

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        raise NotImplementedError
        yield self

    def _sql(self, sql: str) -> str:
        return sql

    def _conn(self) -> Any:
        raise NotImplementedError


class SQLiteDatabase(Database):
    """A SQLite file; this process's writers queue on one lock before SQLite's: SQLite's own
    wait (its busy handler) polls with growing sleeps and serves no one first, so with dozens of
    threads writing (64 submits and the tracker) one write waited seconds (measured: 64 threads
    x 20 transactions, longest wait 2.1 s without the lock, 0.3 s with it). Reads do not wait
    (WAL); another process writing the file still waits in SQLite's busy handler."""

    kind = "sqlite"
    BUSY_S = 30.0  # how long a statement waits for another writer before "database is locked"
    RETRY_S = 0.01  # between tries of the switch to WAL (a few per start, when at all)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._writer = threading.RLock()  # a transaction's own statements take it again
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._use_wal()

    def _use_wal(self) -> None:
        """Switch the file to WAL (it stays so). SQLite answers "database is locked" at once,
        without its busy handler, while another connection is switching a new file (two studios,
        or a studio's threads, opening it together: measured 10 in 200 starts of 6), so it is
        tried again until BUSY_S, as any other statement would wait."""
        deadline = time.monotonic() + self.BUSY_S
        while True:
            try:
                self._conn().execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(self.RETRY_S)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.BUSY_S, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(self.BUSY_S * 1000)}")
            self._local.conn = conn
        return conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        if sql.lstrip()[:6].upper() == "SELECT":  # a read: WAL lets it run beside a write
            return self._run(sql, args)
        with self._writer:
            return self._run(sql, args)

    def _run(self, sql: str, args: Sequence[Any]) -> Result:
        cur = self._conn().execute(sql, tuple(args))
        rows = [dict(r) for r in cur.fetchall()] if cur.description else []
        return Result(rows, cur.rowcount)

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        conn = self._conn()
        with self._writer:
            conn.execute("BEGIN IMMEDIATE")  # one writer: a second studio waits here
            try:
                yield self
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


class PostgresDatabase(Database):
    """Statements run on a small pool of connections (POOL_SIZE per studio, however many threads
    Gradio runs): a server's max_connections is shared by every replica."""

    kind = "postgresql"
    float_type = "DOUBLE PRECISION"  # REAL is 4 bytes there: not enough for epoch seconds
    POOL_SIZE = 8  # each statement holds a connection for about a millisecond

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(self.POOL_SIZE)

    def _connect(self) -> Any:
        import psycopg  # only a PostgreSQL ledger needs the driver
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
        except psycopg.OperationalError as exc:
            raise ConfigError(
                f"the ledger database {redact(self.url)} cannot be reached "
                f"({type(exc).__name__}); check WANPOD_DATABASE_URL"
            ) from None

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        pinned = getattr(self._local, "conn", None)  # inside transaction(): its connection
        if pinned is not None:
            yield pinned
            return
        self._slots.acquire()
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            if conn.closed:
                conn = self._connect()
            try:
                yield conn
            except Exception:
                if conn.info.transaction_status != 0:  # not idle: do not reuse it
                    conn.close()
                raise
            if not conn.closed:
                self._idle.put(conn)
        finally:
            self._slots.release()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        with self._borrow() as conn:
            cur = conn.execute(self._sql(sql), tuple(args) if args else None)
            rows = [dict(r) for r in cur.fetchall()] if cur.description else []
            return Result(rows, cur.rowcount)

    def columns(self, table: str) -> list[str]:
        with self._borrow() as conn:
            cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
            return [d[0] for d in cur.description]

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def json_text(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"

    def claim_where(self) -> str:
        free = "id = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)"
        return f"id = (SELECT id FROM jobs WHERE {free} FOR UPDATE SKIP LOCKED)"

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        with self._borrow() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            self._local.conn = conn  # this thread's statements join the transaction
            try:
                yield self
            finally:
                self._local.conn = None
