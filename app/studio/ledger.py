"""The job ledger: one SQLite row per job, written before /run is sent and updated until the end.

A row is created in state SUBMITTING (so a crash between /run and the answer is visible), gets the
RunPod job id the moment /run answers, and is then updated by the tracker (state, progress,
timings, result file, actual cost, error). Rows survive restarts: `live()` lists the jobs the
tracker must resume. A chain's segment (app/studio/chains.py) carries `chain`: its chain id,
index, parent row and the start frame it was sent with. The row keeps the recipe (template,
params, filled workflow, quote) so the history and "rerun" features can reuse it, and the
signed-in user who sent it (per-user budget).
Typed records go in and come out: what the user asked (`form`, a FormValues: reuse reads it back
as it was) next to what was sent (`params`, `workflow`), the `quote` (cost.Quote) and the actual
`cost` (cost.Actual). Rows written before the `form` column are given one once by
`Studio.migrate_forms()` (app/studio/reuse.py). Thread-safe: one connection per thread, WAL mode.

States: SUBMITTING, IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT, LOST
(SUBMITTING with no answer, or the endpoint no longer knows the job).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.endpoint.states import LIVE, JobState
from app.studio.cost import Actual, Quote
from app.studio.forms import FormValues

LIVE_STATES = tuple(sorted(LIVE))  # for SQL: `state IN (...)`

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    job_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    submitted_at REAL,
    finished_at REAL,
    template TEXT NOT NULL,
    mode TEXT NOT NULL,
    params TEXT NOT NULL,
    workflow TEXT NOT NULL,
    quote TEXT NOT NULL,
    gpu TEXT NOT NULL,
    state TEXT NOT NULL,
    progress TEXT,
    delay_ms INTEGER,
    execution_ms INTEGER,
    worker_id TEXT,
    result_path TEXT,
    result_mime TEXT,
    outputs TEXT,
    cost TEXT,
    error TEXT,
    completed_seen_at REAL,
    stored_at REAL,
    user TEXT,
    recipe TEXT,
    form TEXT,
    chain TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
"""

_JSON = ("params", "workflow", "quote", "progress", "outputs", "cost", "recipe", "form", "chain")
_RECORDS: dict[str, type] = {"quote": Quote, "cost": Actual, "form": FormValues}


