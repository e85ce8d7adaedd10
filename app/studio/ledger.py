"""The job ledger: one database row per job, written before /run is sent and updated until the end.

A row is created in state SUBMITTING (so a crash between /run and the answer is visible), gets the
RunPod job id the moment /run answers, and is then updated by the tracker (state, progress,
timings, result file, actual cost, error). Rows survive restarts: `live()` lists the jobs the
tracker must resume. A chain's segment (app/studio/chains.py) carries `chain`: its chain id,
index, parent row and the start frame it was sent with. The row keeps the recipe (template,
params, filled workflow, quote) so the history and "rerun" features can reuse it, and the
signed-in user who sent it (per-user budget).
Typed records go in and come out: what the user asked (`form`, a FormValues: reuse reads it back
as it was) next to what was sent (`params`, `workflow`), the `quote` (cost.Quote) and the actual
`cost` (cost.Actual). Rows written before the `form` column are given one once, by schema step 3
(app/studio/migrations.py, app/studio/reuse.py).
The database is WANPOD_DATABASE_URL's (app/studio/db.py): a SQLite file by default, PostgreSQL
for a ledger several studio replicas share; the same methods and tests run on both. The tracker's
lease (`claim`, `update_owned`, `release`) makes one replica follow each live job at a time;
/run's answer (`sent`) and the LOST of an abandoned submit (`abandon`) are conditional writes.

States: SUBMITTING, IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT, LOST
(SUBMITTING with no answer, or the endpoint no longer knows the job).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from app.endpoint.states import LIVE, JobState
from app.studio import migrations
from app.studio.cost import Actual, Quote
from app.studio.db import open_database
from app.studio.forms import FormValues

T = TypeVar("T")

LIVE_STATES = tuple(sorted(LIVE))  # for SQL: `state IN (...)`
IS_LIVE = f"state IN ({','.join('?' * len(LIVE_STATES))})"  # its arguments: LIVE_STATES

_JSON = ("params", "workflow", "quote", "progress", "outputs", "cost", "recipe", "form", "chain")
_LEASE = ("lease_owner", "lease_until", "webhook_digest")  # the tracker's, not in a JobRow
_RECORDS: dict[str, type] = {"quote": Quote, "cost": Actual, "form": FormValues}
# What a day's spend reads of a row (app/studio/checks/guardrails.py: `row_dollars`, `row_user`)
# besides the columns every JobRow needs: the budget check reads every row of the day at each
# submit, so `spend_since` reads only these (not the workflow, form, recipe, progress, outputs).
_SPEND = ("quote", "cost", "state", "execution_ms", "user", "params")


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


# the finished rows the cost model learns from, newest first (a LIMIT to bind)
_WITH_TIMING = (
    "WHERE state='COMPLETED' AND execution_ms IS NOT NULL ORDER BY finished_at DESC LIMIT ?"
)


@dataclass(frozen=True)
class Timing:
    """A COMPLETED row's executionTime and what the cost model keys it by (`Ledger.timings`)."""

    id: str
    template: str
    mode: str
    gpu: str
    execution_ms: int


