"""Where chains live: the `chains` table next to the jobs in the ledger's database.

A chain is a plan (the base form values, one prompt per segment, the colour-match switch) and
its state; its segments are ordinary job rows whose `chain` column names the chain id, the
segment index, the parent row and the start frame (app/studio/ledger.py). Nothing here queues
anything: the tracker's end-of-job hook sends the next segment (app/studio/chains.py).

Schema: the ledger's step 5 (app/studio/migrations.py: the `chains` table and the jobs' `chain`
column). Statements go through the ledger's database (app/studio/db.py: SQLite or PostgreSQL).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.studio.ledger import Ledger

CHAIN_PREFIX = "ch-"  # a chain id; a job row id starts "wp-"
RUNNING, COMPLETED, CANCELLED, FAILED = "RUNNING", "COMPLETED", "CANCELLED", "FAILED"
CHAIN_STATES = (RUNNING, COMPLETED, CANCELLED, FAILED)

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
        self.db = ledger.db

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[ChainRow]:
        return [_row(r) for r in self.db.execute(sql, args).rows]

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
        self.db.execute(
            'INSERT INTO chains (id, kind, created_at, updated_at, state, "user", parent, plan,'
            " quote) VALUES (?,?,?,?,?,?,?,?,?)",
            (cid, kind, now, now, RUNNING, user, parent, json.dumps(plan), json.dumps(quote)),
        )
        return cid

    def update(self, cid: str, **fields: Any) -> None:
        self._set(cid, fields)

    def stop(self, cid: str, state: str, error: str) -> bool:
        """Set a chain that has not ended to `state` (CANCELLED) in one conditional write: a
        chain that ended meanwhile (its last segment stored, its video stitched) keeps its
        end. True when it was set."""
        return self._set(cid, {"state": state, "error": error}, unfinished=True)

    def finish(self, cid: str, **fields: Any) -> bool:
        """Write the chain's end (`fields`, `finished_at` now) in one conditional write: a
        chain another replica ended meanwhile (it carried the chain on while this one was
        stopped or frozen) keeps that end. True when written."""
        return self._set(cid, {**fields, "finished_at": time.time()}, unfinished=True)

    def _set(self, cid: str, fields: dict[str, Any], unfinished: bool = False) -> bool:
        """One UPDATE of `fields` (and `updated_at`); `unfinished`: only while the chain has
        not ended. True when a row was written."""
        cols = [f'"{k}"=?' for k in fields] + ["updated_at=?"]
        values = [json.dumps(v) if k in _JSON else v for k, v in fields.items()]
        sql = f"UPDATE chains SET {', '.join(cols)} WHERE id=?"
        sql += " AND finished_at IS NULL" if unfinished else ""
        return self.db.execute(sql, (*values, time.time(), cid)).rowcount == 1

    def get(self, cid: str) -> ChainRow | None:
        rows = self._rows("SELECT * FROM chains WHERE id=?", (cid,))
        return rows[0] if rows else None

    def unfinished(self) -> list[ChainRow]:
        """Chains whose video is not stitched yet: what a starting studio carries on."""
        return self._rows("SELECT * FROM chains WHERE finished_at IS NULL ORDER BY created_at")

    def recent(self, limit: int = 20) -> list[ChainRow]:
        return self._rows("SELECT * FROM chains ORDER BY created_at DESC LIMIT ?", (limit,))

    def segment_ids(self, cid: str) -> list[str]:
        """The chain's own job rows, in segment order."""
        chain_id = self.db.json_text("chain", "id")
        index = self.db.json_text("chain", "index")
        sql = f"SELECT id FROM jobs WHERE {chain_id} = ? ORDER BY CAST({index} AS INTEGER)"
        return [r["id"] for r in self.db.execute(sql, (cid,)).rows]


def _row(row: dict[str, Any]) -> ChainRow:
    data = dict(row)
    for name in _JSON:
        if data.get(name) is not None:
            data[name] = json.loads(data[name])
    if data.get("remuxed") is not None:
        data["remuxed"] = bool(data["remuxed"])
    return ChainRow(**data)