@dataclass(frozen=True)
class JobRow:
    id: str
    job_id: str | None
    created_at: float
    updated_at: float
    submitted_at: float | None
    finished_at: float | None
    template: str
    mode: str
    params: dict[str, Any]
    workflow: dict[str, Any]
    quote: Quote | None
    gpu: str
    state: JobState
    progress: dict[str, Any] | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None
    worker_id: str | None = None
    result_path: str | None = None
    result_mime: str | None = None
    outputs: list[Any] | None = None
    cost: Actual | None = None
    error: str | None = None
    completed_seen_at: float | None = None
    stored_at: float | None = None
    user: str | None = None  # the signed-in user (APP_AUTH) who submitted it
    recipe: dict[str, Any] | None = None  # template version, seed, worker's ComfyUI version
    form: FormValues | None = None  # what the user asked (None: not sent from the form)
    chain: dict[str, Any] | None = None  # a chain's segment: id, index, parent, start_frame
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.state.live

    @property
    def final(self) -> bool:
        return self.state.final


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript(_SCHEMA)
            cols = {r[1] for r in c.execute("PRAGMA table_info(jobs)").fetchall()}
            for col in ("user", "recipe", "form", "chain"):  # ledgers written before these columns
                if col not in cols:
                    c.execute(f"ALTER TABLE jobs ADD COLUMN {col} TEXT")
            names = [r[1] for r in c.execute("PRAGMA table_info(jobs)").fetchall()]
        self._without_workflow = ", ".join(
            "'{}' AS workflow" if name == "workflow" else f'"{name}"' for name in names
        )

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        yield conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE: other writers, in this process or another,
        wait): what is read and written inside, on this thread, is one atomic step. Used to check
        the budget against today's rows and write the new row together."""
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for stores that keep their tables in the ledger's file
        (app/studio/chain_store.py)."""
        with self._conn() as c:
            return c

    def create(
        self,
        *,
        template: str,
        mode: str,
        params: Mapping[str, Any],
        workflow: Mapping[str, Any],
        quote: Quote | None,
        gpu: str,
        user: str | None = None,
        recipe: Mapping[str, Any] | None = None,
        form: FormValues | None = None,
        chain: Mapping[str, Any] | None = None,
    ) -> str:
        """A new row in state SUBMITTING; returns the ledger id (not the RunPod job id)."""
        rid = "wp-" + uuid.uuid4().hex[:16]
        now = time.time()
        with self._conn() as c:
            c.execute(
                "INSERT INTO jobs (id, created_at, updated_at, template, mode, params, workflow,"
                " quote, gpu, state, user, recipe, form, chain)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rid,
                    now,
                    now,
                    template,
                    mode,
                    json.dumps(dict(params), default=str),
                    json.dumps(dict(workflow)),
                    _encode(quote) or "{}",  # NOT NULL in older ledgers: {} is no quote
                    gpu,
                    JobState.SUBMITTING,
                    user,
                    json.dumps(dict(recipe)) if recipe is not None else None,
                    _encode(form),
                    _encode(chain),
                ),
            )
        return rid

    def update(self, rid: str, **fields: Any) -> None:
        if not fields:
            return
        cols, values = [], []
        for name, value in fields.items():
            cols.append(f"{name}=?")
            values.append(_encode(value) if name in _JSON else value)
        cols.append("updated_at=?")
        values.append(time.time())
        with self._conn() as c:
            c.execute(f"UPDATE jobs SET {', '.join(cols)} WHERE id=?", (*values, rid))

    def get(self, rid: str, workflow: bool = True) -> JobRow | None:
        """The row `rid`; `workflow=False` leaves the (large) filled workflow unread ({}), for
        callers that read a live row at every update (`workflow(rid)` reads it alone)."""
        cols = "*" if workflow else self._without_workflow
        with self._conn() as c:
            row = c.execute(f"SELECT {cols} FROM jobs WHERE id=?", (rid,)).fetchone()
        return _row(row) if row else None

    def workflow(self, rid: str) -> dict[str, Any]:
        """The filled workflow a row was sent with ({} for an unknown row)."""
        with self._conn() as c:
            row = c.execute("SELECT workflow FROM jobs WHERE id=?", (rid,)).fetchone()
        return json.loads(row[0]) if row else {}

    def live(self) -> list[JobRow]:
        marks = ",".join("?" * len(LIVE_STATES))
        with self._conn() as c:
            rows = c.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY created_at", LIVE_STATES
            ).fetchall()
        return [_row(r) for r in rows]

    def recent(self, limit: int = 20) -> list[JobRow]:
        with self._conn() as c:
            rows = c.execute(
                "SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_row(r) for r in rows]

    def search(
        self,
        text: str = "",
        template: str | None = None,
        states: tuple[str, ...] | None = None,
        limit: int = 48,
    ) -> list[JobRow]:
        """Newest first, filtered: `text` is a case-insensitive substring of the prompt or of the
        row id, `template` an exact template id, `states` the allowed states (None: all)."""
        where, args = [], []
        if text.strip():
            like = "%" + text.strip().lower().replace("\\", "\\\\").replace("%", "\\%")
            like = like.replace("_", "\\_") + "%"
            where.append(
                "(lower(coalesce(json_extract(params, '$.prompt'), '')) LIKE ? ESCAPE '\\'"
                " OR lower(id) LIKE ? ESCAPE '\\')"
            )
            args += [like, like]
        if template:
            where.append("template = ?")
            args.append(template)
        if states is not None:
            where.append(f"state IN ({','.join('?' * len(states)) or 'NULL'})")
            args += list(states)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._conn() as c:
            rows = c.execute(sql + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        return [_row(r) for r in rows]

    def since(self, ts: float) -> list[JobRow]:
        """Rows created at or after `ts` (epoch seconds): today's spend for the budgets."""
        with self._conn() as c:
            rows = c.execute(
                "SELECT * FROM jobs WHERE created_at >= ? ORDER BY created_at", (ts,)
            ).fetchall()
        return [_row(r) for r in rows]

    def without_form(self) -> list[JobRow]:
        """Rows stored before the `form` column (for the one-time migration)."""
        with self._conn() as c:
            rows = c.execute("SELECT * FROM jobs WHERE form IS NULL").fetchall()
        return [_row(r) for r in rows]

    def finished_with_timing(self, limit: int = 500) -> list[JobRow]:
        """COMPLETED jobs with an executionTime: what the cost model learns from."""
        with self._conn() as c:
            rows = c.execute(
                "SELECT * FROM jobs WHERE state='COMPLETED' AND execution_ms IS NOT NULL"
                " ORDER BY finished_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row(r) for r in rows]


def _row(row: sqlite3.Row) -> JobRow:
    data = dict(row)
    for name in _JSON:
        if data.get(name) is not None:
            data[name] = json.loads(data[name])
    for name, kind in _RECORDS.items():
        data[name] = _record(kind, data.get(name))
    data["state"] = JobState.parse(data["state"])
    return JobRow(**data)


def _encode(value: Any) -> str | None:
    """JSON for a column: a typed record as its fields."""
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, default=str)


def _record(kind: Any, data: Mapping[str, Any] | None) -> Any:
    """A stored record back as `kind` (None when nothing was stored; unknown keys ignored)."""
    if not data:
        return None
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in names})
