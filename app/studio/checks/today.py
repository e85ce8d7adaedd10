"""Today's ledger rows for the budgets, read again only where they changed.

The budgets read what every row of the UTC day costs (app/studio/checks/guardrails.py): at each
submit twice (before /run, and inside the transaction that writes the row, where every other
writer of the ledger waits), at each change of the page's quote line, and for the spend line of
every open page. Reading and decoding the whole day each time grows with the day
(bench/budget_reads.py: ~30 ms a read at 1,000 rows). `TodayRows` keeps the day's rows and asks
the ledger only for the rows created today and updated since its last read, less SKEW_S: a row
committed a little after the moment it was stamped with, or stamped by another replica's clock a
little behind this one's, is read again. Rows are never deleted, and what a row's spend depends
on changes only through `Ledger.update`, which stamps `updated_at`. The whole day is read again
every FULL_EVERY_S all the same, so a row missed any other way (a replica whose clock is off by
more than SKEW_S) counts within minutes. It is read whole again after the ledger rolled back a
write (`Ledger.rollbacks`): a budget check inside an atomic step reads the rows of the steps
committed with it (app/studio/db.py), and one of those rolled back must not stay counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from app.studio.checks import guardrails as gr_
from app.studio.ledger import JobRow, Ledger


class TodayRows:
    SKEW_S = 10.0  # rows stamped this long before the last read are read again
    FULL_EVERY_S = 300.0  # the whole day is read again this often

    def __init__(
        self, ledger: Ledger, clock: Callable[[], float] = time.time, skew_s: float = SKEW_S
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.skew_s = skew_s
        self._lock = threading.Lock()  # never held while the ledger is read: see rows()
        self._day = 0.0
        self._rows: dict[str, JobRow] = {}
        self._read_at: float | None = None  # the clock before the last read merged
        self._full_at = 0.0  # the clock when the rows were last dropped for a whole read
        self._generation = 0  # counts those drops: a read begun before one is not merged
        self._rollbacks = ledger.rollbacks  # the ledger's rollbacks when the rows were dropped

    def rows(self) -> list[JobRow]:
        """The rows created since 00:00 UTC (their spend columns: `Ledger.spend_since`), as the
        ledger holds them now: every call reads what changed since the last read. The ledger is
        read without this object's lock held: a reader inside the ledger's transaction (the
        budget check that writes the row) would otherwise wait for one waiting in turn for a
        PostgreSQL connection that such transactions hold."""
        while True:
            now = self.clock()
            day = gr_.day_start(now)
            rollbacks = self.ledger.rollbacks
            with self._lock:
                if (
                    day != self._day
                    or now - self._full_at >= self.FULL_EVERY_S
                    or rollbacks != self._rollbacks
                ):
                    self._day, self._rows, self._read_at, self._full_at = day, {}, None, now
                    self._rollbacks = rollbacks
                    self._generation += 1
                generation = self._generation
                after = None if self._read_at is None else self._read_at - self.skew_s
            # the rows held are passed as they are (only looked up): an unchanged one is reused
            fresh = self.ledger.spend_since(day, updated_after=after, known=self._rows)
            with self._lock:
                if generation != self._generation:
                    continue  # dropped meanwhile: read again for the new day or whole read
                for row in fresh:  # two reads may merge out of order: the newer row stays
                    held = self._rows.get(row.id)
                    if held is None or row.updated_at >= held.updated_at:
                        self._rows[row.id] = row
                self._read_at = max(self._read_at or now, now)
                return list(self._rows.values())
