"""A replica's name in the leases says where its process runs (app/studio/replicas.py), so a
studio restarted on the same machine takes its killed predecessor's jobs over at once; a lease
whose holder may still be running elsewhere is taken over only when it runs out."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.settings import PRICES_PATH
from app.studio import cost
from app.studio.ledger import Ledger
from app.studio.replicas import certainly_gone, process_key, replica_id
from app.studio.tracker import Tracker
from tests.helpers import wait_for


@pytest.fixture
def child():
    """A running process (not this one), stopped by the test or at the end."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait(10)


def name_of(proc: subprocess.Popen) -> str:
    """The lease name `replica_id()` gives inside process `proc`."""
    return f"host-{proc.pid}-abc123~{process_key(proc.pid)}"


def test_a_running_replica_is_not_gone_and_a_killed_one_is(child):
    assert not certainly_gone(replica_id())  # this process
    owner = name_of(child)
    assert not certainly_gone(owner)
    assert not certainly_gone(owner + "/reaper")
    child.kill()
    child.wait(10)
    assert certainly_gone(owner)
    assert certainly_gone(owner + "/reaper")  # the tracker's reaper name for its rows


def test_a_name_from_elsewhere_or_without_its_place_is_never_gone(child):
    boot, namespace, pid, start = process_key(child.pid).split(".")
    child.kill()
    child.wait(10)
    assert certainly_gone(f"h-{pid}-x~{boot}.{namespace}.{pid}.{start}")
    assert not certainly_gone(f"h-{pid}-x~{'0' * 12}.{namespace}.{pid}.{start}")  # other boot
    assert not certainly_gone(f"h-{pid}-x~{boot}.1.{pid}.{start}")  # other container
    assert not certainly_gone(f"h-{pid}-x")  # a name from before names carried their place
    assert not certainly_gone(f"h-{pid}-x~{boot}.{namespace}.x.{start}")  # malformed
    assert not certainly_gone("")


def fake_proc(tmp_path: Path, options: str) -> Path:
    """A /proc with this machine's boot id and this namespace, mounted with `options`, where
    process 4242 does not exist."""
    proc = tmp_path / "proc"
    (proc / "sys/kernel/random").mkdir(parents=True)
    (proc / "sys/kernel/random/boot_id").write_text("0123abcd-4567-89ef-0123-456789abcdef\n")
    (proc / "self/ns").mkdir(parents=True)
    (proc / "self/ns/pid").write_text("")
    (proc / "mounts").write_text(f"proc {proc} proc {options} 0 0\n")
    return proc


def test_a_proc_that_hides_other_users_processes_proves_nothing(tmp_path):
    proc = fake_proc(tmp_path, "rw,relatime")
    namespace = (proc / "self/ns/pid").stat().st_ino
    owner = f"h-4242-x~0123abcd4567.{namespace}.4242.100"
    assert certainly_gone(owner, proc)
    (proc / "mounts").write_text(f"proc {proc} proc rw,relatime,hidepid=invisible 0 0\n")
    assert not certainly_gone(owner, proc)


def ledger_with_leased_row(path: Path, owner: str, lease_s: float) -> tuple[Ledger, str]:
    ledger = Ledger(path)
    rid = ledger.create(
        template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None, gpu="H100 PRO",
        owner=owner, lease_s=lease_s,
    )  # fmt: skip
    ledger.update(rid, job_id=f"job-{rid}", state="IN_PROGRESS")
    return ledger, rid


def lease_owner(path: Path, rid: str) -> str | None:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT lease_owner FROM jobs WHERE id=?", (rid,)).fetchone()[0]


def tracker_for(ledger: Ledger, tmp_path: Path, lease_s: float) -> Tracker:
    """A tracker whose endpoint answers FAILED for every job it is asked about."""

    def status(job_id: str) -> SimpleNamespace:
        return SimpleNamespace(state="FAILED", progress=None, output=None, error="stopped",
                               delay_ms=None, execution_ms=None, worker_id=None)  # fmt: skip

    prices = cost.load_prices(PRICES_PATH)
    return Tracker(
        ledger, SimpleNamespace(status=status), tmp_path, prices, poll_s=0.05, lease_s=lease_s
    )


def test_a_restarted_studio_takes_its_killed_predecessors_jobs_at_once(child, tmp_path):
    path = tmp_path / "ledger.sqlite3"
    dead = name_of(child)
    ledger, rid = ledger_with_leased_row(path, dead, lease_s=600)
    _, theirs = ledger_with_leased_row(path, replica_id(), lease_s=600)  # alive: this process
    child.kill()
    child.wait(10)
    tracker = tracker_for(ledger, tmp_path, lease_s=600).start()
    try:
        assert lease_owner(path, rid) != dead  # freed at start, not in 10 minutes
        done = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the job's end")
        assert done.state == "FAILED" and done.error == "stopped"
        assert lease_owner(path, theirs) != tracker.owner  # a running replica's job stays its own
        assert not ledger.get(theirs).final
    finally:
        tracker.stop()


def test_a_lease_whose_holder_may_run_elsewhere_is_taken_only_when_it_runs_out(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    elsewhere = "other-host-7-abc123~0123abcd4567.4026531836.7.100"  # another machine's boot
    leased_at = time.time()
    ledger, rid = ledger_with_leased_row(path, elsewhere, lease_s=1.0)
    tracker = tracker_for(ledger, tmp_path, lease_s=1.0).start()
    try:
        assert lease_owner(path, rid) == elsewhere  # still its holder's
        done = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the job's end")
        assert done.state == "FAILED" and done.finished_at >= leased_at + 1.0  # after it ran out
    finally:
        tracker.stop()
