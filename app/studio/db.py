"""The ledger's database behind one small interface: SQLite (a file, the default) or PostgreSQL.

`open_database(url)` takes `WANPOD_DATABASE_URL`: a path or `sqlite:///path` for a SQLite file (one
studio), `postgresql://user:password@host:port/db` for a ledger several studio replicas share.
Callers write SQL once, with `?` placeholders; the few places the two dialects differ are methods
here (`json_text`, `float_type`, `claim_where`). Every statement is its own atomic step;
`atomic(fn)` makes what `fn` reads and writes one atomic step, as if no other writer of the ledger
(in this process, another studio or another replica) ran meanwhile: e.g. a budget check with the
row it admits. `transaction()` does the same for a `with` block, holding the writer lock for it:
SQLite's BEGIN IMMEDIATE, PostgreSQL's transaction-scoped advisory lock. Migrations run in one
(replicas starting together migrate one after the other).

On SQLite, writes that arrive together are committed together (group commit, `SQLiteDatabase`).

PostgreSQL goes through psycopg 3 (the maintained successor of psycopg2, with its binary wheel: no
compiler or libpq headers needed in the image).
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from app.errors import ConfigError, LedgerUnreachable

T = TypeVar("T")

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


def _userinfo(url: str) -> tuple[str, str, str] | None:
    """`scheme://user:password@rest` as (scheme://user, password, rest), the password as
    written; None without one. The password runs to the LAST '@', as libpq reads it: a '#',
    '?' or '/' left unencoded in it ends urlsplit's netloc early (its password is then None,
    and the whole password was shown in clear)."""
    head, sep, after = url.partition("://")
    userinfo, at, rest = after.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (sep and at and colon and password):
        return None
    return f"{head}://{user}", password, rest


def redact(url: str) -> str:
    """`url` without its password (for messages)."""
    parts = _userinfo(url)
    return url if parts is None else f"{parts[0]}:***@{parts[2]}"


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of a database URL that must be scrubbed from messages (`userinfo_secrets`)."""
    return userinfo_secrets(url) if url.startswith(SCHEMES[1:]) else ()


def userinfo_secrets(url: str) -> tuple[str, ...]:
    """The password in any URL's `user:password@` (a database's, or a proxy's in
    RUNPOD_API_BASE), to be scrubbed from messages: as written and percent-decoded (a driver's
    message may quote either), also as urlsplit reads it where that differs."""
    parts = _userinfo(url)
    found = {parts[1]} if parts else set()
    found |= {p for p in (urlsplit(url).password,) if p}
    found |= {unquote(p) for p in found}
    return tuple(sorted(found, key=len, reverse=True))  # the longest first: none cut apart


def unavailable(exc: BaseException) -> bool:
    """The ledger could not be used for a moment (its server restarting or out of reach, the
    file locked past the busy timeout): what trying again later may cure, unlike a fault of the
    statement. A full disk is disk.full's."""
    if isinstance(exc, LedgerUnreachable):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "locked" in text or "disk i/o" in text or "unable to open" in text
    try:
        import psycopg
    except ImportError:  # only a PostgreSQL ledger needs the driver
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def open_database(url: str | Path) -> Database:
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(text)
    return SQLiteDatabase(Path(text.removeprefix("sqlite:///")) if "://" in text else Path(text))


class Database:
    """What the ledger needs of a database; `kind` is "sqlite" or "postgresql"."""

    kind = ""
    float_type = "REAL"
    rollbacks = 0  # SQLite counts them (SQLiteDatabase); each PostgreSQL step is its own

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

    def atomic(self, fn: Callable[[], T]) -> T:
        """`fn()` as one atomic step (its reads and writes through this database); its result,
        or its exception with nothing of it written."""
        with self.transaction():
            return fn()

    def _sql(self, sql: str) -> str:
        return sql

    def _conn(self) -> Any:
        raise NotImplementedError


def _lower(value: Any) -> Any:
    """SQL lower() as Python lowers text (every script), for the ledger's searches."""
    return value.lower() if isinstance(value, str) else value


GROUPED = ("INSERT", "UPDATE", "DELETE", "REPLACE")  # the writes committed with others (SQLite)


