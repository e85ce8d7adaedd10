"""The tracker against the real local control plane: resuming rows at start, unknown jobs."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from app.endpoint import EndpointClient
from app.settings import PRICES_PATH
from app.studio import cost
from app.studio.ledger import Ledger
from app.studio.tracker import Tracker
from tests.helpers import COMFY_FIXTURES, wait_for


def row(ledger: Ledger) -> str:
    return ledger.create(
        template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None, gpu="H100 PRO"
    )


def sent_elsewhere(stack, tmp_path, prompt: str) -> tuple[EndpointClient, Ledger, str]:
    """A ledger row whose job was sent to the stack by someone else (no tracker followed it)."""
    from workflows.fill import fill

    filled = fill("t2v_14b", {"prompt": prompt, "seconds": 1.0})
    client = EndpointClient(stack.base_url, stack.api_key)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rid = row(ledger)
    ref = client.run({"workflow": filled.workflow})
    ledger.update(rid, job_id=ref.id, state=ref.state, submitted_at=time.time())
    return client, ledger, rid


def test_rows_without_answer_or_unknown_to_the_endpoint_end_lost(stack, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    unanswered = row(ledger)  # the app died between writing the row and /run answering
    unknown = row(ledger)
    ledger.update(unknown, job_id="no-such-job", state="IN_QUEUE")
    client = EndpointClient(stack.base_url, stack.api_key, retries=0)
    tracker = Tracker(ledger, client, tmp_path, cost.load_prices(PRICES_PATH), poll_s=0.05,
                      not_found_s=0.5)  # fmt: skip  # (300 s by default: a burst is no end)
    tracker.start()
    try:
        assert ledger.get(unanswered).state == "LOST"
        assert "while /run was answering: the job may have run" in ledger.get(unanswered).error
        wait_for(lambda: ledger.get(unknown).state == "LOST", what="the unknown job LOST")
        assert ledger.get(unknown).error == "the endpoint no longer knows this job"
        assert ledger.live() == []
    finally:
        tracker.stop()


def test_a_demo_studio_ends_a_job_its_new_stack_does_not_know_at_once(stack, tmp_path):
    """A demo studio starts its own local stack, which knows no job of an earlier start: a job
    left running by a demo studio that stopped ends LOST at the first answers (as the demo's
    banner says), not after the 300 s a RunPod endpoint's 404 burst is given."""
    from app.__main__ import assemble
    from app.settings import Settings

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    left = row(ledger)
    ledger.update(left, job_id="job-of-the-last-demo", state="IN_PROGRESS")
    env = {**stack.env(), "WANPOD_DATA_DIR": str(tmp_path), "WANPOD_POLL_S": "0.1",
           "WANPOD_PREFLIGHT": "off"}  # fmt: skip
    _, studio = assemble(Settings.from_env(env), stack.base_url, stack.api_key, True)
    try:
        wait_for(lambda: ledger.get(left).state == "LOST", 60, "the job LOST")
        assert ledger.get(left).error == "the endpoint no longer knows this job"
    finally:
        studio.tracker.stop()


