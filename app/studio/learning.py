"""What the quotes learn from this studio's finished jobs: the cost model's calibration
(app/studio/cost.py fits it) from the COMPLETED rows with an executionTime.

`Learning(ledger).calibration()` is read at every quote; it is rebuilt after `forget()` (a job
ended) or CALIBRATION_TTL_S (another replica's jobs). A rebuild reads the rows' timings alone
(`Ledger.timings`, nothing decoded), and a finished row never changes, so what each one asked
(`cost.request_from_workflow` over its filled workflow, the large part of a row) is read once per
process, not at every rebuild.
"""

from __future__ import annotations

import time

from app.studio import cost, graph
from app.studio.ledger import Ledger

CALIBRATION_TTL_S = 30.0  # jobs finished through another replica show in the quotes this late


class Learning:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._cal: tuple[float, cost.Calibration] | None = None
        self._asked: dict[str, cost.CostRequest | None] = {}  # finished row -> what it asked

    def calibration(self) -> cost.Calibration:
        now = time.monotonic()
        if self._cal and now - self._cal[0] < CALIBRATION_TTL_S:
            return self._cal[1]
        obs, asked = [], {}
        for row in self.ledger.timings():
            if row.id not in self._asked:
                try:
                    filled = self.ledger.workflow(row.id)
                    req = cost.request_from_workflow(row.template, row.mode, filled)
                    self._asked[row.id] = req
                except graph.Unresolved:  # a past job the quote cannot read: nothing to learn
                    self._asked[row.id] = None
            asked[row.id] = req = self._asked[row.id]
            if req is not None:
                obs.append(cost.Observation(req, row.gpu, (row.execution_ms or 0) / 1000))
        self._asked = asked  # the rows still in the window
        cal = cost.calibrate(obs)
        self._cal = (now, cal)
        return cal

    def forget(self, _rid: str = "") -> None:
        """A job ended: the next quote learns from it (the tracker's on_final)."""
        self._cal = None