@dataclass(eq=False)
class _Write:
    """One caller's atomic step waiting for the writer lock (`SQLiteDatabase.atomic`)."""

    fn: Callable[[], Any]
    result: Any = None
    error: BaseException | None = None
    done: bool = False
    wake: threading.Event = field(default_factory=threading.Event)  # done, or to run the queue


class SQLiteDatabase(Database):
    """A SQLite file; this process's writers queue on one lock before SQLite's: SQLite's own
    wait (its busy handler) polls with growing sleeps and serves no one first, so with dozens of
    threads writing (64 submits and the tracker) one write waited seconds (measured: 64 threads
    x 20 transactions, longest wait 2.1 s without the lock, 0.3 s with it). Reads do not wait
    (WAL); another process writing the file still waits in SQLite's busy handler.

    Group commit: a write (`execute`) or an atomic step (`atomic`) is queued, and the thread
    that next holds the lock runs everything queued in one transaction, each step in a
    savepoint of its own, then commits once; each caller returns (or raises its own step's
    error) only after that commit. A commit waits for the disk (fsync: SQLite's default
    `synchronous=FULL` in WAL mode, kept so that a row written before /run survives a power
    loss), and under load that wait is what the lock was held for: in the 64-user bench each
    commit took ~4 ms inside the lock, two per submit (the row, then the RunPod id), and the
    submits' rows came one per ~8 ms (0.5 s for 64) while their other work was long done. A
    step that fails is rolled back to its savepoint, alone; a transaction that SQLite itself
    ends (e.g. the disk full) or a commit that fails fails every step of it (nothing of them
    was written), each caller getting that error. `rollbacks` counts rollbacks: a reader
    inside a step sees the uncommitted writes of the steps before it, and a cache of what it
    read (app/studio/checks/today.py) is read again after one."""

    kind = "sqlite"
    BUSY_S = 30.0  # how long a statement waits for another writer before "database is locked"
    RETRY_S = 0.01  # between tries of the switch to WAL (a few per start, when at all)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._writer = threading.Lock()  # held by the thread that runs the queued steps
        self._queued_lock = threading.Lock()  # guards _queued and _leading (held briefly)
        self._queued: list[_Write] = []
        self._leading = False  # a thread runs the queue, or has been woken to
        self.commits = 0  # transactions committed by this process's writers
        self.rollbacks = 0  # steps or transactions rolled back (see the class text)
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
            # SQLite's own lower() lowers ASCII only: a search for "école" missed "ÉCOLE"
            conn.create_function("lower", 1, _lower, deterministic=True)
            conn.execute(f"PRAGMA busy_timeout={int(self.BUSY_S * 1000)}")
            self._local.conn = conn
        return conn

    def _writing(self) -> bool:
        """This thread holds the writer lock in a transaction (its statements join it)."""
        return getattr(self._local, "writing", False)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        verb = sql.lstrip()[:7].upper().rstrip()
        if verb == "SELECT" or self._writing():  # a read (WAL: beside a write), or a
            return self._run(sql, args)  # statement of this thread's transaction
        if verb in GROUPED:
            return self.atomic(lambda: self._run(sql, args))
        with self._writer:  # e.g. PRAGMA wal_checkpoint or VACUUM: outside any transaction
            return self._run(sql, args)

    def _run(self, sql: str, args: Sequence[Any]) -> Result:
        cur = self._conn().execute(sql, tuple(args))
        rows = [dict(r) for r in cur.fetchall()] if cur.description else []
        return Result(rows, cur.rowcount)

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def queued(self) -> int:
        """How many steps wait to be run now."""
        with self._queued_lock:
            return len(self._queued)

    def atomic(self, fn: Callable[[], T]) -> T:
        if self._writing():  # inside this thread's transaction: a savepoint of it
            return self._savepoint(self._conn(), fn)
        step = _Write(fn)
        with self._queued_lock:
            self._queued.append(step)
            lead, self._leading = not self._leading, True
        if not lead:
            step.wake.wait()  # until its step is committed, or it is this thread's turn to lead
        if not step.done:
            try:
                with self._writer:
                    self._run_queued(step)
            finally:
                self._pass_on()
        if step.error is not None:
            raise step.error
        return step.result

    def _pass_on(self) -> None:
        """The queue's next step's thread runs what is queued now, if anything is."""
        with self._queued_lock:
            if self._queued:
                self._queued[0].wake.set()
            else:
                self._leading = False

    def _run_queued(self, own: _Write) -> None:
        """Run every queued step in one transaction and commit it (the writer lock held;
        `own`: this thread's step); each other step's thread is woken once it is done."""
        with self._queued_lock:
            steps, self._queued = self._queued, []
        conn = self._conn()
        self._local.writing = True
        try:
            conn.execute("BEGIN IMMEDIATE")  # one writer: a second studio waits here
            for step in steps:
                try:
                    step.result = self._savepoint(conn, step.fn)
                except Exception as exc:
                    step.error = exc
                    if not conn.in_transaction:  # SQLite ended the transaction itself
                        raise
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:  # nothing of these steps was written
            self._rollback(conn)
            for step in steps:
                step.result, step.error = None, step.error or exc
        except BaseException as exc:  # this thread is stopped: the others' steps go back
            self._rollback(conn)
            others = [step for step in steps if step is not own]
            for step in others:
                step.result, step.error = None, None
            with self._queued_lock:
                self._queued[:0] = others
            steps, own.result, own.error = [own], None, exc
            raise
        finally:
            self._local.writing = False
            for step in steps:
                step.done = True
                step.wake.set()

    def _savepoint(self, conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
        """`fn()` inside this thread's transaction, rolled back alone when it raises."""
        with self._step(conn):
            return fn()

    @contextmanager
    def _step(self, conn: sqlite3.Connection) -> Iterator[None]:
        """A savepoint of this thread's transaction: what runs inside is rolled back alone
        when it raises."""
        conn.execute("SAVEPOINT step")
        try:
            yield
        except BaseException:
            if conn.in_transaction:  # else SQLite ended the whole transaction itself
                self.rollbacks += 1
                conn.execute("ROLLBACK TO step")
                conn.execute("RELEASE step")
            raise
        conn.execute("RELEASE step")

    def _rollback(self, conn: sqlite3.Connection) -> None:
        self.rollbacks += 1
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # its transaction is gone either way
                conn.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        conn = self._conn()
        if self._writing():  # nested in this thread's transaction: a savepoint of it
            with self._step(conn):
                yield self
            return
        with self._writer:
            conn.execute("BEGIN IMMEDIATE")  # one writer: a second studio waits here
            self._local.writing = True
            try:
                yield self
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)  # a failed COMMIT too: the next one begins afresh
                raise
            finally:
                self._local.writing = False
            self.commits += 1


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
            raise LedgerUnreachable(
                f"the ledger database {redact(self.url)} cannot be reached "
                f"({type(exc).__name__}); check WANPOD_DATABASE_URL"
            ) from None
        except psycopg.Error as exc:  # the URL itself refused (a bad %-escape): its words may
            raise ConfigError(  # quote the password, so only the error's kind is said
                f"WANPOD_DATABASE_URL={redact(self.url)!r} cannot be used "
                f"({type(exc).__name__}); allowed: postgresql://user:password@host:port/database"
                ", special characters in the password percent-encoded (# as %23)"
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
        """One statement; on a pooled connection the server dropped (it restarted: every idle
        connection is dead then, and all are let go), once more on a new one, outside a
        transaction."""
        in_transaction = getattr(self._local, "conn", None) is not None
        for retry in (False, True):
            with self._borrow() as conn:
                try:
                    cur = conn.execute(self._sql(sql), tuple(args) if args else None)
                except Exception as exc:
                    if retry or in_transaction or not (unavailable(exc) and conn.broken):
                        raise
                    self._drop_idle()  # that one is closed, and left out of the pool
                    continue
                rows = [dict(r) for r in cur.fetchall()] if cur.description else []
                return Result(rows, cur.rowcount)
        raise AssertionError("unreachable")

    def _drop_idle(self) -> None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                conn.close()

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
