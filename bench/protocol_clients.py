"""The protocol-level client mode of bench/studio_concurrency.py: N users that follow the same
events a page follows (Gradio's queue: /generate's server-sent events until the final video),
with gradio_client, without rendering. Optionally two studio replicas on one PostgreSQL ledger,
the users split across them. Prints the issue's figures:
- the studio's own path, first request -> last video stored (from the ledger), as a ratio to the
  median executionTime (target <= 1.15);
- the studios' CPU per job (target <= 0.05 cpu-s), and an idle studio's CPU with no page open
  (target <= 1 % of a core), measured before the users arrive;
- with two replicas, that no job was followed (stored) by both;
- where the machine's CPU went over the same window (the studios, the stack, these clients), so
  a figure missed on a small shared machine can be told from one the studio misses itself.
`profile_dir`: also record each studio with py-spy (`pip install py-spy`, a dev tool, not in the
requirements) over the users' window only, `--gil` (the samples that hold Python's lock: what
one studio process can do at a time), as collapsed stacks `studio<i>.raw`, and this process's
clients as `clients.raw`.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HZ = os.sysconf("SC_CLK_TCK")
IDLE_S = 20.0  # how long the idle studios are measured


def proc_cpu(pid: int) -> float:
    """CPU seconds used so far by process `pid` and its threads."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / HZ


def run_protocol(
    urls: list[str],
    studios: list[subprocess.Popen],
    users: int,
    ledger_url: str,
    data_dirs: list[Path],
    job_s: float,
    args_for: Callable[[int], list[Any]],
    profile_dir: Path | None = None,
) -> int:
    from gradio_client import Client

    from app.studio.ledger import Ledger
    from bench.studio_concurrency import cpu_report, cpu_snapshot

    slow = {"timeout": 300}  # a busy machine answers late; a page would wait too
    clients = [Client(urls[i % len(urls)] + "/", verbose=False, httpx_kwargs=slow)
               for i in range(users)]  # fmt: skip
    idle0 = [proc_cpu(p.pid) for p in studios]
    time.sleep(IDLE_S)  # measuring idleness: nothing to wait for but the clock
    idle = [(proc_cpu(p.pid) - c) / IDLE_S for p, c in zip(studios, idle0, strict=True)]
    barrier = threading.Barrier(users + 1)
    results: dict[int, Any] = {}
    errors: list[str] = []

    def user(i: int) -> None:
        barrier.wait()
        try:
            results[i] = clients[i].predict(*args_for(i), api_name="/generate")
        except Exception as exc:
            errors.append(f"user {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for t in threads:
        t.start()
    spies = [profile(p.pid, profile_dir / f"studio{i}.raw")
             for i, p in enumerate(studios)] if profile_dir else []  # fmt: skip
    if profile_dir:  # and these clients (one process: their GIL is shared too)
        spies.append(profile(os.getpid(), profile_dir / "clients.raw"))
    cpu0 = [proc_cpu(p.pid) for p in studios]
    machine0 = cpu_snapshot()
    barrier.wait()
    t_start = time.time()
    for t in threads:
        t.join(600)
    t_end = time.time()
    cpu = [proc_cpu(p.pid) - c for p, c in zip(studios, cpu0, strict=True)]
    cpu_report(machine0, t_end - t_start)
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(60)
    rows = [r for r in Ledger(ledger_url).since(t_start - 5) if r.state == "COMPLETED"]
    print(f"protocol clients: {users} users on {len(urls)} studio replica(s), ledger "
          f"{ledger_url.split('://')[0]}, job {job_s:.1f} s emulated sampling")  # fmt: skip
    if errors:
        print(f"client errors ({len(errors)}): {errors[:5]}")
    if len(rows) < users:
        ended = [r for r in Ledger(ledger_url).since(t_start - 5) if r.state != "COMPLETED"]
        print(f"{len(rows)} of {users} jobs COMPLETED; the others: "
              f"{[(r.id, r.state, r.error) for r in ended]}")  # fmt: skip
        return 1
    execs = [r.execution_ms / 1000 for r in rows]
    last_stored = max(r.stored_at for r in rows)
    path = last_stored - t_start
    median = statistics.median(execs)
    print(f"executionTime per job: median {median:.2f} s, max {max(execs):.2f} s")
    print(f"studio path, first request -> last video stored: {path:.2f} s")
    print(f"ratio to the median executionTime: {path / median:.2f} (target <= 1.15)")
    print(
        f"clients' wall time (first request -> last client got its video): {t_end - t_start:.2f} s"
    )
    for i, (c, idle_c) in enumerate(zip(cpu, idle, strict=True)):
        share = users / len(urls)
        print(f"studio {i}: {c:.2f} cpu-s for ~{share:.0f} jobs = {c / share:.3f} cpu-s per job "
              f"(target <= 0.05); idle with no page open: {idle_c:.2%} of a core "
              "(target <= 1 %)")  # fmt: skip
    both = [r.id for r in rows if sum((d / "results" / r.id).is_dir() for d in data_dirs) > 1]
    if len(urls) > 1:
        print(f"jobs stored by more than one replica: {len(both)} (target 0)")
    delays = sorted(
        (r.completed_seen_at - (r.submitted_at + ((r.delay_ms or 0) + r.execution_ms) / 1000))
        for r in rows
    )
    stores = sorted(r.stored_at - r.completed_seen_at for r in rows)
    created = sorted(r.created_at - t_start for r in rows)
    answered = sorted(r.submitted_at - r.created_at for r in rows)
    queue = sorted((r.delay_ms or 0) / 1000 for r in rows)
    for name, vals in (
        ("first request -> ledger row", created),
        ("ledger row -> /run answered", answered),
        ("delayTime (queue + pick-up)", queue),
        ("COMPLETED -> tracker saw it", delays),
        ("tracker saw it -> stored", stores),
    ):
        print(f"  {name:30s} median {statistics.median(vals):6.2f} s  max {max(vals):6.2f} s")
    return 0 if not both and not errors else 1


def profile(pid: int, out: Path) -> subprocess.Popen:
    """py-spy recording process `pid` (the samples holding the GIL) into `out` until SIGINT."""
    spy = Path(sys.executable).with_name("py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(spy), "record", "--pid", str(pid), "--gil", "--threads", "--rate", "200",
            "--format", "raw", "--nonblocking", "-o", str(out)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit("run bench/studio_concurrency.py --mode protocol")