class Ledger:
    """The job rows on `url` (a SQLite path, `sqlite:///path` or `postgresql://...`); the schema is
    migrated forward on open (app/studio/migrations.py). `forms` is the form catalog the one-time
    backfill of older rows reads (loaded from the catalog when not given and rows need it)."""

    def __init__(self, url: str | Path, forms: Mapping[str, Any] | None = None) -> None:
        self.db = open_database(url)
        self._forms = forms
        migrations.migrate(self.db, self._backfill_forms)
        self._without_workflow = _columns(self.db.columns("jobs"))
        required = [f.name for f in dataclasses.fields(JobRow) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]  # fmt: skip
        self._for_spend = _columns(dict.fromkeys([*required, *_SPEND]))

    def _backfill_forms(self) -> int:
        from app.studio.reuse import migrate_forms  # reuse reads JobRow from this module

        if not self.without_form():
            return 0
        if self._forms is None:
            from app.studio.forms_catalog import load_forms

            self._forms = load_forms()[0]
        return migrate_forms(self, self._forms)

    def _q(
        self, sql: str, args: Sequence[Any] = (), known: Mapping[str, JobRow] | None = None
    ) -> list[JobRow]:
        """The rows `sql` selects, decoded; a row in `known` with the same `updated_at` (read
        by the same query before: every change stamps it) is that row, not decoded again."""
        rows = self.db.execute(sql, args).rows
        if not known:
            return [_row(r) for r in rows]
        out = []
        for r in rows:
            held = known.get(r["id"])
            out.append(held if held is not None and held.updated_at == r["updated_at"] else _row(r))
        return out

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
        owner: str | None = None,
        lease_s: float = 0.0,
    ) -> str:
        """A new row in state SUBMITTING; returns the ledger id (not the RunPod job id). `owner`
        (a tracker's replica id) holds its lease for `lease_s`, so no other replica takes the row
        for an abandoned submission while /run is under way."""
        rid = "wp-" + uuid.uuid4().hex[:16]
        now = time.time()
        self.db.execute(
            "INSERT INTO jobs (id, created_at, updated_at, template, mode, params, workflow,"
            ' quote, gpu, state, "user", recipe, form, chain, lease_owner, lease_until)'
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                owner,
                now + lease_s if owner else None,
            ),
        )
        return rid

    def update(self, rid: str, **fields: Any) -> None:
        self._update(rid, None, fields)

    def update_owned(self, rid: str, owner: str, **fields: Any) -> bool:
        """`update` only while `owner` holds the lease of the row and the row is live (one
        conditional write); False when it does not, or the job has ended."""
        return self._update(rid, owner, fields)

    def _update(self, rid: str, owner: str | None, fields: Mapping[str, Any]) -> bool:
        if not fields:
            return True
        cols, values = [], []
        for name, value in fields.items():
            cols.append(f'"{name}"=?')
            values.append(_encode(value) if name in _JSON else value)
        cols.append("updated_at=?")
        values.append(time.time())
        where, args = ("id=?", [rid])
        if owner is not None:
            where, args = f"id=? AND lease_owner=? AND {IS_LIVE}", [rid, owner, *LIVE_STATES]
        sql = f"UPDATE jobs SET {', '.join(cols)} WHERE {where}"
        return self.db.execute(sql, (*values, *args)).rowcount == 1

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic step for what this thread reads and writes inside (every other writer of
        the ledger, in any replica, waits)."""
        with self.db.transaction():
            yield

    def atomic(self, fn: Callable[[], T]) -> T:
        """`fn()` as one atomic step, e.g. a budget check and the row it admits: its result,
        or its exception with nothing of it written. On SQLite it is committed together with
        the writes queued beside it (app/studio/db.py)."""
        return self.db.atomic(fn)

    @property
    def rollbacks(self) -> int:
        """How many writes this process rolled back so far (app/studio/db.py)."""
        return self.db.rollbacks

    # -- leases: one tracker per live job across replicas --------------------------------------
    def claim(self, rid: str, owner: str, lease_s: float) -> bool:
        """Take (or renew) the lease on row `rid` for `lease_s` seconds when it is free, expired
        or already `owner`'s and the row is live: one atomic conditional UPDATE. True when
        `owner` holds it now. A final row is nobody's: its `lease_owner` stays as the replica
        that ended it, but neither this nor `update_owned` matches a row no longer live, so
        another replica that read the row live just before gets nothing."""
        now = time.time()
        sql = f"UPDATE jobs SET lease_owner=?, lease_until=? WHERE {self.db.claim_where()}"
        sql += f" AND {IS_LIVE}"
        args = (owner, now + lease_s, rid, owner, now, *LIVE_STATES)
        return self.db.execute(sql, args).rowcount == 1

    def sent(self, rid: str, job_id: str, state: str, owner: str, lease_s: float) -> bool:
        """Record /run's answer on row `rid` (one conditional write): its RunPod job id and
        state, `owner`'s lease renewed for `lease_s`. A row its lease ran out on while /run
        was under way, marked LOST meanwhile (`abandon`), is live again: the job exists on the
        endpoint. False when the row already has a job id (nothing written)."""
        now = time.time()
        sql = (
            "UPDATE jobs SET job_id=?, state=?, submitted_at=?, finished_at=NULL, error=NULL,"
            " lease_owner=?, lease_until=?, updated_at=? WHERE id=? AND job_id IS NULL"
        )
        args = (job_id, state, now, owner, now + lease_s, now, rid)
        return self.db.execute(sql, args).rowcount == 1

    def abandon(self, rid: str, error: str) -> bool:
        """Mark LOST a live row that has no RunPod job id and whose lease ran out (its studio
        stopped between the row and /run's answer), in one conditional write: a row whose
        /run answer is recorded first, or whose submitting replica still holds it, is left as
        it is. True when it was marked."""
        now = time.time()
        sql = (
            "UPDATE jobs SET state=?, finished_at=?, error=?, lease_owner=NULL, lease_until=NULL,"
            f" updated_at=? WHERE id=? AND job_id IS NULL AND {IS_LIVE}"
            " AND (lease_owner IS NULL OR lease_until < ?)"
        )
        args = (JobState.LOST, now, error, now, rid, *LIVE_STATES, now)
        return self.db.execute(sql, args).rowcount == 1

    def release(self, owner: str) -> None:
        """Give up every lease `owner` holds (a replica stopping cleanly)."""
        self.db.execute(
            "UPDATE jobs SET lease_owner=NULL, lease_until=NULL WHERE lease_owner=?", (owner,)
        )

    def lease_owners(self) -> list[str]:
        """The owners of the leases on live rows that have not run out yet."""
        sql = (
            "SELECT DISTINCT lease_owner FROM jobs WHERE lease_owner IS NOT NULL"
            f" AND lease_until >= ? AND {IS_LIVE}"
        )
        rows = self.db.execute(sql, (time.time(), *LIVE_STATES)).rows
        return sorted(r["lease_owner"] for r in rows)

    def has_webhook(self, rid: str, digest: str) -> bool:
        """True while `digest` is the row's unused webhook secret (nothing written)."""
        sql = "SELECT id FROM jobs WHERE id=? AND webhook_digest=?"
        return self.db.execute(sql, (rid, digest)).one() is not None

    def take_webhook(self, rid: str, digest: str) -> bool:
        """True once for the row's webhook secret (atomic: the digest is cleared as it matches)."""
        sql = "UPDATE jobs SET webhook_digest=NULL WHERE id=? AND webhook_digest=?"
        return self.db.execute(sql, (rid, digest)).rowcount == 1

    # -- reading -------------------------------------------------------------------------------
    def get(self, rid: str, workflow: bool = True) -> JobRow | None:
        """The row `rid`; `workflow=False` leaves the (large) filled workflow unread ({}), for
        callers that read a live row at every update (`workflow(rid)` reads it alone)."""
        cols = "*" if workflow else self._without_workflow
        rows = self._q(f"SELECT {cols} FROM jobs WHERE id=?", (rid,))
        return rows[0] if rows else None

    def has_segment(self, cid: str, index: int) -> bool:
        """True when chain `cid` has a row for its segment `index` (app/studio/chains.py)."""
        chain_id, at = self.db.json_text("chain", "id"), self.db.json_text("chain", "index")
        sql = f"SELECT id FROM jobs WHERE {chain_id} = ? AND CAST({at} AS INTEGER) = ?"
        return self.db.execute(sql, (cid, int(index))).one() is not None

    def workflow(self, rid: str) -> dict[str, Any]:
        """The filled workflow a row was sent with ({} for an unknown row)."""
        row = self.db.execute("SELECT workflow FROM jobs WHERE id=?", (rid,)).one()
        return json.loads(row["workflow"]) if row else {}

    def live(self) -> list[JobRow]:
        """The rows not final yet, without their workflows (the tracker's scan reads them every
        few seconds and needs ids and states)."""
        sql = f"SELECT {self._without_workflow} FROM jobs WHERE {IS_LIVE}"
        return self._q(sql + " ORDER BY created_at", LIVE_STATES)

    def recent(self, limit: int = 20) -> list[JobRow]:
        return self._q("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))

    def search(
        self,
        text: str = "",
        template: str | None = None,
        states: tuple[str, ...] | None = None,
        limit: int = 48,
        user: str | None = None,
        workflow: bool = True,
        before: tuple[float, str] | None = None,
        whole_chains: bool = False,
    ) -> list[JobRow]:
        """Newest first, filtered: `text` is a case-insensitive substring of the prompt, of the
        row id or of its chain's id, `template` an exact template id, `states` the allowed
        states (None: all), `user` the user who sent it (None: every user's). `workflow=False`:
        as in `get`. `before`: the rows after the row with that (created_at, id) in this order
        (the next page). `whole_chains`: `template` and `states` left to the caller for a
        chain's segments, which are listed as their chain (app/studio/chain_history.py)."""
        where: list[str] = []
        args: list[Any] = []
        if user is not None:
            where.append('"user" = ?')  # quoted: `user` is a reserved word in PostgreSQL
            args.append(user)
        text = text.replace("\0", "")  # no prompt holds one (refused), and PostgreSQL refuses it
        if text.strip():
            like = "%" + text.strip().lower().replace("\\", "\\\\").replace("%", "\\%")
            like = like.replace("_", "\\_") + "%"
            prompt = self.db.json_text("params", "prompt")
            chain = self.db.json_text("chain", "id")
            where.append(
                f"(lower(coalesce({prompt}, '')) LIKE ? ESCAPE '\\'"
                " OR lower(id) LIKE ? ESCAPE '\\'"
                f" OR lower(coalesce({chain}, '')) LIKE ? ESCAPE '\\')"
            )
            args += [like, like, like]
        kept: list[str] = []
        if template:
            kept.append("template = ?")
            args.append(template)
        if states is not None:
            kept.append(f"state IN ({','.join('?' * len(states)) or 'NULL'})")
            args += list(states)
        if kept and whole_chains:
            where.append(f"(chain IS NOT NULL OR ({' AND '.join(kept)}))")
        else:
            where += kept
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [before[0], before[0], before[1]]
        cols = "*" if workflow else self._without_workflow
        sql = f"SELECT {cols} FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        return self._q(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", (*args, limit))

    def since(self, ts: float) -> list[JobRow]:
        """Rows created at or after `ts` (epoch seconds), whole. The budgets read `spend_since`."""
        return self._q("SELECT * FROM jobs WHERE created_at >= ? ORDER BY created_at", (ts,))

    def spend_since(
        self,
        ts: float,
        updated_after: float | None = None,
        known: Mapping[str, JobRow] | None = None,
    ) -> list[JobRow]:
        """Rows created at or after `ts` with what their spend needs (`_SPEND`) and the columns
        every JobRow has; the rest left at their defaults. `updated_after`: only the rows
        updated at or after it (app/studio/checks/today.py reads the day's changes); `known`:
        rows an earlier call gave, reused where unchanged (not decoded again)."""
        sql = f"SELECT {self._for_spend} FROM jobs WHERE created_at >= ?"
        if updated_after is None:
            return self._q(sql + " ORDER BY created_at", (ts,), known)
        sql += " AND updated_at >= ? ORDER BY created_at"
        return self._q(sql, (ts, updated_after), known)

    def without_form(self) -> list[JobRow]:
        """Rows stored before the `form` column (for the one-time migration)."""
        return self._q("SELECT * FROM jobs WHERE form IS NULL")

    def timings(self, limit: int = 500) -> list[Timing]:
        """`finished_with_timing`'s rows as the calibration reads them: the few columns it
        needs, nothing decoded (it is read again after every job's end)."""
        sql = f"SELECT id, template, mode, gpu, execution_ms FROM jobs {_WITH_TIMING}"
        return [Timing(**r) for r in self.db.execute(sql, (limit,)).rows]

    def finished_with_timing(self, limit: int = 500) -> list[JobRow]:
        """COMPLETED jobs with an executionTime, newest first: what the cost model learns
        from."""
        return self._q(f"SELECT * FROM jobs {_WITH_TIMING}", (limit,))


def _columns(names: Iterable[str]) -> str:
    """A SELECT list of `names`, the filled workflow left unread ({})."""
    return ", ".join("'{}' AS workflow" if n == "workflow" else f'"{n}"' for n in names)


def _row(data: dict[str, Any]) -> JobRow:
    data = dict(data)
    for name in _LEASE:
        data.pop(name, None)
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
    names = _field_names(kind)
    return kind(**{k: v for k, v in data.items() if k in names})


@functools.cache
def _field_names(kind: Any) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(kind))
