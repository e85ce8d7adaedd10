"""Ledger burst bench: N submits writing the SQLite ledger at once, committed together (group
commit, app/studio/db.py) or one transaction each (as before it).

Each submit does what Studio.submit writes: an atomic step (a read of today's rows, as the budget
check does, then the job's row), then the RunPod id. `--busy N` runs N busy-looping processes
meanwhile, standing in for the 64-user bench's stand-ins, which keep the 2 cores busy while the
studio submits (a commit's fsync then waits much longer than on an idle disk). Prints, per mode,
median of the runs: the time until the last submit's RunPod id is committed, the commits, and
how long a submit waited at the median and at worst.

Usage: .venvs/app/bin/python bench/ledger_burst.py [--submits 64] [--runs 5] [--busy 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.studio.ledger import Ledger  # noqa: E402

WORKFLOW = {"3": {"class_type": "KSampler"}}
T = TypeVar("T")


def burn(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        sum(range(10_000))


def burst(ledger: Ledger, submits: int, grouped: bool) -> tuple[float, int, list[float]]:
    """(seconds until the last RunPod id is committed, commits, each submit's seconds)."""
    start = threading.Barrier(submits)
    took: list[float] = []

    def admit(i: int) -> str:
        ledger.recent(5)  # the budget check reads the ledger inside the step
        return ledger.create(template="t2v_14b", mode="turbo", params={"prompt": f"job {i}"},
                             workflow=WORKFLOW, quote=None, gpu="H100")  # fmt: skip

    def alone(fn: Callable[[], T]) -> T:  # a transaction of its own, one commit
        with ledger.transaction():
            return fn()

    step = ledger.atomic if grouped else alone

    def submit(i: int) -> None:
        start.wait()
        t = time.perf_counter()
        rid = step(lambda: admit(i))
        step(lambda: ledger.update(rid, job_id=f"job-{i}", state="IN_QUEUE"))
        took.append(time.perf_counter() - t)

    commits = ledger.db.commits
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(submits)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, ledger.db.commits - commits, took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--submits", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--busy", type=int, default=2, help="busy-looping processes meanwhile")
    args = ap.parse_args()
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=burn, args=(stop,), daemon=True)
               for _ in range(args.busy)]  # fmt: skip
    for p in burners:
        p.start()
    print(f"ledger burst bench: {args.submits} submits at once, {args.busy} busy processes, "
          f"median of {args.runs} runs")  # fmt: skip
    print(f"{'mode':28s} {'all done ms':>11s} {'commits':>8s} {'submit median ms':>17s} "
          f"{'submit max ms':>14s}")  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(dir=REPO) as tmp:  # the repository's disk, as data/
            for grouped in (False, True):
                rows = []
                for run in range(args.runs):
                    ledger = Ledger(f"sqlite:///{Path(tmp) / f'{grouped}-{run}.sqlite3'}")
                    rows.append(burst(ledger, args.submits, grouped))
                name = "grouped (atomic)" if grouped else "one transaction each"
                done = statistics.median(r[0] for r in rows) * 1000
                commits = statistics.median(r[1] for r in rows)
                med = statistics.median(statistics.median(r[2]) for r in rows) * 1000
                worst = statistics.median(max(r[2]) for r in rows) * 1000
                print(f"{name:28s} {done:11.0f} {commits:8.0f} {med:17.1f} {worst:14.1f}")
    finally:
        stop.set()
        for p in burners:
            p.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
