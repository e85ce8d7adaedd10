"""The quotes learn from the studio's finished jobs (app/studio/learning.py): from the ledger's
COMPLETED rows, each row's filled workflow read once, a new finished job counted at once."""

from __future__ import annotations

from app.studio import cost
from app.studio.learning import Learning
from app.studio.ledger import Ledger
from workflows.fill import fill


class Counting(Ledger):
    """The real ledger, counting the workflows read alone and the rows decoded whole."""

    reads = 0
    decoded = 0

    def workflow(self, rid: str) -> dict:
        self.reads += 1
        return super().workflow(rid)

    def _q(self, *args, **kw) -> list:
        rows = super()._q(*args, **kw)
        self.decoded += len(rows)
        return rows


def finished(ledger: Ledger, seconds: float, execution_ms: int) -> str:
    wf = fill("t2v_14b", {"prompt": "a kite", "seconds": seconds}).workflow
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow=wf, quote=None,
                        gpu="H100 PRO")  # fmt: skip
    ledger.update(rid, state="COMPLETED", execution_ms=execution_ms, finished_at=1.0)
    return rid


def test_a_finished_job_is_learned_at_once_and_its_workflow_read_once(tmp_path):
    ledger = Counting(str(tmp_path / "ledger.sqlite3"))
    learning = Learning(ledger)
    assert learning.calibration() == cost.calibrate([])
    finished(ledger, 1.0, 10_000)
    assert learning.calibration() == cost.calibrate([])  # within its time to live
    learning.forget()  # a job ended (the tracker's on_final)
    one = learning.calibration()
    finished(ledger, 2.0, 20_000)
    learning.forget()
    two = learning.calibration()
    assert one != two and ledger.reads == 2  # the first row's workflow was not read again
    wf = ledger.workflow
    expected = cost.calibrate(
        cost.Observation(cost.request_from_workflow("t2v_14b", "turbo", wf(r.id)), "H100 PRO",
                         r.execution_ms / 1000)
        for r in ledger.finished_with_timing()
    )  # fmt: skip
    assert two == expected


def test_a_rebuild_after_a_job_ended_decodes_no_row(tmp_path):
    """The calibration is read again after every job's end (at the next quote): it reads the
    few columns it needs (Ledger.timings), no row decoded whole (with 500 finished rows that
    took ~30 ms per quote)."""
    ledger = Counting(str(tmp_path / "ledger.sqlite3"))
    learning = Learning(ledger)
    for seconds in (1.0, 2.0, 3.0):
        finished(ledger, seconds, int(seconds * 10_000))
    decoded = ledger.decoded
    learning.forget()
    learned = learning.calibration()
    assert ledger.decoded == decoded and ledger.reads == 3
    assert sum(n for _, n in learned.scale.values()) == 3  # learned from the three
