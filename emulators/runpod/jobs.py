"""Jobs of the local RunPod control plane: the state machine, the queue and the public shapes.

Contract (mirrors RunPod serverless, see RunPod serverless docs: job lifecycle and /health):
- states IN_QUEUE -> IN_PROGRESS (at hand-out; `delayTime` from it) -> COMPLETED | FAILED |
  CANCELLED | TIMED_OUT; `executionTime` at the final state. Final states are sticky: late
  progress, stream chunks and results for a final job are ignored.
- while IN_PROGRESS the latest progress is shown as `output`.
- `/retry` (FAILED/TIMED_OUT only) keeps the id and re-queues the job.
- a final job is kept `retention_s` seconds (`/runsync` jobs `sync_retention_s`), then it is gone.
- `policy.ttl` (ms from submit): a queued job past it becomes TIMED_OUT; a running one is removed.
- `policy.executionTimeout` must be more than 5000 ms (RunPod answers 400 at 5000 and below); the
  bounds are app.endpoint's, which the studio's guardrails clamp to.
No I/O here: the aiohttp layer (app.py) and the worker supervisor (workers.py) drive it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from app.endpoint import EXECUTION_TIMEOUT_ABOVE_MS, EXECUTION_TIMEOUT_MAX_MS

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TIMED_OUT = "TIMED_OUT"
FINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})


class JobRequestError(ValueError):
    """A client request the control plane refuses with 400 (message is the `error` text)."""


@dataclass
class Job:
    id: str
    input: Any
    submitted: float
    execution_timeout_ms: int
    ttl_ms: int
    webhook: str | None = None
    s3_config: dict | None = None
    low_priority: bool = False
    sync: bool = False
    state: str = IN_QUEUE
    taken: float | None = None
    finished: float | None = None
    worker_id: str | None = None
    output: Any = None
    error: str | None = None
    progress: Any = None
    stream: list = field(default_factory=list)
    stream_sent: int = 0
    stop_pending: bool = False  # a stop signal must reach the worker (cancel/timeout)
    stop_sent_at: float = 0.0
    pings_missing: int = 0  # heartbeats after the take that did not list this job
    retries: int = 0
    taken_wall: float | None = None  # time.time() of the hand-out (tests order jobs by it)
    finished_wall: float | None = None  # time.time() of the final state (bench)
    ignored_posts: int = 0  # progress/results that arrived after the final state
    webhook_calls: int = 0  # POSTs to `webhook` for the latest final state
    status_calls: int = 0  # GET /status answered for this job (bench: polls per job)
    webhook_done: bool = False  # delivered (200) or out of tries
    progress_wall: list = field(default_factory=list)  # [(time.time(), progress)], last 100

    def worker_payload(self) -> dict:
        """What the worker's job-take receives (handed to the handler verbatim by the SDK)."""
        job: dict[str, Any] = {"id": self.id, "input": self.input}
        if self.s3_config is not None:
            job["s3Config"] = self.s3_config
        if self.webhook:
            job["webhook"] = self.webhook
        return job

    def status_body(self) -> dict:
        """The public /status body (RunPod's field names; times in ms)."""
        body: dict[str, Any] = {"id": self.id, "status": self.state}
        if self.taken is not None:
            body["delayTime"] = round((self.taken - self.submitted) * 1000)
        if self.finished is not None and self.taken is not None:
            body["executionTime"] = round((self.finished - self.taken) * 1000)
        if self.worker_id is not None:
            body["workerId"] = self.worker_id
        if self.state == IN_PROGRESS:
            if self.progress is not None:
                body["output"] = self.progress
        elif self.state == COMPLETED:
            if self.output is not None:
                body["output"] = self.output
        elif self.state in FINAL:
            if self.output is not None:
                body["output"] = self.output
            if self.error is not None:
                body["error"] = self.error
        return body


def _ms(policy: dict, key: str, default: int, lo: int, hi: int, above: bool = False) -> int:
    """policy[key] in ms within [lo, hi], or (lo, hi] when `above`; JobRequestError otherwise."""
    value = policy.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobRequestError(f"policy.{key} must be a number of milliseconds, got {value!r}")
    if (value <= lo if above else value < lo) or value > hi:
        low = f"more than {lo}" if above else f"at least {lo}"
        raise JobRequestError(f"policy.{key} must be {low} and at most {hi} ms, got {value}")
    return int(value)


WEEK_MS = 7 * 24 * 3600 * 1000  # the longest policy.ttl


