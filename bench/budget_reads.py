"""What the budgets' read of today's rows costs as the day fills up: the whole day read afresh
(what every submit, quote line and spend line did) against app/studio/checks/today.py's
`TodayRows`, which reads again only the rows changed since its last read.

    .venvs/app/bin/python bench/budget_reads.py [--rows 100 1000 5000] [--database URL]

For each day size: a SQLite ledger (or the PostgreSQL at --database, emptied first) with that
many rows created through today, then per read one row finished (its cost written, as the tracker
does) and one new row, as on a busy day; prints milliseconds per read, median of --reads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.endpoint.states import JobState
from app.studio.checks import guardrails as gr_
from app.studio.checks.today import TodayRows
from app.studio.cost import Actual, Quote
from app.studio.ledger import Ledger

QUOTE = Quote(gpu="H100 PRO", per_s=0.00116, execution_s=60.0, dollars=0.0696)
WORKFLOW = {
    str(i): {"class_type": "KSampler", "inputs": {"seed": i, "steps": 20}} for i in range(40)
}


def create(ledger: Ledger, i: int) -> str:
    params = {"prompt": f"job {i}", "seed": i}
    return ledger.create(template="t2v_14b", mode="turbo", params=params, workflow=WORKFLOW,
                         quote=QUOTE, gpu="H100 PRO", user=f"u{i % 8}")  # fmt: skip


def spread_over_the_day(ledger: Ledger) -> None:
    """Stamp the rows as made (and last changed) through today until a minute ago, as a day's
    rows are, not all in the last seconds."""
    start, end = gr_.day_start(), time.time() - 60
    rows = ledger.db.execute("SELECT id FROM jobs ORDER BY created_at").rows
    step = max(end - start, 1.0) / max(len(rows), 1)
    with ledger.transaction():
        for i, row in enumerate(rows):
            t = start + i * step
            ledger.db.execute("UPDATE jobs SET created_at=?, updated_at=? WHERE id=?",
                              (t, t, row["id"]))  # fmt: skip


def measure(url: str, rows: int, reads: int) -> tuple[float, float, float]:
    """(ms per whole-day read, ms per TodayRows read, dollars differing between the two)."""
    ledger = Ledger(url)
    ids = [create(ledger, i) for i in range(rows)]
    spread_over_the_day(ledger)
    today = TodayRows(ledger)
    today.rows()  # the first read is the whole day
    whole, changed = [], []
    for n in range(reads):
        ledger.update(ids[n], state=JobState.COMPLETED, cost=Actual(billed_s=50, dollars=0.058))
        ids.append(create(ledger, rows + n))
        t = time.perf_counter()
        fresh = ledger.spend_since(gr_.day_start())
        whole.append(time.perf_counter() - t)
        t = time.perf_counter()
        kept = today.rows()
        changed.append(time.perf_counter() - t)
    since = gr_.day_start()
    gap = abs(gr_.spend(fresh, since=since) - gr_.spend(kept, since=since))
    return statistics.median(whole) * 1e3, statistics.median(changed) * 1e3, gap


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100, 1000, 5000])
    ap.add_argument("--reads", type=int, default=30)
    ap.add_argument("--database", default="", help="a PostgreSQL URL (default: a SQLite file)")
    args = ap.parse_args()
    print(f"today's rows for the budgets, ms per read (median of {args.reads}; "
          "one row finished and one new before each):")  # fmt: skip
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database or f"sqlite:///{tmp}/ledger.sqlite3"
            if args.database:
                Ledger(url).db.execute("DELETE FROM jobs")
            whole, kept, gap = measure(url, n, args.reads)
            print(f"  {n:6d} rows today: whole day {whole:8.2f} ms   TodayRows {kept:6.2f} ms"
                  f"   ({whole / kept:5.1f}x; spend differs by ${gap:.6f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
