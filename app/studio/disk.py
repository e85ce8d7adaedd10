"""The data folder's health: is it writable, and is an error a full disk? No Gradio.

A full data disk used to leave a job IN_PROGRESS with a hanging page and every new submit saying
"internal error (OperationalError)". Now:
- `full(exc)`: True for an error that means the data folder cannot take more bytes (ENOSPC,
  EDQUOT, EROFS; SQLite's "database or disk is full" / "disk I/O error" / read-only database).
- `probe(folder)`: writes and syncs PROBE_BYTES in `folder` and removes them; the reason it could
  not (None: writable). `refuse_if_full(folder)` raises DiskFull with what to do; Studio.submit
  calls it before anything is written or sent, so no job starts that could not be stored.
The tracker keeps a COMPLETED job whose files could not be stored live and tries again every
RETRY_S (RunPod keeps the result until its retention ends), saying "disk full" on its page.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

from app.errors import DiskFull

PROBE_BYTES = 256 * 1024  # a little more than a ledger row and its WAL page need
RETRY_S = 10.0  # how often a stored-result retry looks for space again
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


def refuse_if_full(folder: Path) -> None:
    why = probe(folder)
    if why is not None:
        raise DiskFull(message(folder, why))
