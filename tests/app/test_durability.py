"""Issue 15 section 5: durability. A full data disk (a real, size-limited tmpfs) refuses new jobs
with "disk full", keeps a finished job recoverable and stores it when space returns; a damaged or
emptied ledger stops the start with what is wrong and what to do; a job whose /run answer the
studio never got is recorded as one that may have run and may cost, and can be reconciled."""

from __future__ import annotations

import base64
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.endpoint.states import JobState
from app.errors import DiskFull, InputError, JobNotFound, LedgerDamaged
from app.settings import PRICES_PATH, Settings
from app.studio import cost, disk
from app.studio.checks.guardrails import spend
from app.studio.jobs import Prepared, Studio
from app.studio.ledger import Ledger
from app.studio.ledger_check import backup_path, check_ledger
from app.studio.owners import ANYONE
from app.studio.reconcile import reconcile
from app.studio.tracker import Tracker
from tests.helpers import REPO, in_threads, wait_for
from workflows.fill import fill

PRICES = cost.load_prices(PRICES_PATH)


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MB filesystem (tmpfs with a size limit) as the data folder."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_up(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte; returns the filler file."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as fh:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                pass
    return filler


class Accepting:
    def __init__(self) -> None:
        self.sent = 0

    def run(self, job_input, policy=None):
        self.sent += 1
        return SimpleNamespace(id=f"job-{self.sent}", state=JobState.IN_QUEUE)


def prepared() -> Prepared:
    filled = fill("t2v_14b", {"prompt": "x", "mode": "turbo"})
    req = cost.request_from_workflow("t2v_14b", "turbo", filled.workflow)
    return Prepared(None, "t2v_14b", {}, filled, req, cost.quote(req, "H100 PRO", PRICES))


def test_full_disk_refuses_new_jobs_and_stores_the_finished_one_when_space_returns(small_disk):
    ledger = Ledger(small_disk / "ledger.sqlite3")
    video = os.urandom(600_000)
    answer = SimpleNamespace(
        state="COMPLETED", progress=None, error=None, delay_ms=5, execution_ms=2000,
        worker_id="w", output={"images": [{"filename": "v.mp4", "type": "base64",
                                           "data": base64.b64encode(video).decode()}]},
    )  # fmt: skip
    tracker = Tracker(ledger, SimpleNamespace(status=lambda job_id: answer), small_disk, PRICES,
                      poll_s=0.05)  # fmt: skip
    tracker.retry_s = 0.2
    endpoint = Accepting()
    studio = Studio(
        settings=Settings.from_env({"WANPOD_DATA_DIR": str(small_disk)}), forms={}, fill=fill,
        endpoint=endpoint, ledger=ledger, tracker=tracker, prices=PRICES,
    )  # fmt: skip
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
                        gpu="H100 PRO")  # fmt: skip
    ledger.update(rid, job_id="job-0", state=JobState.IN_PROGRESS)
    filler = fill_up(small_disk)
    tracker.start()
    try:
        view = wait_for(
            lambda: (v := studio.view(rid, ANYONE)) and v.progress.head.startswith("disk full")
            and v,
            30, "the page to say disk full", lambda: str(studio.view(rid, ANYONE)),
        )  # fmt: skip
        assert not view.final and ledger.get(rid).live  # recoverable, not FAILED
        p = prepared()
        with pytest.raises(DiskFull) as info:
            studio._send(p, "turbo", {}, {"workflow": p.filled.workflow}, None, None, {}, None)
        assert str(info.value).startswith("disk full: the data folder") and endpoint.sent == 0
        filler.unlink()  # space returns
        row = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the retried store")
        assert row.state == "COMPLETED" and Path(row.result_path).read_bytes() == video
        assert row.error is None and studio.view(rid, ANYONE).final
        studio._send(p, "turbo", {}, {"workflow": p.filled.workflow}, None, None, {}, None)
        assert endpoint.sent == 1
    finally:
        tracker.stop()


def test_the_disk_verdict_holds_while_writable_and_is_probed_at_every_job_while_full(small_disk):
    """A writable data folder is probed at most once every WRITABLE_S (not at every submit); a
    full one at every job, so space that returns is seen at once; a write that failed for want
    of space forgets the verdict."""
    now = [0.0]
    probe = disk.Probe(small_disk, clock=lambda: now[0])
    probe.refuse_if_full()  # writable: probed
    filler = fill_up(small_disk)
    probe.refuse_if_full()  # within WRITABLE_S: the verdict holds
    now[0] += disk.WRITABLE_S
    with pytest.raises(DiskFull):
        probe.refuse_if_full()
    with pytest.raises(DiskFull):  # full: probed again, still full
        probe.refuse_if_full()
    filler.unlink()
    probe.refuse_if_full()  # space returned: seen at once
    fill_up(small_disk)
    probe.forget()  # a write failed for want of space
    with pytest.raises(DiskFull):
        probe.refuse_if_full()


