"""The tracker: ONE scheduling thread that follows every live job, whatever the browsers do.

It polls `endpoint.status(job_id)` for each live ledger row on the schedule of app/studio/polling.py
(every poll_s while running, fast when the job's own pace says it is about to end, backing off
while queued and after errors); the calls go through a small pool so one slow answer delays no
other job. It writes state, progress and
timings into the ledger, and the moment a job is COMPLETED fetches its outputs into the data
folder (app/studio/results.py: base64 decoded, or an S3 URL downloaded server-side; kept
there or uploaded to object storage by the result store, app/studio/store.py)
and records billed seconds and dollars (also for a FAILED / CANCELLED / TIMED_OUT job that ran:
its partial cost, `cost.partial` true). On start it resumes every live row of the ledger, so a
restart loses nothing. Pages do not poll RunPod: they `wait()` on the tracker's change counter
for a row and read the row from the ledger.

Replicas (several studios on one shared ledger, app/studio/db.py): each live job is followed by
ONE replica at a time, the holder of the row's lease (`Ledger.claim`: an atomic conditional UPDATE,
expiring after `lease_s`, renewed at the first poll after a third of it has passed: not a ledger
write at every poll). Every LEASE_SCAN_FRACTION x lease_s the tracker
looks for live rows it does not follow yet (submitted through another replica) and watches them:
a job another replica holds is only observed (its row re-read each poll_s, so a page attached
here still sees every change), and the moment that replica's lease runs out (it died) this one
takes it over; a replica certainly gone (killed on this machine: app/studio/replicas.py) has its
leases freed at the next scan (at once for a restarted studio's own predecessor). Every write a
poll makes, and the final write of a result, is conditional on still holding the live row's lease
(`Ledger.update_owned`): a status answer that outlasted the lease cannot undo what the replica
that took the job over wrote, so a job is stored and ended once; its files have fixed names per
row. A new row is held by the replica sending it; /run's answer is recorded by one conditional
write (`Ledger.sent`), and a row abandoned mid-submit is marked LOST by another (`Ledger.abandon`),
so a slow /run answer is never lost to the scan.

The endpoint is anything with `.status(job_id)` returning an object with `state`, `progress`,
`output`, `error`, `delay_ms`, `execution_ms`, `worker_id` (app/endpoint/client.py's JobStatus).
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from app.endpoint.states import JobState
from app.errors import JobNotFound
from app.studio import cost, disk, polling, timings
from app.studio.db import unavailable
from app.studio.fetch import Fetcher, FetchSettings
from app.studio.keeping import Keeping
from app.studio.ledger import Ledger
from app.studio.progress import Samplers, describe, samplers
from app.studio.replicas import certainly_gone, replica_id
from app.studio.store import LocalStore, ResultStore

log = logging.getLogger("wanpod.tracker")

FETCH_THREADS = 16
UNANSWERED = (
    "the studio stopped while /run was answering: the job may have run on the endpoint and may "
    "cost up to its quote (counted against today's budget); RunPod's job id never arrived. If "
    "the endpoint's requests in the RunPod console show it, reconcile this row with that id"
)
# "unknown job" answers (404) before the row is LOST: at least this many in a row, over at
# least NOT_FOUND_S (RunPod forgets a job's result 30 min after it ends; a burst of 404s from
# its API while the job runs must not lose a job that then completes, runs up its bill and
# keeps its video)
NOT_FOUND_LIMIT = 3
NOT_FOUND_S = 300.0
LEASE_S = 30.0  # a dead replica's jobs are taken over within this (plus one poll)
LEASE_SCAN_FRACTION = 1 / 3  # look for jobs nobody follows 3x per lease time; also the slowest
# poll of a held job, so its lease is renewed well before it runs out


class StatusSource(Protocol):
    def status(self, job_id: str) -> Any: ...


class Tracker(Keeping):
    def __init__(
        self,
        ledger: Ledger,
        endpoint: StatusSource,
        data_dir: Path,
        prices: cost.Prices,
        poll_s: float = 1.0,
        secrets: tuple[str, ...] = (),
        on_final: Callable[[str], None] | None = None,
        lease_s: float = LEASE_S,
        owner: str | None = None,
        store: ResultStore | None = None,
        max_execution_s: float = timings.EXECUTION_TIMEOUT_MAX_MS / 1000,
        fetcher: Fetcher | None = None,
        budget: polling.Budget | None = None,
        not_found_s: float = NOT_FOUND_S,
    ) -> None:
        self.ledger = ledger
        self.endpoint = endpoint
        self.results_dir = Path(data_dir) / "results"
        self.store = store or LocalStore(self.results_dir)
        self.prices = prices
        self.poll_s = poll_s
        self.secrets = secrets
        self.on_final = on_final
        self.on_scan: Callable[[], None] | None = None  # after each lease scan (chains carry on)
        self.lease_s = lease_s
        self.owner = owner or replica_id()
        self._seen: dict[str, float] = {}  # rows another replica follows: last updated_at seen
        self._held: dict[str, float] = {}  # rows whose lease is ours: monotonic end of the lease
        self._next_scan = 0.0
        self._due: dict[str, float] = {}  # each scheduled job's current heap entry
        self._inflight: set[str] = set()  # jobs whose status call is running
        self._poked: set[str] = set()  # webhooks that came while their job's call ran
        self._storing: set[str] = set()  # COMPLETED jobs whose files are being stored here
        self._submitting: set[str] = set()  # rows whose /run is under way here (`submitting`)
        self.max_execution_s = max_execution_s  # the executionTimeout ceiling (guardrails)
        self._implausible: set[str] = set()  # jobs whose endpoint timings were refused
        self.fetcher = fetcher or Fetcher(FetchSettings())  # result downloads (app/studio/fetch.py)
        self.retry_s = disk.RETRY_S
        self._notes: dict[str, str] = {}  # rid -> what its page must say (disk full)
        self._heap: list[tuple[float, str]] = []
        # jobs near their end, polled within `budget`: waiting until due, then ready (in the
        # order they finished sampling, `_ends`: rid -> Pace.end_at while near its end)
        self._fast: list[tuple[float, str]] = []
        self._ready: list[tuple[float, float, str]] = []
        # and when each would be polled on the normal schedule: then it is, token or not, so
        # a job near its end is never polled less often than the others (`_late`: normal due,
        # due, rid)
        self._late: list[tuple[float, float, str]] = []
        self._ends: dict[str, float] = {}
        self.budget = budget or polling.Budget()
        self._scheduled: set[str] = set()
        self._interval: dict[str, float] = {}
        self._misses: dict[str, tuple[int, float]] = {}  # 404s in a row: count, first's time
        # rows whose /run answered while the ledger could not record it: (job id, state)
        self._unrecorded: dict[str, tuple[str, str]] = {}
        self.not_found_s = not_found_s
        self._pace: dict[str, polling.Pace] = {}
        self._samplers: dict[str, Samplers] = {}  # per live job, read once from its workflow
        self._versions: dict[str, int] = {}
        # One lock; the scheduling loop waits on `_cond`, each job's pages on their own
        # condition (`_watchers`: condition and how many wait): a change wakes only the
        # threads following that job, not every page's (64 live jobs woke 64 threads per poll).
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._watchers: dict[str, tuple[threading.Condition, int]] = {}
        self._listeners: dict[str, set[Callable[[], None]]] = {}  # see listen()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # result downloads: each capped in time (WANPOD_RESULT_TIMEOUT_S); enough threads that
        # a few slow-drip URLs cannot hold every one while another job waits to be delivered
        self._pool = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="wanpod-fetch")
        # the history's pictures, made after the jobs are stored, one at a time (keeping.py)
        self._thumbs = ThreadPoolExecutor(1, thread_name_prefix="wanpod-thumbs")
        # /status calls: enough in flight for the budget at a slow answer (app/studio/polling.py)
        self._polls = ThreadPoolExecutor(
            polling.STATUS_CALLS_AT_ONCE, thread_name_prefix="wanpod-status"
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Tracker:
        self._adopt()
        self._next_scan = time.monotonic() + self.lease_s * LEASE_SCAN_FRACTION
        self._thread = threading.Thread(target=self._loop, name="wanpod-tracker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._cond.notify_all()
            for cond, _ in self._watchers.values():
                cond.notify_all()
            for wakes in self._listeners.values():
                for wake in wakes:
                    wake()
        if self._thread:
            self._thread.join(timeout=5)
        self._polls.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._thumbs.shutdown(wait=True, cancel_futures=True)  # the gallery makes what is left
        self._record_unrecorded()
        for rid, (job_id, _) in self._unrecorded.items():  # the operator's way back to them
            log.error(
                "job %s ran on RunPod as %s, which the ledger never recorded: reconcile the "
                "row with that id once it is LOST",
                rid,
                job_id,
            )
        self.ledger.release(self.owner)  # another replica takes our jobs over at once

    def sent_later(self, rid: str, job_id: str, state: str) -> None:
        """/run answered `job_id` for row `rid` while the ledger could not record it (down for
        a moment, or its disk full): it is written at the next scans (every lease/3 s) until
        the ledger takes it, and the job is followed from then on. A row the scan marked LOST
        meanwhile is live again (`Ledger.sent`)."""
        with self._lock:
            self._unrecorded[rid] = (job_id, state)

    def _record_unrecorded(self) -> None:
        with self._lock:
            waiting = list(self._unrecorded.items())
        for rid, (job_id, state) in waiting:
            try:
                written = self.ledger.sent(rid, job_id, state, self.owner, self.lease_s)
            except Exception as exc:  # still away: the next scan tries again
                log.warning("tracker: job %s's id %s not recorded yet: %s", rid, job_id,
                            type(exc).__name__)  # fmt: skip
                continue
            with self._lock:
                self._unrecorded.pop(rid, None)
            if written:
                log.info("tracker: job %s's RunPod id %s is recorded now", rid, job_id)
                self.watch(rid)
            else:
                log.warning("tracker: job %s has a RunPod id already; %s not recorded", rid,
                            job_id)  # fmt: skip

    def lease(self) -> dict[str, Any]:
        """`Ledger.create` arguments: a row being submitted here is held by this replica."""
        return {"owner": self.owner, "lease_s": self.lease_s}

    def _adopt(self) -> None:
        """Watch every live row not followed here yet; a row still SUBMITTING whose lease ran
        out was abandoned between the ledger row and /run's answer: LOST. The leases of a
        replica certainly gone (app/studio/replicas.py: this studio's predecessor on this
        machine, killed) are freed first, so its jobs are taken over now, not when they run out.
        The replicas left holding leases share the endpoint's /status budget with this one."""
        others: set[str] = set()
        for owner in self.ledger.lease_owners():
            replica = owner.split("/")[0]  # an older studio's reaper held "<replica>/reaper"
            if replica == self.owner:
                continue
            if certainly_gone(owner):
                log.info("tracker: taking over the jobs of %s, which is no longer running", owner)
                self.ledger.release(owner)
            else:
                others.add(replica)
        with self._lock:
            self.budget.share(1 + len(others), time.monotonic())
        for row in self.ledger.live():
            if row.job_id:
                if row.id not in self._scheduled:
                    self.watch(row.id)
            elif self.ledger.abandon(row.id, UNANSWERED):
                self._ended(row.id)  # a chain's segment: its chain ends

    # -- pages ---------------------------------------------------------------------------------
    def watch(self, rid: str, leased_at: float | None = None) -> None:
        """Follow row `rid`. `leased_at`: the monotonic time just before its row was written
        with `lease()`, so its lease is this replica's until at least `leased_at + lease_s`
        and the first poll need not take it again (one ledger write less per job, in a burst
        of submits all queued on the ledger's writer)."""
        with self._cond:
            if leased_at is not None:  # (a renewal while /run was under way ended earlier)
                self._held[rid] = max(self._held.get(rid, 0.0), leased_at + self.lease_s)
            if rid not in self._scheduled and rid not in self._storing:
                self._scheduled.add(rid)
                self._interval[rid] = self.poll_s
                self._due[rid] = time.monotonic()
                heapq.heappush(self._heap, (self._due[rid], rid))
            self._bump(rid)
            self._cond.notify_all()

    def poke(self, rid: str) -> None:
        """Poll `rid` now (its webhook came): the job's next poll is moved to this moment."""
        with self._cond:
            if rid in self._inflight:
                self._poked.add(rid)  # polled again as soon as the running call returns
            elif rid in self._scheduled:
                self._due[rid] = time.monotonic()
                heapq.heappush(self._heap, (self._due[rid], rid))
                self._cond.notify_all()
        self.watch(rid)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def version(self, rid: str) -> int:
        with self._cond:
            return self._versions.get(rid, 0)

    def wait(self, rid: str, seen: int, timeout: float) -> int:
        """Block until the row `rid` changed after version `seen` (or timeout); new version."""
        deadline = time.monotonic() + timeout
        with self._lock:
            cond, waiting = self._watchers.get(rid) or (threading.Condition(self._lock), 0)
            self._watchers[rid] = (cond, waiting + 1)
            try:
                while self._versions.get(rid, 0) == seen and not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    cond.wait(left)
                return self._versions.get(rid, 0)
            finally:
                cond, waiting = self._watchers[rid]
                if waiting > 1:
                    self._watchers[rid] = (cond, waiting - 1)
                else:
                    del self._watchers[rid]

    def listen(self, rid: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake()` at each change of the row `rid` and when the tracker stops, from the
        thread that changed it (under the tracker's lock: `wake` must be quick and must not
        block, e.g. `loop.call_soon_threadsafe(event.set)`); returns the call that stops it.
        For a page's live stream on the event loop (app/ui/live_route.py), which holds no
        thread while it waits, where `wait` would."""
        with self._lock:
            self._listeners.setdefault(rid, set()).add(wake)
            if self._stop.is_set():
                wake()

        def stop() -> None:
            with self._lock:
                wakes = self._listeners.get(rid)
                if wakes is not None:
                    wakes.discard(wake)
                    if not wakes:
                        del self._listeners[rid]

        return stop

    def _bump(self, rid: str) -> None:  # caller holds the lock
        self._versions[rid] = self._versions.get(rid, 0) + 1
        if rid in self._watchers:
            self._watchers[rid][0].notify_all()
        for wake in self._listeners.get(rid, ()):
            wake()

    def _changed(self, rid: str) -> None:
        with self._lock:
            self._bump(rid)

    # -- the loop ------------------------------------------------------------------------------
    def _loop(self) -> None:
        """The one scheduling thread: pops due jobs and hands each status call to a small pool,
        so one slow answer does not delay the other jobs (a job is never polled twice at once:
        it is back in a heap only after its call returned)."""
        while not self._stop.is_set():
            if time.monotonic() >= self._next_scan:
                self._next_scan = time.monotonic() + self.lease_s * LEASE_SCAN_FRACTION
                try:
                    self._polls.submit(self._scan)
                except RuntimeError:  # pool shut down: stopping
                    return
            with self._cond:
                rid = self._next_due()
                if rid is None:
                    continue
                self._inflight.add(rid)
            try:
                self._polls.submit(self._poll_and_reschedule, rid)
            except RuntimeError:  # pool shut down: stopping
                return

    def _next_due(self) -> str | None:
        """The job to poll now (caller holds the lock), else None after waiting (up to 1 s)
        until one may be due. A job near its end, once due, waits in `_ready` for a token of the
        fast polls' budget; the one that finished sampling first gets it (app/studio/polling.py).
        One still waiting when its normal poll would be due is polled then without a token:
        while the budget is spent (64 jobs saving together), a job that finished sampling after
        the others waited up to 2 s for a token, where a normal poll comes each poll_s.
        """
        now = time.monotonic()
        while self._heap and self._stale(*self._heap[0]):
            heapq.heappop(self._heap)
        while self._fast and (self._fast[0][0] <= now or self._stale(*self._fast[0])):
            due, rid = heapq.heappop(self._fast)
            if not self._stale(due, rid):
                heapq.heappush(self._ready, (self._ends.get(rid, due), due, rid))
        while self._ready and self._stale(*self._ready[0][1:]):
            heapq.heappop(self._ready)
        while self._late and self._stale(*self._late[0][1:]):
            heapq.heappop(self._late)
        wake = now + 1.0
        for heap in (self._heap, self._late):  # the normal schedule: no token
            if heap:
                if heap[0][0] <= now:
                    return heapq.heappop(heap)[-1]
                wake = min(wake, heap[0][0])
        if self._ready:
            if self.budget.take(now):
                return heapq.heappop(self._ready)[2]
            wake = min(wake, self.budget.ready_at(now))
        if self._fast:
            wake = min(wake, self._fast[0][0])
        self._cond.wait(wake - now)
        return None

    def _stale(self, due: float, rid: str) -> bool:
        """A heap entry replaced by a poke, or whose job's call is still running."""
        return self._due.get(rid) != due or rid in self._inflight

    def _poll_and_reschedule(self, rid: str) -> None:
        fast = False  # near its end: the next poll waits for the budget
        try:
            again = self._poll(rid)
            fast = rid in self._ends
        except Exception as exc:  # never let one job kill the tracker
            again = True
            if disk.full(exc):  # the ledger cannot be written: say so, look again later
                self._disk_full(rid, exc)
                self._interval[rid] = self.retry_s
            elif unavailable(exc):  # its server restarting: asked again with backoff
                log.warning("tracker: polling %s: the ledger is unavailable (%s)", rid,
                            type(exc).__name__)  # fmt: skip
                self._interval[rid] = polling.error_interval(self._interval[rid])
            else:
                log.exception("tracker: polling %s failed", rid)
                self._interval[rid] = polling.error_interval(self._interval[rid])
        with self._cond:
            if again and not self._stop.is_set():
                slowest = self.lease_s * LEASE_SCAN_FRACTION  # the lease is renewed in time
                step = min(self._interval[rid], slowest)
                if rid in self._poked:
                    self._poked.discard(rid)
                    step, fast = 0.0, False
                now = time.monotonic()
                self._due[rid] = now + step
                heapq.heappush(self._fast if fast else self._heap, (self._due[rid], rid))
                if fast:  # without a token, polled as on the normal schedule all the same
                    normal = now + min(self.poll_s, slowest)
                    heapq.heappush(self._late, (normal, self._due[rid], rid))
                self._cond.notify_all()
            else:
                self._scheduled.discard(rid)
                self._pace.pop(rid, None)
                self._samplers.pop(rid, None)
                self._ends.pop(rid, None)
                self._seen.pop(rid, None)
                self._held.pop(rid, None)
                self._due.pop(rid, None)
                self._poked.discard(rid)
            self._inflight.discard(rid)

    @contextlib.contextmanager
    def submitting(self, rid: str) -> Iterator[None]:
        """While /run is under way for row `rid` (written with `lease()`): its lease is renewed
        at every scan, as no poll renews it before the job has an id. /run may take longer
        than the lease (429s ridden out for RATE_WAIT_S, then a slow answer): a scan, here or
        on another replica, would otherwise take the row for abandoned and mark it LOST."""
        with self._lock:
            self._submitting.add(rid)
        try:
            yield
        finally:
            with self._lock:
                self._submitting.discard(rid)

    def _scan(self) -> None:
        self._record_unrecorded()  # before the scan, which would mark such a row LOST
        self._renew_busy()
        try:
            self._adopt()
        except Exception:  # the database away for a moment: the next scan tries again
            log.exception("tracker: looking for unfollowed jobs failed")
        if self.on_scan is not None:
            try:
                self.on_scan()
            except Exception:
                log.exception("tracker: on_scan hook failed")

    def _renew_busy(self) -> None:
        """Keep the leases of the rows no poll renews: those whose /run is under way here, and
        the jobs whose results are being stored here (a download and upload longer than the
        lease must not let another replica take the job, store it again and make this one's
        final write fail, over and over)."""
        with self._lock:
            busy = [(rid, "sent") for rid in self._submitting]
            busy += [(rid, "stored") for rid in self._storing]
        for rid, doing in busy:
            try:
                if not self._hold(rid):
                    log.warning("tracker: %s was taken over while it was %s", rid, doing)
            except Exception as exc:  # the ledger away for a moment: the next scan renews it
                log.warning("tracker: lease of %s not renewed: %s", rid, type(exc).__name__)

    def _observe(self, rid: str, updated_at: float) -> bool:
        """A job another replica holds: tell this replica's pages when its row changed."""
        if self._seen.get(rid) != updated_at:
            self._seen[rid] = updated_at
            self._changed(rid)
        self._interval[rid] = self.poll_s
        self._ends.pop(rid, None)  # its row is re-read, not polled: no fast poll's token
        return True

    def _hold(self, rid: str) -> bool:
        """True when this replica holds `rid`'s lease: taken or renewed in the ledger only when
        less than (1 - LEASE_SCAN_FRACTION) of it is left (no other replica can take a lease
        before it runs out, so the rows are not rewritten at every poll)."""
        now = time.monotonic()
        if self._held.get(rid, now) - now > self.lease_s * (1 - LEASE_SCAN_FRACTION):
            return True
        if self.ledger.claim(rid, self.owner, self.lease_s):
            self._held[rid] = now + self.lease_s  # the ledger's end is later (taken after now)
            return True
        self._held.pop(rid, None)
        return False

    def _poll(self, rid: str) -> bool:
        """One status call for one job; True when it must be polled again."""
        row = self.ledger.get(rid, workflow=False)
        if row is None or not row.live or not row.job_id:
            if row is not None and self._seen.get(rid) != row.updated_at:
                self._changed(rid)  # ended through another replica
            return False
        if not self._hold(rid):
            return self._observe(rid, row.updated_at)
        self._seen.pop(rid, None)
        try:
            st = self.endpoint.status(row.job_id)
        except Exception as exc:
            if isinstance(exc, JobNotFound):
                count, since = self._misses.get(rid, (0, time.monotonic()))
                self._misses[rid] = (count + 1, since)
                if count + 1 >= NOT_FOUND_LIMIT and time.monotonic() - since >= self.not_found_s:
                    self._misses.pop(rid, None)
                    self._finish(rid, JobState.LOST, error="the endpoint no longer knows this job")
                    return False
            log.warning("tracker: status of %s: %s", rid, type(exc).__name__)
            self._interval[rid] = polling.error_interval(self._interval[rid])
            return True
        state = JobState.parse(st.state)
        if state is JobState.UNKNOWN:  # an answer without a state (a proxy's, an API error's
            log.warning(  # body with HTTP 200): nothing learnt, asked again as after an error
                "tracker: status of %s: no state in the answer (%s)",
                rid,
                self._scrub(str(st.state))[:80],
            )
            self._interval[rid] = polling.error_interval(self._interval[rid])
            return True
        self._misses.pop(rid, None)
        fields: dict[str, Any] = {"state": state}
        fields.update(self._timings(rid, st))
        if getattr(st, "worker_id", None):
            fields["worker_id"] = st.worker_id
        if state.running and isinstance(st.progress, dict):
            fields["progress"] = st.progress
        near_end = False
        if isinstance(st.progress, dict):
            now = time.monotonic()
            pace = self._pace.setdefault(rid, polling.Pace())
            stage = st.progress.get("stage")
            if stage == "sampling":
                plan = self._samplers.get(rid) or samplers(self.ledger.workflow(rid))
                self._samplers[rid] = plan
                fraction = describe(state, st.progress, 0.0, None, plan).fraction
                pace.observe(now, fraction, polling.elapsed(st.progress))
            elif stage in polling.PAST_SAMPLING:
                pace.past_sampling(now, polling.elapsed(st.progress))
            near_end = polling.near_end(pace, now, stage, self.poll_s)
            if near_end:
                self._ends[rid] = pace.end_at(now)
        if not near_end:
            self._ends.pop(rid, None)
        if state is JobState.IN_QUEUE:
            self._interval[rid] = polling.queued_interval(self._interval[rid], self.poll_s)
        elif near_end:  # about to end: notice the result quickly (within the status budget)
            self._interval[rid] = polling.fast_interval(self.poll_s)
        else:
            self._interval[rid] = self.poll_s
        if state is JobState.COMPLETED:
            fields["state"] = JobState.IN_PROGRESS  # stays live until the files are stored
            fields["completed_seen_at"] = time.time()
            fields["progress"] = {"stage": "delivering"}
            if not self._record(rid, fields):
                return self._observe(rid, row.updated_at)
            self._changed(rid)
            with self._cond:  # still live in the ledger: not to be polled again meanwhile
                self._storing.add(rid)
            self._pool.submit(self._store, rid, st, fields.get("execution_ms"))
            return False
        if state.final:
            err = st.error if isinstance(st.error, str) else None
            if err is None and isinstance(st.output, dict):
                err = st.output.get("error")
            if fields.get("execution_ms") or rid in self._implausible:  # it still bills
                bill = self._bill(rid, fields.get("execution_ms"), fields.get("delay_ms"), row.gpu)
                fields["cost"] = dataclasses.replace(bill, partial=True)
            more = {k: v for k, v in fields.items() if k != "state"}
            if not self._finish(rid, state, error=self._scrub(str(err or state.lower())), **more):
                return self._observe(rid, row.updated_at)  # the replica holding it ends it
            return False
        changed = {k: v for k, v in fields.items() if getattr(row, k) != v}
        if changed:  # a poll that learnt nothing new writes nothing (and wakes no page)
            if not self._record(rid, changed):
                return self._observe(rid, row.updated_at)
            self._changed(rid)
        return True

    def _record(self, rid: str, fields: dict[str, Any]) -> bool:
        """Write what a status call learnt while this replica still holds the live row (one
        conditional write): False, the lease forgotten here, when the call outlasted the lease
        and another replica took the job over, or ended it, meanwhile (a stale answer
        written over it would make an ended job live again, to be stored twice)."""
        if self.ledger.update_owned(rid, self.owner, **fields):
            return True
        self._held.pop(rid, None)
        return False
