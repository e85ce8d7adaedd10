"""The endpoint health panel: RunPod's `/health` answer turned into a small model for the page.

`panel_from(health, cold)` is pure: `health` is the endpoint client's `Health` (or the raw `/health`
JSON: `{"jobs": {completed, failed, inProgress, inQueue, retried}, "workers": {idle, initializing,
ready, running, throttled, unhealthy}}`: app.endpoint.WORKER_STATES, each read; `idle` and `ready`
both mean free to take a job), `cold` the `ColdStart` of the current quote (seconds, dollars, GPU,
from app/studio/cost.py). The panel says how many workers are idle / running, how many jobs are
queued / in progress, and what the next job will meet: a warm worker, or a cold start and what it
costs.
`read_panel(endpoint, cold)` asks the endpoint and never raises: a failed /health becomes a panel
with `error` set (secret-free). `render_html(panel)` is the page's fragment, with data attributes
that tests and scripts read (data-idle, data-running, data-queued, data-in-progress, data-warm).
"""

from __future__ import annotations

import html
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from app.endpoint import WORKER_STATES, EndpointClient, Health
from app.errors import user_message


@dataclass(frozen=True)
class ColdStart:
    """What a cold start costs for the job being quoted (cost.Quote's cold_* fields)."""

    seconds: float
    dollars: float
    gpu: str

    @classmethod
    def from_quote(cls, quote: Any) -> ColdStart:
        return cls(float(quote.cold_start_s), float(quote.cold_dollars), str(quote.gpu))


@dataclass(frozen=True)
class HealthPanel:
    idle: int = 0
    running: int = 0
    initializing: int = 0
    ready: int = 0
    throttled: int = 0
    unhealthy: int = 0
    in_queue: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    note: str = ""
    error: str | None = None
    checked_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def free(self) -> int:
        """Workers up and free to take a job: RunPod reports them as `idle` and `ready`."""
        return max(self.idle, self.ready)

    @property
    def warm(self) -> bool:
        """A job sent now would start on a worker that is already up."""
        return self.ok and self.free > 0

    @property
    def stuck(self) -> str:
        """The workers that hold the endpoint when none is up or starting ("3 throttled and 1
        unhealthy"; "" when one is up or starting, or none is stuck): a throttled one gets no
        GPU of the endpoint's type from RunPod, an unhealthy one frees up for nothing."""
        if self.free or self.running or self.initializing:
            return ""
        held = ((self.throttled, "throttled"), (self.unhealthy, "unhealthy"))
        return " and ".join(f"{n} {word}" for n, word in held if n)

    @property
    def blocked(self) -> str:
        """Why no job can start though /health answered ("" when one can). The page then warns
        under Generate, as for a failed /health."""
        return f"no worker can take a job: {self.stuck}" if self.stuck else ""

    @property
    def workers_line(self) -> str:
        parts = [f"{self.idle} idle", f"{self.running} running"]
        ready = self.ready if self.ready != self.idle else 0  # RunPod's example: idle 4, ready 4
        for n, word in (
            (ready, "ready"),
            (self.initializing, "starting"),
            (self.throttled, "throttled"),
            (self.unhealthy, "unhealthy"),
        ):
            if n:
                parts.append(f"{n} {word}")
        return "Workers: " + ", ".join(parts)

    @property
    def jobs_line(self) -> str:
        return (
            f"Jobs: {self.in_queue} queued, {self.in_progress} in progress "
            f"({self.completed} completed, {self.failed} failed recently)"
        )


def cold_note(panel: HealthPanel, cold: ColdStart | None) -> str:
    """One sentence: will the next job start warm, and if not, what a cold start costs."""
    cost = ""
    if cold is not None:
        cost = (
            f" ≈ {math.ceil(cold.seconds)} s (container start + model load + idle timeout), "
            f"+${cold.dollars:.4f} on {cold.gpu}"
        )
    if panel.free > panel.in_queue:
        left = panel.free - panel.in_queue
        plural = "s" if left != 1 else ""
        return f"{left} worker{plural} warm: the next job starts without a cold start."
    if panel.stuck:  # no cold start is coming: RunPod has no GPU for them, or they are broken
        return (
            f"No worker can take a job ({panel.stuck}): the next job waits "
            "in the queue until RunPod has a GPU for one or a worker recovers."
        )
    if panel.running or panel.in_queue:
        return (
            "No idle worker: the next job waits in the queue until a worker frees up, or, "
            f"below the endpoint's maximum workers, RunPod starts a new one with a cold "
            f"start{cost}."
        )
    return f"No worker is up: the next job pays a cold start{cost}."


