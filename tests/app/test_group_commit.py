"""Group commit on a SQLite ledger (app/studio/db.py): writes queued while another holds the
writer are committed in one transaction; each caller returns only once its write is committed,
and gets its own step's error; a transaction SQLite ends fails every step of it; the budgets'
cache of today's rows is read again after a rollback."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from app.studio.checks.today import TodayRows
from app.studio.cost import Quote
from app.studio.ledger import Ledger
from tests.helpers import wait_for

QUOTE = Quote(gpu="H100 PRO", per_s=0.00116, execution_s=60.0, dollars=0.0696)


def _create(ledger: Ledger, prompt: str) -> str:
    return ledger.create(template="t2v_14b", mode="turbo", params={"prompt": prompt},
                         workflow={}, quote=QUOTE, gpu="H100 PRO")  # fmt: skip


def _committed(path: Path, rid: str) -> dict | None:
    """Row `rid` as another connection (another studio) sees it: only what is committed."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM jobs WHERE id=?", (rid,)).fetchone()
    return dict(row) if row else None


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")


def queued_behind_a_writer(ledger: Ledger, calls: list[Callable[[], object]]) -> list[object]:
    """Run each of `calls` in a thread of its own while this thread holds the writer lock (a
    transaction), let go once all of them are queued; what each returned or raised. They are
    queued in their order: each thread starts once the one before it is queued (threads
    started together reach the queue in any order on a busy machine)."""
    out: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with ledger.transaction():
        for i, t in enumerate(threads, 1):
            t.start()
            wait_for(lambda i=i: ledger.db.queued() == i, what=f"write {i} queued")
    for t in threads:
        t.join(30)
    return out


def test_writes_queued_together_are_committed_together_and_each_caller_sees_its_own(ledger):
    rids = [_create(ledger, f"job {i}") for i in range(16)]
    path = ledger.db.path
    seen: dict[str, object] = {}

    def update(rid: str) -> Callable[[], object]:
        def call() -> object:
            ledger.update(rid, job_id=f"job-of-{rid}")
            seen[rid] = (_committed(path, rid) or {}).get("job_id")  # when the call returns
            return rid

        return call

    commits = ledger.db.commits
    assert queued_behind_a_writer(ledger, [update(r) for r in rids]) == rids
    # one transaction for the test's own, one for all 16 writes
    assert ledger.db.commits == commits + 2
    assert seen == {r: f"job-of-{r}" for r in rids}


def test_a_step_that_fails_is_rolled_back_alone_and_its_caller_gets_its_error(ledger):
    def step(prompt: str, fail: bool = False) -> Callable[[], object]:
        def fn() -> str:
            rid = _create(ledger, prompt)
            if fail:
                raise ValueError(f"{prompt} refused after its row was written")
            return rid

        return lambda: ledger.atomic(fn)

    commits = ledger.db.commits
    first, refused, last = queued_behind_a_writer(
        ledger, [step("first"), step("second", fail=True), step("third")]
    )
    assert isinstance(refused, ValueError) and "second refused" in str(refused)
    assert ledger.db.commits == commits + 2
    prompts = sorted(r.params["prompt"] for r in ledger.recent(10))
    assert prompts == ["first", "third"]
    assert {first, last} == {r.id for r in ledger.recent(10)}


def test_a_transaction_sqlite_ends_fails_every_step_in_it_and_writes_none(ledger):
    # RAISE(ROLLBACK) ends the whole transaction, as SQLite does e.g. when the disk is full
    with sqlite3.connect(ledger.db.path) as conn:
        conn.execute("CREATE TABLE refusals (x)")
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON refusals "
                     "BEGIN SELECT RAISE(ROLLBACK, 'the disk is full'); END")  # fmt: skip
    ends = lambda: ledger.db.execute("INSERT INTO refusals VALUES (1)")  # noqa: E731
    rollbacks = ledger.rollbacks
    out = queued_behind_a_writer(
        ledger, [lambda: _create(ledger, "before"), ends, lambda: _create(ledger, "after")]
    )
    assert all(isinstance(o, sqlite3.IntegrityError) for o in out), out
    assert all("the disk is full" in str(o) for o in out)
    assert ledger.recent(10) == [] and ledger.rollbacks > rollbacks
    assert _create(ledger, "later") and len(ledger.recent(10)) == 1  # the ledger goes on


def test_todays_rows_are_read_again_after_a_rollback_that_took_a_row_they_saw(ledger):
    """A budget check inside a step sees the rows of the steps before it in the same
    transaction; when that transaction is rolled back, those rows must not stay counted."""
    with sqlite3.connect(ledger.db.path) as conn:
        conn.execute("CREATE TABLE refusals (x)")
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON refusals "
                     "BEGIN SELECT RAISE(ROLLBACK, 'the disk is full'); END")  # fmt: skip
    today = TodayRows(ledger)
    assert today.rows() == []
    counted: list[int] = []

    def budget_check() -> None:
        counted.append(len(today.rows()))

    queued_behind_a_writer(ledger, [
        lambda: _create(ledger, "rolled back"),
        lambda: ledger.atomic(budget_check),
        lambda: ledger.db.execute("INSERT INTO refusals VALUES (1)"),
    ])  # fmt: skip
    assert counted == [1]  # it saw the first step's row, uncommitted
    assert today.rows() == []  # and no longer counts it


def test_a_caller_whose_write_is_committed_returns_while_the_next_group_runs(ledger):
    """Once its group is committed a caller goes on at once; it does not wait for the writer
    lock, which the next group (queued meanwhile, here a slow one) holds."""
    rid = _create(ledger, "first")
    gate, queued = threading.Event(), threading.Event()
    returned: list[str] = []

    def slow() -> None:  # the next group's step: holds the writer until the gate opens
        queued.set()
        gate.wait(30)
        ledger.db.execute("UPDATE jobs SET state='IN_QUEUE' WHERE id=?", (rid,))

    def first_step() -> None:  # runs in the first group; the slow step queues meanwhile
        ledger.db.execute("UPDATE jobs SET job_id='a' WHERE id=?", (rid,))
        later = threading.Thread(target=lambda: ledger.atomic(slow))
        later.start()
        wait_for(lambda: ledger.db.queued() == 1, what="the slow step queued")

    def second_step() -> None:
        ledger.update(rid, worker_id="w1")
        returned.append("second")

    try:
        out = queued_behind_a_writer(ledger, [lambda: ledger.atomic(first_step), second_step])
        assert out == [None, None] and returned == ["second"]
        assert queued.wait(10) and not gate.is_set()  # the slow group is still running
        assert (_committed(ledger.db.path, rid) or {}).get("worker_id") == "w1"
    finally:
        gate.set()
    wait_for(lambda: ledger.get(rid).state == "IN_QUEUE", what="the slow group committed")
