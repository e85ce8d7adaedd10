"""Today's rows for the budgets (app/studio/checks/today.py), on SQLite and a real PostgreSQL:
what they add up to is always what the whole day read afresh adds up to, whichever studio
replica wrote the rows, while each read decodes only the rows that changed."""

from __future__ import annotations

from app.endpoint.states import JobState
from app.studio.checks import guardrails as gr_
from app.studio.checks.today import TodayRows
from app.studio.cost import Actual, Quote
from app.studio.ledger import JobRow, Ledger
from tests.helpers import in_threads

QUOTE = Quote(gpu="H100 PRO", per_s=0.001, execution_s=60.0, dollars=0.06)


class Counting(Ledger):
    """A ledger that remembers how many rows each spend read returned, and how many of them it
    decoded (rather than reused from `known`)."""

    reads: list[int]
    decoded: list[int]

    def spend_since(
        self, ts: float, updated_after: float | None = None, known: dict | None = None
    ) -> list[JobRow]:
        rows = super().spend_since(ts, updated_after, known)
        new = [r for r in rows if (known or {}).get(r.id) is not r]
        self.reads = [*getattr(self, "reads", []), len(rows)]
        self.decoded = [*getattr(self, "decoded", []), len(new)]
        return rows


def _create(ledger: Ledger, user: str = "ada") -> str:
    return ledger.create(template="t2v_14b", mode="turbo", params={"prompt": "p"}, workflow={},
                         quote=QUOTE, gpu="H100 PRO", user=user)  # fmt: skip


def _spent(rows: list[JobRow], user: str | None = None) -> float:
    return round(gr_.spend(rows, since=gr_.day_start(), user=user), 6)


def test_the_rows_add_up_to_the_whole_day_read_afresh(ledger_url):
    ledger, replica = Counting(ledger_url), Ledger(ledger_url)  # two studios, one ledger
    today = TodayRows(ledger)
    ids = [_create(ledger) for _ in range(5)] + [_create(replica, "bob")]
    assert _spent(today.rows()) == _spent(ledger.spend_since(0)) == 0.36  # six quotes, live
    ledger.update(ids[0], state=JobState.COMPLETED, cost=Actual(billed_s=30, dollars=0.03))
    replica.update(ids[5], state=JobState.FAILED, execution_ms=None)  # nothing ran: $0
    _create(replica, "bob")
    rows = today.rows()
    assert _spent(rows) == _spent(ledger.spend_since(0)) == round(0.03 + 4 * 0.06 + 0.06, 6)
    assert _spent(rows, "bob") == 0.06 and _spent(rows, "ada") == 0.27
    assert sorted(r.id for r in rows) == sorted(r.id for r in ledger.spend_since(0))


def test_each_read_decodes_only_what_changed_since_the_last(ledger_url):
    ledger = Counting(ledger_url)
    today = TodayRows(ledger, skew_s=0.0)  # no margin: the read again is exactly the changes
    ids = [_create(ledger) for _ in range(20)]
    assert len(today.rows()) == 20 and ledger.reads == [20]
    ledger.update(ids[3], state=JobState.COMPLETED, cost=Actual(billed_s=1, dollars=0.001))
    _create(Ledger(ledger_url))  # another replica's new row
    rows = today.rows()
    assert ledger.reads == [20, 2] and len(rows) == 21
    assert {r.id: r.cost for r in rows}[ids[3]] == Actual(billed_s=1, dollars=0.001)
    assert len(today.rows()) == 21 and ledger.reads == [20, 2, 0]


def test_rows_read_again_unchanged_are_not_decoded_again(ledger_url):
    ledger = Counting(ledger_url)
    today = TodayRows(ledger)  # SKEW_S: rows written just now are read again at every read
    ids = [_create(ledger) for _ in range(10)]
    assert len(today.rows()) == 10 and ledger.decoded == [10]
    ledger.update(ids[4], state=JobState.COMPLETED, cost=Actual(billed_s=2, dollars=0.002))
    rows = today.rows()
    assert ledger.reads[-1] == 10 and ledger.decoded[-1] == 1  # read again, one decoded
    assert _spent(rows) == _spent(ledger.spend_since(0)) == round(0.002 + 9 * 0.06, 6)


def test_a_new_utc_day_starts_from_nothing(ledger_url):
    ledger = Ledger(ledger_url)
    _create(ledger)
    clock = {"now": gr_.day_start() + 3600.0}
    today = TodayRows(ledger, clock=lambda: clock["now"])
    assert len(today.rows()) == 1
    clock["now"] += 86400.0  # tomorrow: yesterday's row is not today's spend
    assert today.rows() == []


def test_readers_at_once_all_see_every_row(ledger_url):
    ledger = Ledger(ledger_url)
    today = TodayRows(ledger)
    for _ in range(10):
        _create(ledger)
    seen: list[int] = []
    assert in_threads(lambda: seen.append(len(today.rows())), 8) == []
    assert seen == [10] * 8
