"""Where chains live: the `chains` table next to the jobs in the ledger's SQLite file.

A chain is a plan (the base form values, one prompt per segment, the colour-match switch) and
its state; its segments are ordinary job rows whose `chain` column names the chain id, the
segment index, the parent row and the start frame (app/studio/ledger.py). Nothing here queues
anything: the tracker's end-of-job hook sends the next segment (app/studio/chains.py).

Schema change, one forward step (for the ledger's migrations): `ALTER TABLE jobs ADD COLUMN chain
TEXT` (done by Ledger) and `CHAINS_SCHEMA` below. It uses the ledger's connections (one per
thread, WAL mode).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.studio.ledger import Ledger

CHAIN_PREFIX = "ch-"  # a chain id; a job row id starts "wp-"
RUNNING, COMPLETED, CANCELLED, FAILED = "RUNNING", "COMPLETED", "CANCELLED", "FAILED"
CHAIN_STATES = (RUNNING, COMPLETED, CANCELLED, FAILED)

CHAINS_SCHEMA = """
CREATE TABLE IF NOT EXISTS chains (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    state TEXT NOT NULL,
    user TEXT,
    parent TEXT,
    plan TEXT NOT NULL,
    quote TEXT,
    result_path TEXT,
    frames INTEGER,
    remuxed INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS chains_state ON chains(state);
"""
_JSON = ("plan", "quote")


@dataclass(frozen=True)
class ChainRow:
    id: str
    kind: str  # "storyboard" | "extend"
    created_at: float
    updated_at: float
    state: str
    plan: dict[str, Any]
    finished_at: float | None = None
    user: str | None = None
    parent: str | None = None  # what an Extend continues: a job (its segment 0) or a chain
    quote: dict[str, Any] | None = None
    result_path: str | None = None
    frames: int | None = None
    remuxed: bool | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Segments in the finished chain (an Extend's earlier segments included)."""
        return len(self.plan.get("prompts", ())) + len(self.plan.get("done", ()))


class ChainStore:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._conn().executescript(CHAINS_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self.ledger.connection()

    def create(
        self,
        kind: str,
        plan: dict[str, Any],
        quote: dict[str, Any] | None,
        user: str | None,
        parent: str | None = None,
    ) -> str:
        cid = CHAIN_PREFIX + uuid.uuid4().hex[:14]
        now = time.time()
        self._conn().execute(
            "INSERT INTO chains (id, kind, created_at, updated_at, state, user, parent, plan,"
            " quote) VALUES (?,?,?,?,?,?,?,?,?)",
            (cid, kind, now, now, RUNNING, user, parent, json.dumps(plan), json.dumps(quote)),
        )
        return cid

    def update(self, cid: str, **fields: Any) -> None:
        cols = [f"{k}=?" for k in fields] + ["updated_at=?"]
        values = [json.dumps(v) if k in _JSON else v for k, v in fields.items()]
        sql = f"UPDATE chains SET {', '.join(cols)} WHERE id=?"
        self._conn().execute(sql, (*values, time.time(), cid))

    def get(self, cid: str) -> ChainRow | None:
        row = self._conn().execute("SELECT * FROM chains WHERE id=?", (cid,)).fetchone()
        return _row(row) if row else None

    def unfinished(self) -> list[ChainRow]:
        """Chains whose video is not stitched yet: what a starting studio carries on."""
        rows = (
            self._conn()
            .execute("SELECT * FROM chains WHERE finished_at IS NULL ORDER BY created_at")
            .fetchall()
        )
        return [_row(r) for r in rows]

    def recent(self, limit: int = 20) -> list[ChainRow]:
        rows = (
            self._conn()
            .execute("SELECT * FROM chains ORDER BY created_at DESC LIMIT ?", (limit,))
            .fetchall()
        )
        return [_row(r) for r in rows]

    def segment_ids(self, cid: str) -> list[str]:
        """The chain's own job rows, in segment order."""
        rows = (
            self._conn()
            .execute(
                "SELECT id FROM jobs WHERE json_extract(chain, '$.id') = ?"
                " ORDER BY json_extract(chain, '$.index')",
                (cid,),
            )
            .fetchall()
        )
        return [r[0] for r in rows]


def _row(row: sqlite3.Row) -> ChainRow:
    data = dict(row)
    for name in _JSON:
        if data.get(name) is not None:
            data[name] = json.loads(data[name])
    if data.get("remuxed") is not None:
        data["remuxed"] = bool(data["remuxed"])
    return ChainRow(**data)
