"""Job progress in one documented shape, posted to RunPod with `progress_update`, throttled.

`Progress.to_dict()` always has every key (None where unknown):
`{"stage", "node", "node_type", "step", "steps", "nodes_done", "nodes_total", "percent",
"elapsed_s", "queue_position"}`; stage is one of `STAGES`.

`ProgressReporter.update(...)` merges changes and posts when the stage changed or
`PROGRESS_INTERVAL_S` passed since the last post; a change the throttle held back is posted when
the interval is up (trailing edge, inside the running event loop), so the latest step is never
lost for want of a later update. Percent never goes down. Posting is only enabled when the SDK
has somewhere to post (`RUNPOD_WEBHOOK_POST_OUTPUT`).

Transport: the SDK's `progress_update` posts every update from a thread of its own, so a burst
(several updates at a stage change) raced and reached `/status` out of order, and the last one
before the result was not always the newest. `OrderedSender` is one sender per job instead: one
thread posts one update at a time through the SDK's own `send_result` (same URL, body and
retries) over one HTTP session for the job (`SessionPost`), and while a post is in flight only
the newest pending update is kept, so the control plane sees progress in order and the newest
state wins. `finish()` stops new updates; `quiet()` waits for the sender to deliver what is
pending and then until `PROGRESS_QUIET_S` has passed since the last post, so no progress post
can land after the final result and flip the job back to IN_PROGRESS (runpod-python #250).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

STAGES = (
    "starting",
    "uploading",
    "queued",
    "loading",
    "sampling",
    "decoding",
    "saving",
    "delivering",
)

log = logging.getLogger("worker.progress")
SENDER_DRAIN_S = 10.0  # the longest the result waits for a pending progress post (3 SDK retries)
# A job's progress connection is closed once unused this long: well under the idle timeouts of
# load balancers (60 s and more), so an update never goes out on a connection the server is closing
KEEPALIVE_S = 5.0


def is_sampler(class_type: str | None) -> bool:
    """A node that reports sampler steps (KSampler, KSamplerAdvanced, SamplerCustom...)."""
    return "sampler" in (class_type or "").lower()


def stage_for(class_type: str, previous: str) -> str:
    """The stage a node of this class puts the job in."""
    ct = class_type.lower()
    if is_sampler(class_type):
        return "sampling"
    if "decode" in ct:
        return "decoding"
    if ct.startswith("save") or "videocombine" in ct or ct in ("createvideo", "previewimage"):
        return "saving"
    if previous in ("sampling", "decoding", "saving"):
        return previous
    return "loading"


def planned_steps(node: dict) -> int | None:
    """How many sampler steps a node will report, read from its inputs before it runs (None when
    the node is not a known sampler or the numbers are links). KSamplerAdvanced runs
    `min(steps, end_at_step) - start_at_step` steps, which is what ComfyUI's progress counts."""
    inputs = node.get("inputs") or {}
    steps = inputs.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool):
        return None
    ct = node.get("class_type")
    if ct == "KSampler":
        return steps
    if ct == "KSamplerAdvanced":
        start, end = inputs.get("start_at_step", 0), inputs.get("end_at_step", 10000)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            return None
        return max(0, min(steps, end) - start)
    return None


@dataclass
class Progress:
    stage: str = "starting"
    node: str | None = None
    node_type: str | None = None
    step: int | None = None
    steps: int | None = None
    nodes_done: int = 0
    nodes_total: int = 0
    percent: float = 0.0
    elapsed_s: float = 0.0
    queue_position: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SessionPost:
    """`post(job, payload)` the way the SDK's `progress_update` posts (its own `send_result`:
    same URL, body and retries; the SDK session's headers and timeout), over one HTTP session
    kept by the thread that calls it. The SDK opens a new session for every update: a new
    connection (a TLS handshake to RunPod's API) and event loop each time; a job's updates now
    share one (bench/progress_posts.py: 1.4 -> 0.34 ms of CPU a post). Used from one thread,
    `close()` included."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: Any = None

    def __call__(self, job: dict, payload: dict) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._post(job, payload))

    async def _post(self, job: dict, payload: dict) -> None:
        from runpod.serverless.modules.rp_http import send_result

        if self._session is None:
            self._session = _sdk_session()
        await send_result(self._session, {"status": "IN_PROGRESS", "output": payload}, job)

    def close(self) -> None:
        if self._loop is None:
            return
        if self._session is not None:
            self._loop.run_until_complete(self._session.close())
        self._loop.close()
        self._loop = self._session = None


def _sdk_session() -> Any:
    """The SDK's `AsyncClientSession` (its headers: the worker's key; its timeout; no connection
    limit), whose idle connection is closed after KEEPALIVE_S."""
    from aiohttp import ClientSession, ClientTimeout, TCPConnector
    from runpod.http_client import get_auth_header

    return ClientSession(
        connector=TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S),
        headers=get_auth_header(),
        timeout=ClientTimeout(600, ceil_threshold=400),
    )


class OrderedSender:
    """One job's progress transport: posts run one at a time, in the order submitted, from one
    thread; while a post is in flight a newer update replaces any pending one (newest wins)."""

    def __init__(self, job: dict, post: Callable[[dict, dict], None] | None = None) -> None:
        self.job = job
        self._own = SessionPost() if post is None else None  # closed by the thread at its end
        self._post = post or self._own
        self._cond = threading.Condition()
        self._pending: dict | None = None
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.abandoned = False

    def submit(self, job: dict, payload: dict) -> None:
        """Queue `payload` (the `post(job, payload)` signature ProgressReporter calls)."""
        with self._cond:
            if self._closed:
                return
            self._pending = payload
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"progress-{job.get('id')}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self._send_until_closed()
        finally:
            if self._own is not None:
                self._own.close()

    def _send_until_closed(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return  # closed and drained
                payload, self._pending = self._pending, None
                self._busy = True
            try:
                self._post(self.job, payload)
                self.sent += 1
            except Exception as e:  # progress must never fail a job
                log.warning("progress post failed: %s", type(e).__name__)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def abandon(self) -> None:
        """Accept nothing more and drop what is pending, without waiting: the thread ends after
        the post in flight, if any (a cancelled job)."""
        with self._cond:
            self._closed = self.abandoned = True
            self._pending = None
            self._cond.notify_all()

    def close(self, timeout: float) -> bool:
        """Accept nothing more; wait (up to `timeout` s) until what is pending has been posted.
        True when drained."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: self._pending is None and not self._busy, timeout=timeout
            )


