"""The ledger file checked before the studio opens it: say what is wrong and what to do.

A damaged ledger used to crash start-up with a raw traceback (corrupt header) or start and then
answer every action "internal error (DatabaseError)" (random bytes mid-file); an emptied one
(zero bytes) silently reset today's spend, so the budgets forgot what had run. `check_ledger(path)`
raises LedgerDamaged naming the file, what is wrong and the ways out: restore the backup copy
(`<ledger>.bak`, written by `backup(path)` at every healthy start), or move the file aside to
start fresh (history and today's spend start from nothing: the budgets do not know what ran).
A missing file is a first start, not damage.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.errors import LedgerDamaged

HEADER = b"SQLite format 3\x00"


def backup_path(path: Path) -> Path:
    return Path(str(path) + ".bak")


def _damaged(path: Path, what: str) -> LedgerDamaged:
    bak = backup_path(path)
    restore = (
        f"restore the backup copy of the last healthy start: stop the studio, then "
        f"`cp {bak} {path}`"
        if bak.is_file()
        else f"restore it from your own backup (no backup copy {bak.name} exists yet)"
    )
    return LedgerDamaged(
        f"the ledger {path} {what}. It holds the job history and today's spend (the budgets "
        f"count it). To go on: {restore}; or, to start fresh, move it aside (`mv {path} "
        f"{path}.damaged`): the history then starts empty and today's budgets count from $0. "
        "Nothing was changed."
    )


def check_ledger(path: Path) -> None:
    """Raise LedgerDamaged when the ledger at `path` is empty, not SQLite, or fails SQLite's
    integrity check; a missing file passes (first start)."""
    path = Path(path)
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:
        raise _damaged(path, "is empty (0 bytes): today's spend would silently reset to $0")
    with path.open("rb") as fh:
        head = fh.read(len(HEADER))
    if head != HEADER:
        raise _damaged(path, "is not an SQLite database (its header is damaged)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, f"cannot be read ({exc})") from None
    problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        shown = "; ".join(problems[:3]) + more
        raise _damaged(path, f"fails SQLite's integrity check ({shown})")
    backup(path)


def backup(path: Path) -> None:
    """A consistent copy of a healthy ledger next to it (`<ledger>.bak`), via SQLite's backup
    API (safe while another process writes); best effort (a full disk skips it)."""
    try:
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(str(backup_path(path)) + ".tmp")
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        Path(str(backup_path(path)) + ".tmp").replace(backup_path(path))
    except (sqlite3.Error, OSError):
        Path(str(backup_path(path)) + ".tmp").unlink(missing_ok=True)