def ledger_with_rows(path: Path, n: int = 200) -> None:
    ledger = Ledger(path)
    for i in range(n):
        ledger.create(template="t2v_14b", mode="turbo", params={"prompt": "p" * 200 + str(i)},
                      workflow={"1": {"x": "y" * 300}}, quote=None, gpu="H100 PRO")  # fmt: skip
    # everything into the main file (as after a clean stop)
    ledger.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def start_studio(data: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANPOD_DATA_DIR": str(data), "RUNPOD_API_KEY": "k",
           "RUNPOD_ENDPOINT_ID": "ep1", "RUNPOD_API_BASE": "http://127.0.0.1:9/v2"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "app"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_a_damaged_or_emptied_ledger_stops_the_start_with_what_to_do(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    ledger_with_rows(path)
    check_ledger(path)  # healthy: a backup copy is written
    assert backup_path(path).is_file()

    data = path.read_bytes()
    assert len(data) > 20 * 4096
    path.write_bytes(b"garbage!" * 2 + data[16:])  # corrupt header
    done = start_studio(tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "is not an SQLite database (its header is damaged)" in done.stderr
    assert f"cp {backup_path(path)} {path}" in done.stderr and "start fresh" in done.stderr

    rnd = random.Random(15)
    mid = bytearray(data)
    for page in range(3, len(data) // 4096 - 1):
        mid[page * 4096 + 100 : page * 4096 + 600] = bytes(rnd.randrange(256) for _ in range(500))
    path.write_bytes(bytes(mid))
    with pytest.raises(LedgerDamaged) as info:
        check_ledger(path)
    assert "integrity check" in str(info.value) or "cannot be read" in str(info.value)

    path.write_bytes(b"")
    with pytest.raises(LedgerDamaged) as info:
        check_ledger(path)
    assert "is empty (0 bytes): today's spend would silently reset to $0" in str(info.value)
    check_ledger(tmp_path / "new.sqlite3")  # a first start is not damage


def test_a_job_whose_run_answer_never_came_may_cost_and_is_reconciled(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    quote = cost.Quote("H100 PRO", 0.001, 300.0, 0.3)
    rid = ledger.create(
        template="t2v_14b", mode="turbo", params={}, workflow={}, quote=quote, gpu="H100 PRO"
    )  # fmt: skip  (killed before /run answered)
    known = {"job-77": SimpleNamespace(state="COMPLETED", progress=None, error=None, delay_ms=5,
                                       execution_ms=4000, worker_id="w",
                                       output={"images": [{"filename": "v.mp4", "type": "base64",
                                                           "data": "dmlkZW8="}]})}  # fmt: skip

    def status(job_id: str):
        if job_id not in known:
            raise JobNotFound(f"Job {job_id} is unknown")
        return known[job_id]

    endpoint = SimpleNamespace(status=status)
    tracker = Tracker(ledger, endpoint, tmp_path, PRICES, poll_s=0.05).start()
    try:
        row = ledger.get(rid)
        assert row.state == "LOST" and "may have run on the endpoint and may cost" in row.error
        assert spend([row], since=0) == pytest.approx(0.3)  # counted against today's budget
        studio = SimpleNamespace(ledger=ledger, endpoint=endpoint, tracker=tracker,
                                 row=lambda r, _caller: ledger.get(r))  # fmt: skip
        with pytest.raises(InputError, match="does not know job-1"):
            reconcile(studio, rid, "job-1")
        assert "following it" in reconcile(studio, rid, "job-77")
        done = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the reconciled job")
        assert done.state == "COMPLETED" and done.cost.billed_s == 4
        with pytest.raises(InputError, match="only a LOST job"):
            reconcile(studio, rid, "job-77")
    finally:
        tracker.stop()


def test_a_job_id_the_ledger_could_not_record_is_recorded_when_it_can(small_disk):
    """The disk fills while /run is under way (another job's video, a log): RunPod took the job,
    and its id cannot be written. Generate still answers the row (the job runs, and costs);
    the tracker records the id once space returns and follows the job from then on."""
    ledger = Ledger(small_disk / "ledger.sqlite3")
    filler: list[Path] = []

    def run(job_input, **_):  # the endpoint takes the job as the disk fills up
        filler.append(fill_up(small_disk))
        return SimpleNamespace(id="job-accepted-7", state=JobState.IN_QUEUE)

    queued = SimpleNamespace(state="IN_QUEUE", progress=None, output=None, error=None,
                             delay_ms=None, execution_ms=None, worker_id=None)  # fmt: skip
    tracker = Tracker(
        ledger,
        SimpleNamespace(status=lambda job_id: queued),
        small_disk,
        PRICES,
        poll_s=0.05,
        lease_s=1.5,
    )  # fmt: skip  (it scans every 0.5 s)
    studio = Studio(settings=Settings.from_env({"WANPOD_DATA_DIR": str(small_disk)}), forms={},
                    fill=fill, endpoint=SimpleNamespace(run=run), ledger=ledger,
                    tracker=tracker, prices=PRICES)  # fmt: skip
    p = prepared()
    rid = studio._send(p, "turbo", {}, {"workflow": p.filled.workflow}, None, None, {}, None)
    assert ledger.get(rid).job_id is None  # not written: the disk is full
    filler[0].unlink()  # space returns
    tracker.start()
    try:
        row = wait_for(lambda: (r := ledger.get(rid)).job_id and r, 20, "the job id recorded")
        assert (row.job_id, row.state) == ("job-accepted-7", "IN_QUEUE")
    finally:
        tracker.stop()


def finished_answer(video: bytes) -> SimpleNamespace:
    """RunPod's /status of a COMPLETED job whose output is `video` (base64)."""
    return SimpleNamespace(state="COMPLETED", progress=None, error=None, delay_ms=5,
                           execution_ms=2000, worker_id="w",
                           output={"images": [{"filename": "v.mp4", "type": "base64",
                                               "data": base64.b64encode(video).decode(),
                                               "mime": "video/mp4"}]})  # fmt: skip


def in_progress(ledger: Ledger) -> str:
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
                        gpu="H100 PRO")  # fmt: skip
    ledger.update(rid, job_id="job-1", state="IN_PROGRESS")
    return rid


def test_a_final_write_the_ledger_could_not_take_is_tried_again(tmp_path):
    """The ledger fails the one write that makes a stored job COMPLETED (locked past its busy
    timeout, its server restarting): the job stays live and is stored again, not marked FAILED
    with its video kept and no row pointing at it."""
    video = os.urandom(5000)

    class Blinking(Ledger):  # fails the first final write, as a ledger away for a moment does
        failed = 0

        def update_owned(self, rid, owner, **fields):
            if fields.get("state") == JobState.COMPLETED and not self.failed:
                self.failed += 1
                raise sqlite3.OperationalError("database is locked")
            return super().update_owned(rid, owner, **fields)

    ledger = Blinking(tmp_path / "ledger.sqlite3")
    rid = in_progress(ledger)
    tracker = Tracker(ledger, SimpleNamespace(status=lambda job_id: finished_answer(video)),
                      tmp_path, PRICES, poll_s=0.05)  # fmt: skip
    tracker.retry_s = 0.2
    tracker.start()
    try:
        row = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the job's end")
    finally:
        tracker.stop()
    assert ledger.failed == 1 and row.state == "COMPLETED", row.error
    assert Path(row.result_path).read_bytes() == video


def test_a_postgresql_restart_costs_no_statement(tmp_path):
    """PostgreSQL restarted (a failover, maintenance): every pooled connection is dead. The next
    statements run on new ones, where each once failed with 'terminating connection'."""
    from tests.postgres import NOT_INSTALLED, PostgresCluster, bindir

    if bindir() is None:
        pytest.skip(NOT_INSTALLED)
    with PostgresCluster(bindir()) as pg:
        ledger = Ledger(pg.new_database())
        rid = in_progress(ledger)
        assert in_threads(lambda: ledger.get(rid), 4) == []  # four connections in the pool
        pg.restart()
        assert [ledger.get(rid).id for _ in range(4)] == [rid] * 4
        assert in_threads(lambda: ledger.get(rid), 4) == []


def test_concurrent_writers_wait_rather_than_fail(tmp_path):
    """The transaction that holds the budget check makes other writers wait (busy timeout)."""
    ledger = Ledger(tmp_path / "ledger.sqlite3")

    def write() -> None:
        for _ in range(20):
            with ledger.transaction():
                ledger.create(template="t", mode="m", params={}, workflow={}, quote=None, gpu="g")

    assert in_threads(write, 5) == [] and len(ledger.since(0)) == 100


def test_ledger_failures_after_start_are_said_in_words(small_disk):
    """What an action shows when the ledger fails mid-run: disk full, or damaged (no 'internal
    error (OperationalError)')."""
    from app.errors import user_message

    Ledger(small_disk / "ledger.sqlite3")
    fill_up(small_disk)
    with pytest.raises(sqlite3.OperationalError) as info:
        ledger_with_rows(small_disk / "ledger.sqlite3", 50)
    shown = user_message(info.value)
    assert shown.startswith("disk full: the studio's data folder cannot be written"), shown
    damaged = user_message(sqlite3.DatabaseError("database disk image is malformed"))
    assert "the job ledger failed" in damaged and "start-up check" in damaged