def panel_from(
    health: Health, cold: ColdStart | None = None, now: float | None = None
) -> HealthPanel:
    """The panel for one /health answer (the client's Health: its counts parsed once)."""
    panel = HealthPanel(
        **{state: health.worker_count(state) for state in WORKER_STATES},
        in_queue=health.job_count("inQueue"),
        in_progress=health.job_count("inProgress"),
        completed=health.job_count("completed"),
        failed=health.job_count("failed"),
        retried=health.job_count("retried"),
        checked_at=time.time() if now is None else now,
    )
    return replace(panel, note=cold_note(panel, cold))


def read_panel(
    endpoint: EndpointClient, cold: ColdStart | None = None, secrets: tuple[str, ...] = ()
) -> HealthPanel:
    """Ask the endpoint's /health; a failure becomes a panel with `error` (never raises)."""
    try:
        return panel_from(endpoint.health(), cold)
    except Exception as exc:
        return failed_panel(exc, secrets, time.time())


def failed_panel(exc: Exception, secrets: tuple[str, ...], checked_at: float) -> HealthPanel:
    """The panel for a /health call that failed: what failed, without a secret."""
    return HealthPanel(error=f"/health failed: {user_message(exc, secrets)}", checked_at=checked_at)


def render_html(panel: HealthPanel) -> str:
    """The panel as an HTML fragment (escaped), with data-* attributes for tests."""
    stamp = time.strftime("%H:%M:%S", time.gmtime(panel.checked_at))
    attrs = (
        f'id="wp-health" data-ok="{str(panel.ok).lower()}" data-idle="{panel.idle}" '
        f'data-running="{panel.running}" data-queued="{panel.in_queue}" '
        f'data-in-progress="{panel.in_progress}" data-warm="{str(panel.warm).lower()}"'
    )
    if not panel.ok:
        body = f'<div class="wp-health-error">⚠️ {html.escape(panel.error or "")}</div>'
    else:
        body = (
            f"<div>{html.escape(panel.workers_line)}</div>"
            f"<div>{html.escape(panel.jobs_line)}</div>"
            f'<div class="wp-health-note">{html.escape(panel.note)}</div>'
        )
    return f'<div {attrs}>{body}<div class="wp-health-time">checked {stamp} UTC</div></div>'


class CachedHealth:
    """One /health call per `ttl_s` however many pages refresh their panel (thread-safe). The
    call is one quick try (EndpointClient.health(quick=True)) made outside the lock: while it
    is under way, the other pages get the last answer at once (its time says how old it is)
    rather than queueing behind it; only the first answer is waited for."""

    def __init__(
        self,
        endpoint: EndpointClient,
        ttl_s: float = 2.0,
        secrets: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.ttl_s = ttl_s
        self.secrets = secrets
        self.clock = clock
        self._lock = threading.Condition()
        self._last: tuple[float, Any, float] | None = None
        self._asking = False  # a call is under way

    def panel(self, cold: ColdStart | None = None) -> HealthPanel:
        with self._lock:
            now = self.clock()
            ask = (self._last is None or now - self._last[0] >= self.ttl_s) and not self._asking
            self._asking = self._asking or ask
        if ask:
            try:
                answer: Any = self.endpoint.health(quick=True)
            except Exception as exc:
                answer = exc
            with self._lock:
                self._last, self._asking = (now, answer, time.time()), False
                self._lock.notify_all()
        with self._lock:
            self._lock.wait_for(lambda: self._last is not None)
            _, answer, checked = self._last
        if isinstance(answer, Exception):
            return failed_panel(answer, self.secrets, checked)
        return panel_from(answer, cold, now=checked)
