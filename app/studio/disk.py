"""The data folder's health: is it writable, and is an error a full disk? No Gradio.

A full data disk used to leave a job IN_PROGRESS with a hanging page and every new submit saying
"internal error (OperationalError)". Now:
- `full(exc)`: True for an error that means the data folder cannot take more bytes (ENOSPC,
  EDQUOT, EROFS; SQLite's "database or disk is full" / "disk I/O error" / read-only database).
- `probe(folder)`: writes and syncs PROBE_BYTES in `folder` and removes them; the reason it could
  not (None: writable). `Probe(folder).refuse_if_full()` raises DiskFull with what to do;
  Studio.submit calls it before anything is written or sent, so no job starts that could not be
  stored. A writable verdict holds for WRITABLE_S (64 submits at once each wrote and synced
  256 KiB, one after another); a full one is probed again at the next submit (space that
  returns is seen at once), and a write that fails for want of space forgets the verdict.
The tracker keeps a COMPLETED job whose files could not be stored live and tries again every
RETRY_S (RunPod keeps the result until its retention ends), saying "disk full" on its page.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.errors import DiskFull

PROBE_BYTES = 256 * 1024  # a little more than a ledger row and its WAL page need
RETRY_S = 10.0  # how often a stored-result retry looks for space again
# how long a writable verdict holds: a disk fills over minutes, and the row written before /run
# is the last check (a failure there is "disk full", nothing sent)
WRITABLE_S = 5.0
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_SQLITE_FULL = ("disk is full", "disk i/o error", "readonly database", "read-only")


def full(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says the data folder cannot be written."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.OperationalError) and any(
            s in str(exc).lower() for s in _SQLITE_FULL
        ):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return False


def probe(folder: Path) -> str | None:
    """Why `folder` cannot take new data (None: it can)."""
    path = Path(folder) / ".wanpod-write-probe"
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    finally:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    return None


def message(folder: Path, why: str) -> str:
    return (
        f"disk full: the data folder {folder} cannot be written ({why}). New jobs are refused "
        "until space is freed; finished jobs wait at the endpoint and are stored when space "
        "returns."
    )


class Probe:
    """`folder`'s verdict for new jobs, probed at most once every WRITABLE_S while writable."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = Path(folder)
        self.clock = clock
        self._writable_until = float("-inf")
        self._lock = threading.Lock()  # one probe at a time; the others wait for its verdict

    def refuse_if_full(self) -> None:
        """Raise DiskFull when the folder cannot take a new job's data."""
        if self.clock() < self._writable_until:
            return
        with self._lock:
            if self.clock() < self._writable_until:
                return
            why = probe(self.folder)
            if why is not None:
                raise DiskFull(message(self.folder, why))
            self._writable_until = self.clock() + WRITABLE_S

    def forget(self) -> None:
        """A write failed for want of space: probe again at the next job."""
        self._writable_until = float("-inf")