@dataclass
class JobStore:
    """All jobs of one endpoint, the FIFO queue, and the counters /health reports."""

    retention_s: float = 1800.0
    sync_retention_s: float = 60.0
    execution_timeout_ms: int = 600_000
    ttl_ms: int = 86_400_000
    jobs: dict[str, Job] = field(default_factory=dict)
    queue: OrderedDict[str, None] = field(default_factory=OrderedDict)
    retried: int = 0

    def submit(self, body: object, sync: bool = False, now: float | None = None) -> Job:
        if not isinstance(body, dict):
            raise JobRequestError("the request body must be a JSON object with an 'input' key")
        if "input" not in body:
            raise JobRequestError("the request body has no 'input' key")
        policy = body.get("policy") or {}
        if not isinstance(policy, dict):
            raise JobRequestError("policy must be an object")
        webhook = body.get("webhook")
        if webhook is not None and not isinstance(webhook, str):
            raise JobRequestError("webhook must be a URL string")
        s3 = body.get("s3Config")
        if s3 is not None and not isinstance(s3, dict):
            raise JobRequestError("s3Config must be an object")
        job = Job(
            id=("sync-" if sync else "") + f"{uuid.uuid4()}-u1",
            input=body["input"],
            submitted=time.monotonic() if now is None else now,
            execution_timeout_ms=_ms(
                policy,
                "executionTimeout",
                self.execution_timeout_ms,
                EXECUTION_TIMEOUT_ABOVE_MS,
                EXECUTION_TIMEOUT_MAX_MS,
                above=True,
            ),
            ttl_ms=_ms(policy, "ttl", self.ttl_ms, 10_000, WEEK_MS),
            webhook=webhook,
            s3_config=s3,
            low_priority=bool(policy.get("lowPriority", False)),
            sync=sync,
        )
        self.jobs[job.id] = job
        self.queue[job.id] = None
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def take(self, worker_id: str, now: float | None = None) -> Job | None:
        """Hand the oldest queued job to a worker (IN_PROGRESS from now on)."""
        if not self.queue:
            return None
        job_id, _ = self.queue.popitem(last=False)
        job = self.jobs[job_id]
        job.state = IN_PROGRESS
        job.taken = time.monotonic() if now is None else now
        job.taken_wall = time.time()
        job.worker_id = worker_id
        job.progress = None
        job.pings_missing = 0
        return job

    def finish(
        self, job: Job, state: str, output: Any = None, error: str | None = None, now=None
    ) -> bool:
        """Move a job to a final state; False (ignored) when it already is final."""
        if job.state in FINAL:
            return False
        self.queue.pop(job.id, None)
        job.state = state
        job.finished = time.monotonic() if now is None else now
        job.finished_wall = time.time()
        if job.taken is None and state != CANCELLED:
            job.taken = job.finished  # RunPod reports delayTime for jobs that never ran too
        job.output = output
        job.error = error
        job.progress = None
        return True

    def progress(self, job: Job, value: Any) -> bool:
        """Latest progress (replaces `output` while IN_PROGRESS); ignored otherwise."""
        if job.state != IN_PROGRESS:
            job.ignored_posts += job.state in FINAL
            return False
        job.progress = value
        job.progress_wall = [*job.progress_wall[-99:], (time.time(), value)]
        return True

    def result(self, job: Job, body: dict) -> bool:
        """A final post from the worker (job-done without status IN_PROGRESS)."""
        if job.state in FINAL:
            job.ignored_posts += 1
            return False
        if "error" in body and body["error"] not in (None, ""):
            err = body["error"]
            error = err if isinstance(err, str) else json.dumps(err)
            return self.finish(job, FAILED, output=body.get("output"), error=error)
        return self.finish(job, COMPLETED, output=body.get("output"))

    def cancel(self, job: Job) -> bool:
        was_running = job.state == IN_PROGRESS
        if not self.finish(job, CANCELLED):
            return False
        job.stop_pending = was_running
        return True

    def retry(self, job: Job) -> None:
        if job.state not in (FAILED, TIMED_OUT):
            raise JobRequestError(
                f"only FAILED or TIMED_OUT jobs can be retried; this one is {job.state}"
            )
        job.state = IN_QUEUE
        job.taken = job.finished = None
        job.worker_id = None
        job.output = job.error = job.progress = None
        job.stream = []
        job.stream_sent = 0
        job.stop_pending = False
        job.retries += 1
        self.retried += 1
        self.queue[job.id] = None

    def requeue_front(self, job: Job) -> None:
        """Put a running job back at the head of the queue (lost-worker policy 'requeue')."""
        job.state = IN_QUEUE
        job.taken = None
        job.worker_id = None
        job.progress = None
        job.retries += 1
        self.retried += 1
        self.queue[job.id] = None
        self.queue.move_to_end(job.id, last=False)

    def purge_queue(self) -> int:
        removed = 0
        while self.queue:
            job_id, _ = self.queue.popitem()
            self.jobs.pop(job_id, None)
            removed += 1
        return removed

    def expire(self, now: float | None = None) -> tuple[list[Job], list[Job]]:
        """Apply ttl and execution timeouts and drop expired results. Returns (jobs that need a
        stop signal: running jobs just timed out or removed, jobs that just became final)."""
        now = time.monotonic() if now is None else now
        to_stop: list[Job] = []
        final: list[Job] = []
        for job in list(self.jobs.values()):
            if job.state in FINAL:
                keep = self.sync_retention_s if job.sync else self.retention_s
                if job.finished is not None and now - job.finished >= keep:
                    del self.jobs[job.id]
                continue
            if now - job.submitted >= job.ttl_ms / 1000:
                if job.state == IN_QUEUE:
                    error = f"job expired in the queue (ttl {job.ttl_ms} ms)"
                    self.finish(job, TIMED_OUT, error=error, now=now)
                    final.append(job)
                else:  # RunPod removes a running job whose ttl expires: /status answers 404
                    job.stop_pending = True
                    to_stop.append(job)
                    del self.jobs[job.id]
                continue
            limit_s = job.execution_timeout_ms / 1000
            if job.state == IN_PROGRESS and job.taken is not None and now - job.taken >= limit_s:
                error = f"job exceeded its execution timeout of {job.execution_timeout_ms} ms"
                self.finish(job, TIMED_OUT, error=error, now=now)
                job.stop_pending = True
                to_stop.append(job)
                final.append(job)
        return to_stop, final

    def counts(self) -> dict:
        c = {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": self.retried}
        for job in self.jobs.values():
            if job.state == COMPLETED:
                c["completed"] += 1
            elif job.state in (FAILED, TIMED_OUT):
                c["failed"] += 1
            elif job.state == IN_PROGRESS:
                c["inProgress"] += 1
            elif job.state == IN_QUEUE:
                c["inQueue"] += 1
        return c