def test_a_job_submitted_elsewhere_is_followed_and_stored(stack, tmp_path):
    client, ledger, rid = sent_elsewhere(stack, tmp_path, "tracker test")
    tracker = Tracker(ledger, client, tmp_path, cost.load_prices(PRICES_PATH), poll_s=0.1)
    tracker.start()  # resumes the live row by itself
    try:
        wait_for(lambda: ledger.get(rid).state == "COMPLETED", 30, "the job COMPLETED")
        done = ledger.get(rid)
        assert done.result_path.startswith(str(tmp_path / "results" / rid))
        with open(done.result_path, "rb") as fh:
            assert fh.read(12)[4:8] == b"ftyp"
        assert done.cost.billed_s == -(-done.execution_ms // 1000)
        assert done.cost.dollars == done.cost.billed_s * 0.00116 and not done.cost.partial
    finally:
        tracker.stop()


def test_a_job_is_completed_before_its_thumbnail_and_keeps_its_video_when_that_fails(
    stack, tmp_path, caplog
):
    """The history's picture is made after the job's row says COMPLETED (one write with its
    outputs), on a thread of its own: a thumbnail that cannot be kept (here: the disk is full
    for it) is logged and leaves the stored job as it is, where it once kept the job waiting."""
    import errno
    import threading

    from app.studio.store import LocalStore

    release = threading.Event()
    asked: list[str] = []

    class ThumbnailsFail(LocalStore):
        def put(self, rid: str, path, mime: str) -> str:
            asked.append(rid)
            release.wait(30)  # the job is COMPLETED while its thumbnail is being kept
            raise OSError(errno.ENOSPC, "No space left on device")

    client, ledger, rid = sent_elsewhere(stack, tmp_path, "thumbnail after")
    store = ThumbnailsFail(tmp_path / "results")
    tracker = Tracker(
        ledger, client, tmp_path, cost.load_prices(PRICES_PATH), poll_s=0.1, store=store
    )
    tracker.start()
    try:
        wait_for(lambda: asked, 30, "the thumbnail to be kept")
        done = ledger.get(rid)  # COMPLETED, with its video, while the thumbnail is under way
        assert done.state == "COMPLETED" and done.stored_at and done.finished_at
        assert done.result_path.endswith(".mp4") and done.cost is not None
        release.set()
        wait_for(lambda: "thumbnail of " + rid + " not kept" in caplog.text, 30, "the log line")
        done = ledger.get(rid)
        assert done.state == "COMPLETED" and done.error is None and not ledger.live()
        with open(done.result_path, "rb") as fh:
            assert fh.read(12)[4:8] == b"ftyp"
    finally:
        release.set()
        tracker.stop()


class ClaimCounting(Ledger):
    """A ledger that records every lease claim made on it (`claims`)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.claims: list[str] = []

    def claim(self, rid: str, owner: str, lease_s: float) -> bool:
        self.claims.append(rid)
        return super().claim(rid, owner, lease_s)


def failing_at_sixth_poll(ledger: Ledger, tmp_path: Path) -> tuple[Tracker, list[str]]:
    """A tracker (not started) whose endpoint answers IN_PROGRESS five times, then FAILED; and
    the job ids it was asked about."""
    polls: list[str] = []

    def status(job_id: str) -> SimpleNamespace:
        polls.append(job_id)
        state = "IN_PROGRESS" if len(polls) < 6 else "FAILED"
        return SimpleNamespace(state=state, progress=None, output=None, error="boom",
                               delay_ms=None, execution_ms=None, worker_id=None)  # fmt: skip

    prices = cost.load_prices(PRICES_PATH)
    return Tracker(ledger, SimpleNamespace(status=status), tmp_path, prices, poll_s=0.05), polls


def test_a_followed_job_is_polled_often_but_its_lease_written_once(tmp_path):
    """The lease is renewed when a third of it has passed, not rewritten at every poll."""
    from app.endpoint.states import JobState

    ledger = ClaimCounting(tmp_path / "ledger.sqlite3")
    rid = row(ledger)
    ledger.update(rid, job_id="job-1", state=JobState.IN_PROGRESS)
    tracker, polls = failing_at_sixth_poll(ledger, tmp_path)
    tracker.start()
    try:
        done = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the job's end")
    finally:
        tracker.stop()
    assert done.state == "FAILED" and len(polls) == 6
    assert ledger.claims == [rid]  # taken at the first poll, not renewed within 30 s


def test_a_job_submitted_here_is_followed_on_the_lease_its_row_was_written_with(tmp_path):
    """The studio writes a new row with this replica's lease (`Tracker.lease()`) and hands the
    moment to `watch`: the tracker follows it without taking the lease again, and renews it
    only once a third of it has passed."""
    from app.endpoint.states import JobState

    ledger = ClaimCounting(tmp_path / "ledger.sqlite3")
    tracker, polls = failing_at_sixth_poll(ledger, tmp_path)
    tracker.start()
    try:
        leased_at = time.monotonic()
        rid = ledger.create(
            template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
            gpu="H100 PRO", **tracker.lease(),
        )  # fmt: skip
        ledger.update(rid, job_id="job-1", state=JobState.IN_QUEUE)
        tracker.watch(rid, leased_at=leased_at)
        done = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the job's end")
    finally:
        tracker.stop()
    assert done.state == "FAILED" and len(polls) == 6  # the end is written by the lease's holder
    assert ledger.claims == []  # the row's own lease: not taken again within its first 20 s


def test_a_change_wakes_only_the_pages_of_that_job(tmp_path):
    """Each page follows its job through `Tracker.wait`; a change (a poll, the job's end) wakes
    the threads waiting on that job, not every page's: 64 live jobs would otherwise wake 64
    threads at each of their polls."""
    import threading

    prices = cost.load_prices(PRICES_PATH)
    tracker = Tracker(Ledger(tmp_path / "ledger.sqlite3"), None, tmp_path, prices)
    got: list[int] = []
    page = threading.Thread(target=lambda: got.append(tracker.wait("wp-a", 0, 60)))
    page.start()
    wait_for(lambda: "wp-a" in tracker._watchers, what="the page waiting")
    waiting_on_a = tracker._watchers["wp-a"][0]
    for _ in range(50):  # another job's polls
        tracker._changed("wp-b")
    assert len(waiting_on_a._waiters) == 1 and page.is_alive()  # never notified
    tracker._changed("wp-a")
    page.join(10)
    assert got == [1] and tracker._watchers == {}  # woken with the new version; nothing kept


def test_polls_that_learn_nothing_new_write_nothing(tmp_path):
    """Each poll that brings news writes it (the row's updated_at moves: pages and other
    replicas see it); one that brings nothing new writes nothing."""
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rid = row(ledger)
    ledger.update(rid, job_id="job-1", state="IN_QUEUE")
    answer = SimpleNamespace(
        state="IN_PROGRESS", progress={"stage": "loading"}, error=None, delay_ms=40,
        execution_ms=None, worker_id="w1", output=None,
    )  # fmt: skip
    polls: list[str] = []

    def status(job_id: str) -> SimpleNamespace:
        polls.append(job_id)
        return answer

    tracker = Tracker(ledger, SimpleNamespace(status=status), tmp_path,
                      cost.load_prices(PRICES_PATH), poll_s=0.05)  # fmt: skip
    tracker.start()
    try:
        wait_for(lambda: len(polls) >= 2, what="a second poll")  # the first one's news written
        seen = ledger.get(rid)
        assert seen.state == "IN_PROGRESS" and seen.progress == {"stage": "loading"}
        assert seen.delay_ms == 40 and seen.worker_id == "w1"
        wait_for(lambda: len(polls) >= 8, what="six more polls")
        assert ledger.get(rid).updated_at == seen.updated_at  # nothing new: nothing written
        answer.progress = {"stage": "sampling", "step": 1, "of": 4}
        wait_for(lambda: ledger.get(rid).progress == answer.progress, what="the new progress")
        assert ledger.get(rid).updated_at > seen.updated_at
    finally:
        tracker.stop()


def test_a_slow_answer_from_runpod_holds_back_no_other_job(tmp_path):
    """Each /status call waits for RunPod's answer (across the internet, 100-250 ms), so the
    tracker keeps STATUS_CALLS_AT_ONCE of them in flight: enough for its poll budget at a slow
    answer (app/studio/polling.py). Here every answer waits until the test lets them go."""
    import threading

    from app.studio import polling

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    jobs = polling.STATUS_CALLS_AT_ONCE + 5
    rids = [row(ledger) for _ in range(jobs)]
    for i, rid in enumerate(rids):
        ledger.update(rid, job_id=f"job-{i}", state="IN_PROGRESS")
    lock, answer = threading.Lock(), threading.Event()
    in_flight, most = [0], [0]

    def status(job_id: str) -> SimpleNamespace:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        answer.wait(60)
        with lock:
            in_flight[0] -= 1
        return SimpleNamespace(state="FAILED", progress=None, output=None, error="boom",
                               delay_ms=None, execution_ms=None, worker_id=None)  # fmt: skip

    tracker = Tracker(ledger, SimpleNamespace(status=status), tmp_path,
                      cost.load_prices(PRICES_PATH), poll_s=0.05)  # fmt: skip
    tracker.start()
    try:
        wait_for(lambda: most[0] == polling.STATUS_CALLS_AT_ONCE, 30, "the calls in flight")
        answer.set()
        wait_for(lambda: all(ledger.get(r).final for r in rids), 30, "every job's end")
    finally:
        answer.set()
        tracker.stop()
    assert most[0] == polling.STATUS_CALLS_AT_ONCE > 8  # the earlier pool's 8


def test_fast_polls_go_to_the_jobs_that_finished_sampling_first_within_the_budget(tmp_path):
    """Six jobs reach their end together. Their fast polls share a small budget (4 a second
    here): each token goes to the due job that left sampling first (by the worker's own
    `elapsed_s`), not round the six, and when those jobs end the next ones get the tokens."""
    import threading

    from app.studio import polling

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rids = [row(ledger) for _ in range(6)]
    for i, rid in enumerate(rids):
        ledger.update(rid, job_id=f"job-{i}", state="IN_PROGRESS")
    lock, ended = threading.Lock(), set()
    started = time.monotonic() - 10.0  # the workers' start, on this clock
    polled, saving_seen, fast = [0] * 6, [False] * 6, []

    def status(job_id: str) -> SimpleNamespace:
        i, now = int(job_id.split("-")[1]), time.monotonic()
        with lock:
            polled[i] += 1
            if saving_seen[i]:
                fast.append((now, i))  # polled again after it answered "saving"
            if i in ended:
                state, progress = "FAILED", None
            elif polled[i] == 1:  # sampling: the latest update is this moment's
                state, progress = "IN_PROGRESS", {"stage": "sampling", "elapsed_s": now - started}
            else:  # then past it: it left sampling 9 s after its worker started, job 0 first
                saving_seen[i] = True
                state, progress = "IN_PROGRESS", {"stage": "saving", "elapsed_s": 9.0 + 0.05 * i}
        return SimpleNamespace(state=state, progress=progress, output=None, error="boom",
                               delay_ms=None, execution_ms=None, worker_id=None)  # fmt: skip

    class Budget(polling.Budget):  # the first token once all six wait for one
        def take(self, now: float) -> bool:
            self.open = getattr(self, "open", False) or len(tracker._ready) == 6
            return self.open and super().take(now)

    budget = Budget(rate=4.0, burst=1.0)
    # the normal schedule (poll_s) far off: every poll after the second takes a token
    tracker = Tracker(ledger, SimpleNamespace(status=status), tmp_path,
                      cost.load_prices(PRICES_PATH), poll_s=60.0, lease_s=600.0,
                      budget=budget)  # fmt: skip
    tracker.start()
    try:
        wait_for(lambda: all(polled), 30, "each job's first poll")
        for rid in rids:  # the second at once (as a webhook would): "saving"
            tracker.poke(rid)
        wait_for(lambda: len(fast) >= 8, 30, "eight fast polls")
        with lock:
            first = [i for _, i in fast[:8]]
            ended.update({0, 1})
        assert set(first) <= {0, 1}, first  # jobs 2-5 wait: they left sampling later
        wait_for(lambda: ledger.get(rids[0]).final and ledger.get(rids[1]).final, 30, "0, 1 end")
        k = len(fast)
        wait_for(lambda: len(fast) >= k + 6, 30, "six more fast polls")
        with lock:
            then = [i for _, i in fast[k : k + 6]]
            ended.update(range(6))
        assert set(then) <= {2, 3}, then
        wait_for(lambda: all(ledger.get(r).final for r in rids), 30, "every job's end")
    finally:
        tracker.stop()
    span = fast[-1][0] - fast[0][0]
    assert len(fast) <= budget.burst + budget.rate * span + 1  # never over the budget


def test_a_job_near_its_end_is_polled_at_least_on_the_normal_schedule_when_the_budget_is_spent(
    tmp_path,
):
    """Three jobs past sampling (saving) whose ends do not come. The fast polls' budget holds one
    token and never refills: the first poll near the end takes it, and then no job has one.
    Each is still polled every poll_s, as a job not near its end is: the budget only governs
    the polls beyond the normal schedule (before, a job waiting for a token was not polled at
    all meanwhile; in the 64-user bench it waited up to 2 s for one)."""
    import threading

    from app.studio import polling

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rids = [row(ledger) for _ in range(3)]
    for i, rid in enumerate(rids):
        ledger.update(rid, job_id=f"job-{i}", state="IN_PROGRESS")
    lock, polls, done = threading.Lock(), {i: [] for i in range(3)}, threading.Event()

    def status(job_id: str) -> SimpleNamespace:
        i = int(job_id.split("-")[1])
        with lock:
            polls[i].append(time.monotonic())
        progress = {"stage": "saving", "elapsed_s": 10.0 + i}
        state = "FAILED" if done.is_set() else "IN_PROGRESS"
        return SimpleNamespace(state=state, progress=progress, output=None, error="boom",
                               delay_ms=None, execution_ms=None, worker_id=None)  # fmt: skip

    budget = polling.Budget(rate=1e-9, burst=1.0)  # one token, then none for ~30 years
    poll_s = 0.1
    tracker = Tracker(ledger, SimpleNamespace(status=status), tmp_path,
                      cost.load_prices(PRICES_PATH), poll_s=poll_s, budget=budget)  # fmt: skip
    tracker.start()
    try:
        wait_for(lambda: all(len(p) >= 6 for p in polls.values()), 30, "six polls of each job")
    finally:
        done.set()
        wait_for(lambda: all(ledger.get(r).final for r in rids), 30, "every job's end")
        tracker.stop()
    for times in polls.values():  # and no faster than that: they took no token
        assert len(times) <= (times[-1] - times[0]) / poll_s + 2


def test_replicas_following_jobs_on_the_endpoint_split_its_status_budget(tmp_path):
    """RunPod's /status limit is the endpoint's. A tracker that finds another replica holding a
    lease on a live job takes half the fast polls' budget; its own leases do not count. Once
    that replica's job has ended, the next scan of the ledger gives it the whole budget back."""
    from app.endpoint.states import JobState

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    polls: list[str] = []

    def status(job_id: str) -> SimpleNamespace:
        polls.append(job_id)
        return SimpleNamespace(state="IN_PROGRESS", progress=None, output=None, error=None,
                               delay_ms=None, execution_ms=None, worker_id=None)  # fmt: skip

    prices = cost.load_prices(PRICES_PATH)
    tracker = Tracker(ledger, SimpleNamespace(status=status), tmp_path, prices, poll_s=0.05,
                      lease_s=0.6, owner="replica-a")  # fmt: skip
    whole = tracker.budget.mine()
    ours = row(ledger)
    ledger.update(ours, job_id="job-a", state=JobState.IN_PROGRESS)
    theirs = ledger.create(
        template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None, gpu="H100 PRO",
        owner="replica-b", lease_s=60.0,
    )  # fmt: skip
    ledger.update(theirs, job_id="job-b", state=JobState.IN_PROGRESS)
    tracker.start()
    try:
        wait_for(lambda: "job-a" in polls, 10, "replica a's first poll of its own job")
        assert tracker.budget.replicas == 2  # a and b, each once
        assert tracker.budget.mine() == (whole[0] / 2, whole[1] / 2)
        ledger.update(theirs, state=JobState.COMPLETED, finished_at=time.time(),
                      lease_owner=None, lease_until=None)  # fmt: skip
        wait_for(lambda: tracker.budget.replicas == 1, 10, "the next scan of the ledger")
        assert tracker.budget.mine() == whole
    finally:
        tracker.stop()
    assert "job-b" not in polls  # replica b's job is b's to poll


def completed_with_video() -> SimpleNamespace:
    """RunPod's /status of a finished job, its video as base64 (what the worker returns)."""
    import base64

    video = COMFY_FIXTURES / "recordings" / "files" / "video_success" / "acceptance_00001_.mp4"
    data = base64.b64encode(video.read_bytes()).decode()
    output = {"images": [{"filename": "v.mp4", "type": "base64", "data": data}]}
    return SimpleNamespace(state="COMPLETED", progress=None, error=None, delay_ms=10,
                           execution_ms=5000, worker_id="w1", output=output)  # fmt: skip


def test_an_answer_that_outlasts_the_lease_leaves_the_job_another_replica_ended(tmp_path):
    """Replica A's /status call outlasts its lease (RunPod slow, a read timeout and a retry);
    replica B takes the job over, stores it and ends it. A's answer, arriving then, is
    written only while A holds the live row: the ended row stays as B wrote it, the job is
    stored once and ended once."""
    import threading

    from app.endpoint.states import JobState

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rid = row(ledger)
    ledger.update(rid, job_id="job-1", state=JobState.IN_PROGRESS)
    done = completed_with_video()
    calling, answer = threading.Event(), threading.Event()

    def slow_status(job_id: str) -> SimpleNamespace:
        calling.set()
        answer.wait(60)
        return done

    ended: list[tuple[str, str]] = []
    prices = cost.load_prices(PRICES_PATH)

    def replica(name: str, status) -> Tracker:
        def on_final(rid: str) -> None:
            ended.append((name, rid))

        return Tracker(ledger, SimpleNamespace(status=status), tmp_path / name, prices,
                       lease_s=1.0, owner=name, on_final=on_final)  # fmt: skip

    a, b = replica("A", slow_status), replica("B", lambda job_id: done)
    a.start()
    try:
        calling.wait(30)
        lease = "SELECT lease_until FROM jobs WHERE id=?"
        wait_for(lambda: ledger.db.execute(lease, (rid,)).one()["lease_until"] < time.time(),
                 what="A's lease running out while its call waits")  # fmt: skip
        b.start()
        by_b = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "B's end of the job")
        answer.set()  # A's answer arrives now: COMPLETED, like B's
        wait_for(lambda: rid not in a._scheduled and rid not in a._storing and not a._inflight,
                 what="A done with the job")  # fmt: skip
        now = ledger.get(rid)
        assert now.state == "COMPLETED" and now.updated_at == by_b.updated_at  # as B wrote it
        assert ended == [("B", rid)]
        assert not (tmp_path / "A" / "results" / rid).exists()  # A never stored it
        assert list((tmp_path / "B" / "results" / rid).iterdir())
    finally:
        answer.set()
        a.stop()
        b.stop()
    assert ledger.live() == [] and ended == [("B", rid)]


def failed_answer(job_id: str) -> SimpleNamespace:
    return SimpleNamespace(state="FAILED", progress=None, error=f"{job_id} failed on its worker",
                           delay_ms=10, execution_ms=900, worker_id="w1", output=None)  # fmt: skip


def test_a_run_answer_after_the_submit_lease_ran_out_is_followed_all_the_same(tmp_path):
    """/run answers after the new row's lease ran out (a connect timeout and a retry, a 429's
    Retry-After): the scan has marked the row LOST meanwhile, as a studio that stopped
    mid-submit. The job exists on the endpoint, so its answer makes the row live again, held
    here, and the tracker follows it to its end."""
    from app.endpoint.states import JobState

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    tracker = Tracker(ledger, SimpleNamespace(status=failed_answer), tmp_path,
                      cost.load_prices(PRICES_PATH), lease_s=1.0)  # fmt: skip
    tracker.start()
    try:
        rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={},
                            quote=None, gpu="H100 PRO", **tracker.lease())  # fmt: skip
        lost = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the scan's LOST")
        assert lost.state == "LOST" and "RunPod's job id never arrived" in lost.error
        assert ledger.sent(rid, "job-late", JobState.IN_QUEUE, **tracker.lease())  # /run's answer
        revived = ledger.get(rid)
        assert revived.live and revived.job_id == "job-late"
        assert revived.finished_at is None and revived.error is None
        tracker.watch(rid)
        done = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the job's end")
    finally:
        tracker.stop()
    assert done.state == "FAILED" and done.error == "job-late failed on its worker"
    assert not ledger.sent(rid, "job-other", JobState.IN_QUEUE, **tracker.lease())  # once only


def test_the_scan_leaves_a_row_whose_run_answer_is_recorded_first(tmp_path):
    """The scan read the row without a job id; /run's answer is recorded before the scan
    writes: the row is not marked LOST (its write is conditional on the row still having no
    job id), and the job is followed."""
    from app.endpoint.states import JobState

    class AnsweredMeanwhile(Ledger):
        def abandon(self, rid: str, error: str) -> bool:
            self.sent(rid, "job-1", JobState.IN_QUEUE, owner="elsewhere", lease_s=0.0)
            return super().abandon(rid, error)

    ledger = AnsweredMeanwhile(tmp_path / "ledger.sqlite3")
    tracker = Tracker(ledger, SimpleNamespace(status=failed_answer), tmp_path,
                      cost.load_prices(PRICES_PATH), lease_s=1.0)  # fmt: skip
    rid = row(ledger)  # no lease: abandoned as far as the scan can tell
    tracker.start()
    try:
        done = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the job's end")
    finally:
        tracker.stop()
    assert done.state == "FAILED" and done.job_id == "job-1"
    assert done.error == "job-1 failed on its worker"  # followed, not LOST