class ProgressReporter:
    def __init__(
        self,
        job: dict,
        enabled: bool,
        interval_s: float,
        quiet_s: float,
        post: Callable[[dict, dict], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.enabled = enabled
        self.interval_s = interval_s
        self.quiet_s = quiet_s
        self._sender = None if post is not None else OrderedSender(job)
        self._post = post or self._sender.submit
        self._clock = clock
        self.started = clock()
        self.state = Progress()
        self.last_post: float | None = None
        self.posted = 0
        self.finished = False
        self._node_done = False  # the current node's steps are already in nodes_done
        self._trailing: asyncio.TimerHandle | None = None  # posts a throttled-away change later

    def update(self, force: bool = False, node_done: bool | None = None, **changes: object) -> None:
        """Apply `changes` to the progress and post it (throttled). `node_done`: the current
        node has finished (its steps now count in nodes_done, not again as step/steps)."""
        old_stage = self.state.stage
        if "node" in changes:
            self._node_done = False
        if node_done is not None:
            self._node_done = node_done
        for k, v in changes.items():
            setattr(self.state, k, v)
        s = self.state
        if s.nodes_total:
            frac = (s.step / s.steps) if s.step and s.steps and not self._node_done else 0.0
            pct = round(min(99.9, 100.0 * (s.nodes_done + frac) / s.nodes_total), 1)
            s.percent = max(s.percent, pct)  # never backwards (a re-queued attempt restarts)
        now = self._clock()
        s.elapsed_s = round(now - self.started, 2)
        if not self.enabled or self.finished:
            return
        due = self.last_post is None or now - self.last_post >= self.interval_s
        if force or s.stage != old_stage or due:
            self._send(now)
        elif self._trailing is None:  # throttled: the latest state still goes out, later
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (unit tests with a fake clock)
                return
            wait = self.interval_s - (now - (self.last_post or now))
            self._trailing = loop.call_later(max(wait, 0.0), self._flush)

    def _send(self, now: float) -> None:
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None
        self.last_post = now
        self.posted += 1
        try:
            self._post(self.job, self.state.to_dict())
        except Exception as e:  # progress must never fail a job
            log.warning("progress post failed: %s", type(e).__name__)

    def _flush(self) -> None:
        self._trailing = None
        if self.enabled and not self.finished:
            self._send(self._clock())

    def finish(self) -> None:
        """No more posts from here on (the final result is next)."""
        self.finished = True
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None

    def abandon(self) -> None:
        """No more posts, and none pending sent (the job was cancelled: RunPod has ended it);
        the sender's thread ends without being waited for."""
        self.finish()
        if self._sender is not None:
            self._sender.abandon()

    async def quiet(self) -> None:
        """Wait until what was posted has been delivered and the last post is at least `quiet_s`
        old (runpod-python #250)."""
        self.finish()
        await settle(self._sender, self.last_post, self.quiet_s, self._clock)


async def settle(
    sender: OrderedSender | None,
    last_post: float | None,
    quiet_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Before a job's result: `sender` closed with what it holds delivered (up to
    SENDER_DRAIN_S), and its last post (at `last_post` on `clock`) at least `quiet_s` old: a
    progress post landing after the result would show the job running again (runpod-python
    #250)."""
    if last_post is None:
        return
    if sender is not None:
        drained = await asyncio.to_thread(sender.close, SENDER_DRAIN_S)
        if not drained:
            log.warning("progress: last update not delivered within %g s", SENDER_DRAIN_S)
    left = quiet_s - (clock() - last_post)
    if left > 0:
        await asyncio.sleep(left)
