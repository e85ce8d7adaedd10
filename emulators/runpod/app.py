"""The local RunPod control plane as an aiohttp application: the public API under
`/v2/{endpoint_id}/` and the worker protocol the runpod SDK's production loop speaks.

Client routes (key as `Authorization: Bearer <key>` or the raw key, else 401; other endpoint id
404): run, runsync[?wait=ms], status/{id}, stream/{id}, cancel/{id}, retry/{id}, purge-queue,
health. Oversized payloads (> 10,000,000 bytes /run, > 20,000,000 /runsync: app.endpoint's
RUN_LIMIT / RUNSYNC_LIMIT, which the client checks before sending) answer 413 with an `error`.
Past `rate_limit` client requests per `rate_window_s`, 429. Each client answer waits
`api_latency_s` first (0 by default), as RunPod's API across the internet does.
Worker routes (raw worker key): job-take/{w}, job-take-batch/{w}, job-stop/{w} (long-polls held
`hold_s` < 90 s; a new job wakes one held job-take), job-done/{w}/{job}, job-stream/{w}/{job},
ping/{w}.
Test-only routes (client key): GET /emulator/state (workers with pids, queue, job-takes held and
woken), GET /emulator/jobs/{id} (wall times of hand-out, progress posts and result; late posts
ignored; webhook calls made and whether the webhook is done), POST /emulator/faults
`{"status": 503, "count": 2, "ops": ["status"]}` (the next `count` matching client requests
answer `status`; ops omitted = all client routes); `"delay_s": 4` holds each such answer 4 s
first (alone: a slow answer, then the real one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import ClientSession, ClientTimeout, web

from app.endpoint import RUN_LIMIT, RUNSYNC_LIMIT  # the client's pre-check: one number each

from .jobs import CANCELLED, FAILED, FINAL, IN_PROGRESS, Job, JobRequestError, JobStore
from .workers import Supervisor, WorkerRec, WorkerSpec

log = logging.getLogger("emulators.runpod")
MB = 1024 * 1024
WORKER_OPS = {"job-take", "job-take-batch", "job-stop", "job-done", "job-stream", "ping"}


@dataclass
class RunpodConfig:
    endpoint_id: str = "local-ep"
    api_key: str = "local-key"
    worker_key: str = "local-worker-key"
    worker: WorkerSpec | None = None
    max_workers: int = 1
    start_workers: int = 1
    min_workers: int = 0
    idle_timeout_s: float | None = None
    boot_delay_s: float = 0.0
    hold_s: float = 20.0
    lost_after_s: float = 10.0
    lost_policy: str = "fail"  # fail | requeue
    retention_s: float = 1800.0
    sync_retention_s: float = 60.0
    execution_timeout_ms: int = 600_000
    run_max_bytes: int = RUN_LIMIT
    runsync_max_bytes: int = RUNSYNC_LIMIT
    api_latency_s: float = 0.0  # each client API answer waits this long first (RunPod's API is
    # across the internet from the studio: tens to hundreds of ms; 0 = as fast as this box)
    rate_limit: int = 0  # client requests per window; 0 = unlimited
    rate_window_s: float = 10.0
    webhook_tries: int = 3
    webhook_retry_s: float = 10.0
    tick_s: float = 0.1
    base_url: str = ""  # how workers reach us; set once the port is known
    faults: list = field(default_factory=list)


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def presented_key(authorization: str) -> str:
    """The key in an Authorization header: `Bearer <key>` (the scheme is case-insensitive, as
    for every HTTP auth scheme) or the raw key (RunPod's curl examples)."""
    scheme, _, rest = authorization.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else authorization


class ControlPlane:
    def __init__(self, cfg: RunpodConfig) -> None:
        self.cfg = cfg
        self.store = JobStore(
            retention_s=cfg.retention_s,
            sync_retention_s=cfg.sync_retention_s,
            execution_timeout_ms=cfg.execution_timeout_ms,
        )
        self.sup = Supervisor(
            cfg.worker,
            cfg.base_url,
            cfg.endpoint_id,
            cfg.worker_key,
            cfg.max_workers,
            cfg.start_workers,
            cfg.min_workers,
            cfg.idle_timeout_s,
            cfg.boot_delay_s,
            cfg.lost_after_s,
        )
        self.cond: asyncio.Condition | None = None
        self.takes_held = 0  # job-takes waiting for a job now (/emulator/state)
        self.takes_woken = 0  # times a held job-take was woken by a notify (/emulator/state)
        self.final_events: dict[str, asyncio.Event] = {}
        self.requests: deque[float] = deque()
        self.faults: list[dict] = list(cfg.faults)
        self.http: ClientSession | None = None
        self._monitor: asyncio.Task | None = None
        self._bg: set[asyncio.Task] = set()

    # -- app wiring --------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * MB, middlewares=[self._auth])
        r = app.router
        p = "/v2/{ep}"
        r.add_post(p + "/run", self.run)
        r.add_post(p + "/runsync", self.runsync)
        for verb in ("GET", "POST"):
            r.add_route(verb, p + "/status/{id}", self.status)
            r.add_route(verb, p + "/stream/{id}", self.stream)
        r.add_post(p + "/cancel/{id}", self.cancel)
        r.add_post(p + "/retry/{id}", self.retry)
        r.add_post(p + "/purge-queue", self.purge)
        r.add_get(p + "/health", self.health)
        r.add_get(p + "/job-take/{w}", self.job_take)
        r.add_get(p + "/job-take-batch/{w}", self.job_take)
        r.add_get(p + "/job-stop/{w}", self.job_stop)
        r.add_post(p + "/job-done/{w}/{id}", self.job_done)
        r.add_post(p + "/job-stream/{w}/{id}", self.job_stream)
        r.add_get(p + "/ping/{w}", self.ping)
        r.add_get("/emulator/state", self.state)
        r.add_post("/emulator/faults", self.set_faults)
        r.add_get("/emulator/faults", self.get_faults)
        r.add_get("/emulator/jobs/{id}", self.job_times)
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _startup(self, app: web.Application) -> None:
        self.cond = asyncio.Condition()
        self.http = ClientSession(timeout=ClientTimeout(total=30))
        self.sup.base_url = self.cfg.base_url
        self.sup.start_initial()
        self._monitor = asyncio.create_task(self._tick_loop())

    async def _shutdown(self, app: web.Application) -> None:
        if self._monitor:
            self._monitor.cancel()
        await self._wake_takers()
        await self.sup.shutdown()
        for t in list(self._bg):
            t.cancel()
        if self.http:
            await self.http.close()

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        parts = request.path.strip("/").split("/")
        auth = request.headers.get("Authorization", "")
        client_ok = presented_key(auth) == self.cfg.api_key
        if parts[:1] == ["emulator"]:
            if not client_ok:
                return _error(401, "Unauthorized")
            return await handler(request)
        if len(parts) < 3 or parts[0] != "v2":
            return await handler(request)
        op = parts[2]
        if op in WORKER_OPS:
            if auth != self.cfg.worker_key:
                return _error(401, "Unauthorized")
        else:
            if not client_ok:
                return _error(401, "Unauthorized")
            if parts[1] != self.cfg.endpoint_id:
                return _error(404, f"endpoint {parts[1]!r} not found")
            if self.cfg.api_latency_s > 0:
                await asyncio.sleep(self.cfg.api_latency_s)
            fault = self._fault(op)
            if fault is not None and fault.get("delay_s"):
                await asyncio.sleep(fault["delay_s"])  # a slow answer (then as it would be)
            if fault is not None and fault.get("status") is not None:
                return _error(int(fault["status"]), f"injected fault {fault['status']}")
            refused = self._rate_limited()
            if refused is not None:
                return refused
        if parts[1] != self.cfg.endpoint_id:
            return _error(404, f"endpoint {parts[1]!r} not found")
        return await handler(request)

    def _fault(self, op: str) -> dict | None:
        """The first injected fault for `op` with uses left (one use taken), else None."""
        for fault in self.faults:
            ops = fault.get("ops")
            if fault.get("count", 0) > 0 and (not ops or op in ops):
                fault["count"] -= 1
                return fault
        return None

    def _rate_limited(self) -> web.Response | None:
        if self.cfg.rate_limit > 0:
            now = time.monotonic()
            while self.requests and now - self.requests[0] > self.cfg.rate_window_s:
                self.requests.popleft()
            if len(self.requests) >= self.cfg.rate_limit:
                return _error(429, "rate limit exceeded; slow down and retry later")
            self.requests.append(now)
        return None

    # -- client API --------------------------------------------------------------------------
    async def _submit(self, request: web.Request, sync: bool) -> Job | web.Response:
        raw = await request.read()
        limit = self.cfg.runsync_max_bytes if sync else self.cfg.run_max_bytes
        if len(raw) > limit:
            op = "/runsync" if sync else "/run"
            return _error(
                413,
                f"request payload is {len(raw):,} bytes; {op} accepts at most "
                f"{limit:,} bytes ({limit / 1e6:g} MB)",
            )
        try:
            body = json.loads(raw or b"null")
            job = self.store.submit(body, sync=sync)
        except json.JSONDecodeError as e:
            return _error(400, f"the request body is not valid JSON: {e}")
        except JobRequestError as e:
            return _error(400, str(e))
        self.final_events[job.id] = asyncio.Event()
        await self._wake_takers(1)
        self._scale()
        return job

    async def run(self, request: web.Request) -> web.Response:
        job = await self._submit(request, sync=False)
        if isinstance(job, web.Response):
            return job
        return web.json_response({"id": job.id, "status": job.state})

    async def runsync(self, request: web.Request) -> web.Response:
        try:
            wait_ms = int(request.query.get("wait", "90000"))
        except ValueError:
            return _error(400, "wait must be an integer number of milliseconds")
        wait_ms = min(300_000, max(1000, wait_ms))
        job = await self._submit(request, sync=True)
        if isinstance(job, web.Response):
            return job
        event = self.final_events[job.id]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), wait_ms / 1000)
        if job.state in FINAL:
            return web.json_response(job.status_body())
        return web.json_response({"id": job.id, "status": job.state})

    def _job(self, request: web.Request) -> Job | web.Response:
        job = self.store.get(request.match_info["id"])
        if job is None:
            return _error(404, "request does not exist")
        return job

    async def status(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        job.status_calls += 1
        return web.json_response(job.status_body())

    async def stream(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        new = job.stream[job.stream_sent :]
        job.stream_sent = len(job.stream)
        return web.json_response(
            {"id": job.id, "status": job.state, "stream": [{"output": c} for c in new]}
        )

    async def cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        worker = job.worker_id
        was_running = job.state == IN_PROGRESS
        if self.store.cancel(job):
            if was_running:
                self.sup.request_stop(worker, job.id)
            self._final(job)
        return web.json_response({"id": job.id, "status": job.state})

    async def retry(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        try:
            self.store.retry(job)
        except JobRequestError as e:
            return _error(400, str(e))
        for rec in self.sup.workers.values():
            rec.stops.pop(job.id, None)  # a stale stop must not hit the new run
        self.final_events[job.id] = asyncio.Event()
        await self._wake_takers(1)
        self._scale()
        return web.json_response({"id": job.id, "status": job.state})

    async def purge(self, request: web.Request) -> web.Response:
        removed = self.store.purge_queue()
        return web.json_response({"removed": removed, "status": "completed"})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"jobs": self.store.counts(), "workers": self.sup.counts()})

    # -- worker protocol ---------------------------------------------------------------------
    async def job_take(self, request: web.Request) -> web.Response:
        rec = self.sup.seen(request.match_info["w"])
        batch = "job-take-batch" in request.path
        try:
            n = max(1, int(request.query.get("batch_size", "1"))) if batch else 1
        except ValueError:
            n = 1
        assert self.cond is not None
        end = time.monotonic() + self.cfg.hold_s
        async with self.cond:
            while True:
                if rec.state == "unhealthy":  # 429: the SDK backs off 5 s instead of spinning
                    self._pass_on()
                    return _error(429, "worker reported unhealthy")
                gone = request.transport is None or request.transport.is_closing()
                if gone or rec.id not in self.sup.workers:
                    self._pass_on()
                    return web.Response(status=204)
                if self.store.queue:
                    jobs = []
                    while self.store.queue and len(jobs) < n:
                        job = self.store.take(rec.id)
                        if job is None:
                            break
                        self.sup.assigned(rec, job.id)
                        jobs.append(job.worker_payload())
                    return web.json_response(jobs if batch else jobs[0])
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return web.Response(status=204)
                self.takes_held += 1
                try:
                    await asyncio.wait_for(self.cond.wait(), remaining)
                    self.takes_woken += 1
                except TimeoutError:
                    pass  # the queue is looked at once more: a wake and the timeout can coincide
                finally:
                    self.takes_held -= 1

    async def job_stop(self, request: web.Request) -> web.Response:
        rec = self.sup.seen(request.match_info["w"])
        end = time.monotonic() + self.cfg.hold_s
        while True:
            rec.stop_event.clear()
            now = time.monotonic()
            if rec.id not in self.sup.workers:
                return web.Response(status=204)
            due = self.sup.due_stops(rec, now)
            if due:
                for job_id in due:
                    rec.stops[job_id] = now
                return web.json_response({"jobsToStop": due})
            remaining = end - now
            if remaining <= 0:
                return web.Response(status=204)
            if rec.stops:  # re-send due within a second
                remaining = min(remaining, 1.0 - max(now - t for t in rec.stops.values()) + 0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rec.stop_event.wait(), max(0.01, remaining))

    async def _body(self, request: web.Request) -> object:
        raw = await request.read()  # JSON regardless of the form content type the SDK sends
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError:
            return None

    async def job_done(self, request: web.Request) -> web.Response:
        rec = self.sup.seen(request.match_info["w"])
        body = await self._body(request)
        if not isinstance(body, dict):
            return _error(400, "job-done body must be a JSON object")
        job = self.store.get(request.match_info["id"])
        if job is None:
            return _error(404, "request does not exist")
        if job.worker_id != rec.id:
            return web.json_response({})  # a stale worker (job re-queued elsewhere): ignore
        if body.get("status") == IN_PROGRESS:
            self.store.progress(job, body.get("output"))
            return web.json_response({})
        rec.stops.pop(job.id, None)
        if self.store.result(job, body):
            self._final(job)
        if body.get("stopPod"):
            self._spawn_bg(self._replace(rec))
        return web.json_response({})

    async def job_stream(self, request: web.Request) -> web.Response:
        self.sup.seen(request.match_info["w"])
        body = await self._body(request)
        job = self.store.get(request.match_info["id"])
        if job is None:
            return _error(404, "request does not exist")
        if job.state == IN_PROGRESS and isinstance(body, dict):
            job.stream.append(body.get("output"))
        return web.json_response({})

    async def ping(self, request: web.Request) -> web.Response:
        rec = self.sup.seen(request.match_info["w"])
        if request.query.get("status") == "unhealthy":
            rec.state = "unhealthy"
            rec.unhealthy_reason = f"{request.query.get('check')}: {request.query.get('reason')}"
            return web.json_response({})
        ids = {j for j in request.query.get("job_id", "").split(",") if j}
        self.sup.ping(rec, ids)
        now = time.monotonic()
        for job_id in list(rec.jobs):
            job = self.store.get(job_id)
            if job is None or job.state != IN_PROGRESS or job_id in ids:
                continue
            if job.taken is not None and now - job.taken > 0.5:
                job.pings_missing += 1
                if job.pings_missing >= 2:
                    self._lose(rec, job, f"worker {rec.id} no longer reports this job")
        return web.json_response({})

    # -- test hooks --------------------------------------------------------------------------
    async def state(self, request: web.Request) -> web.Response:
        workers = {
            w.id: {
                "state": w.state,
                "pid": w.proc.pid if w.proc else None,
                "jobs": sorted(w.jobs),
                "log": str(w.log_path) if w.log_path else None,
            }
            for w in self.sup.workers.values()
        }
        takes = {"held": self.takes_held, "woken": self.takes_woken}
        return web.json_response(
            {"workers": workers, "queue": list(self.store.queue), "takes": takes}
        )

    async def job_times(self, request: web.Request) -> web.Response:
        """Wall-clock times the plane handed a job out, saw its progress posts and its final
        result (bench, and tests that order jobs), and how many late posts it ignored."""
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        return web.json_response(
            {
                "id": job.id,
                "taken_wall": job.taken_wall,
                "finished_wall": job.finished_wall,
                "progress_wall": job.progress_wall,
                "ignored_posts": job.ignored_posts,
                "webhook_calls": job.webhook_calls,
                "status_calls": job.status_calls,
                "webhook_done": job.webhook_done,
            }
        )

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self.faults})

    async def set_faults(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        usage = 'faults body: {"status": int and/or "delay_s": number, "count": int, "ops": [op]}'
        if not isinstance(body, dict):
            return _error(400, usage)
        status, delay = body.get("status"), body.get("delay_s", 0)
        if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
            return _error(400, usage)
        if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
            return _error(400, usage)
        if status is None and not delay:
            return _error(400, usage)
        count, ops = int(body.get("count", 1)), body.get("ops")
        self.faults.append({"status": status, "delay_s": float(delay), "count": count, "ops": ops})
        return web.json_response({"faults": self.faults})

    # -- internals ---------------------------------------------------------------------------
    def _spawn_bg(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _wake_takers(self, jobs: int | None = None) -> None:
        """Wake the workers' held job-takes: one for each of `jobs` new jobs, or all (None) where
        workers may have gone. Waking every idle take for each /run made a burst of /runs wait
        behind all their lock hand-offs: with 64 idle workers on 2 busy cores, the bench's /run
        answers took 1.3-1.8 s; with one wake per job, 0.1-0.2 s."""
        if self.cond is None:
            return
        async with self.cond:
            if jobs is None:
                self.cond.notify_all()
            else:
                self.cond.notify(jobs)

    def _pass_on(self) -> None:
        """A job-take leaving without a job (its worker unhealthy or gone) wakes the next held
        one while jobs are queued: the wake it may have had was meant for one of them. Called
        with the condition's lock held."""
        assert self.cond is not None
        if self.store.queue:
            self.cond.notify(1)

    def _scale(self) -> None:
        queued = sum(1 for j in self.store.queue if not self.store.jobs[j].low_priority)
        self.sup.wanted(queued)

    async def _replace(self, rec: WorkerRec) -> None:
        """stopPod: RunPod replaces the container; we restart the process."""
        await self.sup.stop_worker(rec)
        await self._wake_takers()
        if len(self.sup.workers) < max(self.sup.min_workers, 1) or self.store.queue:
            self.sup.launch()

    def _final(self, job: Job) -> None:
        if job.worker_id:
            rec = self.sup.workers.get(job.worker_id)
            if rec is not None:
                self.sup.released(rec, job.id)
        event = self.final_events.pop(job.id, None)
        if event is not None:
            event.set()
        if job.webhook:
            self._spawn_bg(self._webhook(job, job.webhook, job.status_body()))

    def _lose(self, rec: WorkerRec, job: Job, reason: str) -> None:
        self.sup.released(rec, job.id)
        rec.jobs.discard(job.id)
        if self.cfg.lost_policy == "requeue":
            self.store.requeue_front(job)
            self._spawn_bg(self._wake_takers(1))
            self._scale()
            return
        error = f"{reason}; the job was not retried (POST /retry/{job.id} or resubmit)"
        if self.store.finish(job, FAILED, error=error):
            self._final(job)

    async def _webhook(self, job: Job, url: str, body: dict) -> None:
        assert self.http is not None
        job.webhook_calls, job.webhook_done = 0, False
        try:
            for attempt in range(self.cfg.webhook_tries):
                job.webhook_calls += 1
                try:
                    async with self.http.post(url, json=body) as resp:
                        if resp.status == 200:
                            return
                except Exception as e:
                    log.warning("webhook %s failed: %s", url, e)
                if attempt + 1 < self.cfg.webhook_tries:
                    await asyncio.sleep(self.cfg.webhook_retry_s)
        finally:
            job.webhook_done = True

    async def _tick_loop(self) -> None:
        ping_s = (self.cfg.worker.ping_interval_ms if self.cfg.worker else 10000) / 1000
        while True:
            await asyncio.sleep(self.cfg.tick_s)
            try:
                to_stop, final = self.store.expire()
                for job in to_stop:
                    self.sup.request_stop(job.worker_id, job.id)
                for job in final:
                    self._final(job)
                for rec, job_id, reason in self.sup.lost(ping_s):
                    job = self.store.get(job_id)
                    if job is not None and job.state == IN_PROGRESS:
                        self._lose(rec, job, reason)
                    rec.jobs.discard(job_id)
                self._scale()
                await self.sup.reap_idle()
            except Exception:
                log.exception("control plane tick failed")


__all__ = ["CANCELLED", "ControlPlane", "RunpodConfig"]
