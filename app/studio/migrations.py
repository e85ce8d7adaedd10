"""The ledger's schema versions, migrated forward on start (SQLite and PostgreSQL alike).

The database keeps its version in `schema_version` (one row). `migrate(db)` applies every step
above it in order, in one transaction under the database's migration lock (two replicas starting
at once migrate one after the other; the second finds nothing left to do). A ledger written before
versions existed (a `jobs` table, no `schema_version`) is version 0: step 1 creates what is missing
and adds the columns older studios did not have. Add a step at the end; never edit a released one.

1. the jobs table (columns of the studio before versions existed, added where missing)
2. the tracker's lease: `lease_owner`, `lease_until` (one replica follows a live job at a time)
3. the form values of rows stored before the ledger kept them (app/studio/reuse.py, once)
4. `webhook_digest`: the SHA-256 of a job's webhook secret until its webhook is used
5. chains (app/studio/chain_store.py): the jobs' `chain` column and the `chains` table
6. rows a tracker once left in state UNKNOWN (a /status answer without a status was written as
   one, which nothing follows): live again, so the tracker asks RunPod where they are
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.studio.db import Database

# (name, SQL type); REAL becomes the dialect's float type. "user" is quoted: reserved in PostgreSQL.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "TEXT PRIMARY KEY"),
    ("job_id", "TEXT"),
    ("created_at", "REAL NOT NULL"),
    ("updated_at", "REAL NOT NULL"),
    ("submitted_at", "REAL"),
    ("finished_at", "REAL"),
    ("template", "TEXT NOT NULL"),
    ("mode", "TEXT NOT NULL"),
    ("params", "TEXT NOT NULL"),
    ("workflow", "TEXT NOT NULL"),
    ("quote", "TEXT NOT NULL"),
    ("gpu", "TEXT NOT NULL"),
    ("state", "TEXT NOT NULL"),
    ("progress", "TEXT"),
    ("delay_ms", "BIGINT"),
    ("execution_ms", "BIGINT"),
    ("worker_id", "TEXT"),
    ("result_path", "TEXT"),
    ("result_mime", "TEXT"),
    ("outputs", "TEXT"),
    ("cost", "TEXT"),
    ("error", "TEXT"),
    ("completed_seen_at", "REAL"),
    ("stored_at", "REAL"),
    ("user", "TEXT"),
    ("recipe", "TEXT"),
    ("form", "TEXT"),
)
FormBackfill = Callable[[], int]


def _type(db: Database, sql_type: str) -> str:
    return sql_type.replace("REAL", db.float_type)


def _v1_jobs(db: Database, backfill: FormBackfill) -> None:
    cols = ", ".join(f'"{name}" {_type(db, t)}' for name, t in COLUMNS)
    db.execute(f"CREATE TABLE IF NOT EXISTS jobs ({cols})")
    have = set(db.columns("jobs"))
    for name, sql_type in COLUMNS:  # ledgers of studios before these columns
        if name not in have:
            db.execute(f'ALTER TABLE jobs ADD COLUMN "{name}" {_type(db, sql_type)}')
    db.execute("CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state)")
    db.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at)")


def _v2_leases(db: Database, backfill: FormBackfill) -> None:
    db.execute("ALTER TABLE jobs ADD COLUMN lease_owner TEXT")
    db.execute(f"ALTER TABLE jobs ADD COLUMN lease_until {db.float_type}")


def _v3_forms(db: Database, backfill: FormBackfill) -> None:
    backfill()


def _v4_webhooks(db: Database, backfill: FormBackfill) -> None:
    db.execute("ALTER TABLE jobs ADD COLUMN webhook_digest TEXT")


CHAIN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "TEXT PRIMARY KEY"),
    ("kind", "TEXT NOT NULL"),
    ("created_at", "REAL NOT NULL"),
    ("updated_at", "REAL NOT NULL"),
    ("finished_at", "REAL"),
    ("state", "TEXT NOT NULL"),
    ("user", "TEXT"),
    ("parent", "TEXT"),
    ("plan", "TEXT NOT NULL"),
    ("quote", "TEXT"),
    ("result_path", "TEXT"),
    ("frames", "INTEGER"),
    ("remuxed", "INTEGER"),
    ("error", "TEXT"),
)


def _v5_chains(db: Database, backfill: FormBackfill) -> None:
    if "chain" not in db.columns("jobs"):  # ledgers of the chains branch had it before step 5
        db.execute("ALTER TABLE jobs ADD COLUMN chain TEXT")
    cols = ", ".join(f'"{name}" {_type(db, t)}' for name, t in CHAIN_COLUMNS)
    db.execute(f"CREATE TABLE IF NOT EXISTS chains ({cols})")
    db.execute("CREATE INDEX IF NOT EXISTS chains_state ON chains(state)")


def _v6_unknown_states(db: Database, backfill: FormBackfill) -> None:
    db.execute(
        "UPDATE jobs SET state='IN_PROGRESS', updated_at=? WHERE state='UNKNOWN'"
        " AND job_id IS NOT NULL",
        (time.time(),),
    )


STEPS: tuple[Callable[[Database, FormBackfill], None], ...] = (
    _v1_jobs,
    _v2_leases,
    _v3_forms,
    _v4_webhooks,
    _v5_chains,
    _v6_unknown_states,
)
LATEST = len(STEPS)


def version(db: Database) -> int:
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT max(version) AS v FROM schema_version").one()
    return int(row["v"]) if row and row["v"] is not None else 0


def migrate(db: Database, backfill: FormBackfill) -> int:
    """Bring the database to LATEST; returns the version it was at."""
    with db.transaction():
        start = version(db)
        for number, step in enumerate(STEPS[start:], start + 1):
            step(db, backfill)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    return start
