"""Worker processes of the local RunPod control plane: launch, heartbeat bookkeeping, stop
signals, scale to zero / cold start, lost-worker detection.

Contract:
- each worker is a real OS process (`<worker python> -m <module>`, default `worker.handler`) with
  the production environment the runpod SDK reads (URL templates with `?`, raw worker key, ping
  interval >= 1000 ms, system checks skipped, private HOME, RUNPOD_LOG_LEVEL=INFO) plus the
  pass-through variables given (COMFY_HOST, ...). The process is started `boot_delay_s` after it
  is wanted (a container start); it counts as `initializing` until its first request.
- stop signals (cancel, execution timeout, ttl) are queued per worker and re-sent at most once a
  second until a heartbeat no longer lists the job (the SDK drops a stop that arrives before the
  job's task exists).
- lost worker: a job whose worker process exited, or whose worker missed heartbeats for
  `lost_after_s`, or that two heartbeats after the take no longer list (its result was lost),
  is FAILED with a readable error (policy "fail", the default) or put back at the head of the
  queue (policy "requeue"). RunPod does not document this; see docs/endpoint.md.
- a worker idle longer than `idle_timeout_s` is stopped (SIGTERM, then its process group is
  killed), down to `min_workers`; queued jobs start new workers up to `max_workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.endpoint import WORKER_STATES

REPO = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the thread that started it dies (Linux), so no
    worker is left re-polling a dead control plane in a tight loop (the SDK re-polls at once
    on connection errors)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def default_worker_python() -> str:
    """The python that runs workers: env WANPOD_WORKER_PYTHON, else .venvs/worker/bin/python,
    else this interpreter."""
    env = os.environ.get("WANPOD_WORKER_PYTHON")
    if env:
        return env
    venv = REPO / ".venvs" / "worker" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@dataclass
class WorkerSpec:
    python: str
    module: str = "worker.handler"
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    slot_env: dict[str, list[str]] = field(default_factory=dict)  # NAME -> value per slot
    ping_interval_ms: int = 2000
    log_dir: Path | None = None


@dataclass
class WorkerRec:
    id: str
    slot: int = 0
    state: str = "initializing"  # initializing | idle | running | unhealthy | stopping
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    home: str | None = None
    started: float = 0.0
    last_seen: float = 0.0
    last_ping: float = 0.0
    idle_since: float = 0.0
    jobs: set[str] = field(default_factory=set)
    stops: dict[str, float] = field(default_factory=dict)  # job id -> last time sent (0 = never)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    unhealthy_reason: str | None = None
    exit_code: int | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def remove_home(rec: WorkerRec) -> None:
    """Remove a worker's temp HOME once its process is gone (one per start: a day of tests or of
    a demo's scaling left thousands). Kept when its log is there (no --log-dir): it may be read."""
    if rec.home and not (rec.log_path is not None and Path(rec.home) in rec.log_path.parents):
        shutil.rmtree(rec.home, ignore_errors=True)
        rec.home = None


def worker_env(
    spec: WorkerSpec,
    base_url: str,
    endpoint_id: str,
    worker_id: str,
    key: str,
    home: str,
    slot: int = 0,
) -> dict[str, str]:
    """The environment RunPod gives a serverless worker (section D of the reference), plus the
    pass-through variables; `slot_env` values are picked by the worker's slot (0..max-1)."""
    ep = f"{base_url}/v2/{endpoint_id}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(spec.env)
    for name, values in spec.slot_env.items():
        if values:
            env[name] = values[slot % len(values)]
    env.update(
        {
            "RUNPOD_WEBHOOK_GET_JOB": f"{ep}/job-take/$ID?gpu=LOCAL-CPU",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{ep}/job-done/$RUNPOD_POD_ID/$ID?gpu=LOCAL-CPU",
            "RUNPOD_WEBHOOK_POST_STREAM": f"{ep}/job-stream/$RUNPOD_POD_ID/$ID?gpu=LOCAL-CPU",
            "RUNPOD_WEBHOOK_PING": f"{ep}/ping/$RUNPOD_POD_ID?gpu=LOCAL-CPU",
            "RUNPOD_PING_INTERVAL": str(max(1000, spec.ping_interval_ms)),
            "RUNPOD_AI_API_KEY": key,
            "RUNPOD_POD_ID": worker_id,
            "RUNPOD_POD_HOSTNAME": f"{worker_id}-local",
            "RUNPOD_ENDPOINT_ID": endpoint_id,
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
            "RUNPOD_SKIP_GPU_CHECK": "true",
            "RUNPOD_LOG_LEVEL": "INFO",
            "HOME": home,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


class Supervisor:
    """Owns the worker processes of one endpoint. All methods run on the server's event loop."""

    def __init__(
        self,
        spec: WorkerSpec | None,
        base_url: str,
        endpoint_id: str,
        key: str,
        max_workers: int,
        start_workers: int,
        min_workers: int,
        idle_timeout_s: float | None,
        boot_delay_s: float,
        lost_after_s: float,
    ) -> None:
        self.spec = spec
        self.base_url = base_url
        self.endpoint_id = endpoint_id
        self.key = key
        self.max_workers = max_workers
        self.start_workers = start_workers
        self.min_workers = min_workers
        self.idle_timeout_s = idle_timeout_s
        self.boot_delay_s = boot_delay_s
        self.lost_after_s = lost_after_s
        self.workers: dict[str, WorkerRec] = {}
        self.retired: set[str] = set()  # ids of workers we stopped or lost: never re-adopted
        self._counter = 0
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle -------------------------------------------------------------------------
    def start_initial(self) -> None:
        for _ in range(min(self.start_workers, self.max_workers)):
            self.launch(delay=0.0)

    def launch(self, delay: float | None = None) -> WorkerRec | None:
        """Want one more worker: it is `initializing` now, its process starts after the delay."""
        if self.spec is None or len(self.workers) >= self.max_workers:
            return None
        self._counter += 1
        used = {w.slot for w in self.workers.values()}
        slot = min(set(range(self.max_workers)) - used)
        rec = WorkerRec(id=f"w{self._counter}", slot=slot, started=time.monotonic())
        rec.idle_since = rec.started
        self.workers[rec.id] = rec
        task = asyncio.get_running_loop().create_task(
            self._spawn(rec, self.boot_delay_s if delay is None else delay)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return rec

    async def _spawn(self, rec: WorkerRec, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if rec.id not in self.workers:
            return
        assert self.spec is not None
        rec.home = tempfile.mkdtemp(prefix=f"wanpod-{rec.id}-home-")
        env = worker_env(
            self.spec, self.base_url, self.endpoint_id, rec.id, self.key, rec.home, rec.slot
        )
        log_dir = self.spec.log_dir or Path(rec.home)
        log_dir.mkdir(parents=True, exist_ok=True)
        rec.log_path = log_dir / f"{rec.id}.log"
        with open(rec.log_path, "ab") as log:
            rec.proc = subprocess.Popen(
                [self.spec.python, "-m", self.spec.module, *self.spec.args],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # its own process group (the heartbeat child dies with it), in this session:
                # a session of its own would be a scheduling group of its own (Linux autogroup)
                process_group=0,
                preexec_fn=die_with_parent,
            )
        rec.last_seen = time.monotonic()

    async def stop_worker(self, rec: WorkerRec, grace_s: float = 5.0) -> None:
        """SIGTERM, release its pending long-polls, then kill its process group by id."""
        rec.state = "stopping"
        self.workers.pop(rec.id, None)
        self.retired.add(rec.id)
        rec.stop_event.set()
        proc = rec.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + grace_s
            while proc.poll() is None and time.monotonic() < end:
                await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
        remove_home(rec)

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(self.stop_worker(w) for w in list(self.workers.values())))

    # -- protocol bookkeeping --------------------------------------------------------------
    def seen(self, worker_id: str) -> WorkerRec:
        """A request from a worker (job-take, job-stop, ping, job-done)."""
        rec = self.workers.get(worker_id)
        if rec is None and worker_id in self.retired:
            return WorkerRec(id=worker_id, state="stopping")
        if rec is None:  # an external worker pointed at us (e.g. started by hand): adopt it
            rec = WorkerRec(id=worker_id, started=time.monotonic())
            self.workers[worker_id] = rec
        rec.last_seen = time.monotonic()
        if rec.state == "initializing":
            rec.state = "running" if rec.jobs else "idle"
            rec.idle_since = rec.last_seen
        return rec

    def assigned(self, rec: WorkerRec, job_id: str) -> None:
        rec.jobs.add(job_id)
        rec.state = "running"

    def released(self, rec: WorkerRec, job_id: str) -> None:
        rec.jobs.discard(job_id)
        if not rec.jobs and rec.state == "running":
            rec.state = "idle"
            rec.idle_since = time.monotonic()

    def request_stop(self, worker_id: str | None, job_id: str) -> None:
        rec = self.workers.get(worker_id or "")
        if rec is None:
            return
        rec.stops.setdefault(job_id, 0.0)
        self.released(rec, job_id)
        rec.stop_event.set()

    def due_stops(self, rec: WorkerRec, now: float) -> list[str]:
        """Stop ids to (re)send now: never sent, or last sent >= 1 s ago."""
        return [j for j, t in rec.stops.items() if now - t >= 1.0]

    def ping(self, rec: WorkerRec, job_ids: set[str]) -> None:
        rec.last_ping = time.monotonic()
        for job_id in list(rec.stops):
            if job_id not in job_ids and rec.stops[job_id] > 0:
                del rec.stops[job_id]  # the SDK no longer runs it: stop delivered

    def counts(self) -> dict[str, int]:
        """/health `workers`: every count RunPod documents. `ready` is a worker up and free to
        take a job (RunPod's example shows it equal to `idle`: idle 4, ready 4, running 1);
        `throttled` (no host capacity) never happens on this machine and stays 0."""
        c = dict.fromkeys(WORKER_STATES, 0)
        for rec in self.workers.values():
            if rec.state in c:
                c[rec.state] += 1
        c["ready"] = c["idle"]
        return c

    def wanted(self, queued: int) -> None:
        """Cold start: queued jobs beyond the free/booting workers start new workers."""
        free = sum(1 for w in self.workers.values() if w.state in ("idle", "initializing"))
        for _ in range(max(0, queued - free)):
            if self.launch() is None:
                break

    async def reap_idle(self) -> None:
        if self.idle_timeout_s is None:
            return
        now = time.monotonic()
        for rec in list(self.workers.values()):
            live = len(self.workers)
            if live <= self.min_workers:
                return
            if (
                rec.state == "idle"
                and not rec.stops
                and now - rec.idle_since >= self.idle_timeout_s
            ):
                await self.stop_worker(rec)

    def lost(self, ping_interval_s: float) -> list[tuple[WorkerRec, str, str]]:
        """(worker, job id, reason) for running jobs whose worker is gone or silent."""
        out = []
        now = time.monotonic()
        for rec in list(self.workers.values()):
            if rec.proc is not None and rec.proc.poll() is not None:
                rec.exit_code = rec.proc.returncode
                reason = f"worker {rec.id} exited with code {rec.exit_code} while running this job"
                out.extend((rec, j, reason) for j in list(rec.jobs))
                self.workers.pop(rec.id, None)
                self.retired.add(rec.id)
                rec.stop_event.set()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(rec.proc.pid, signal.SIGKILL)  # its heartbeat child too
                remove_home(rec)
                continue
            if (
                rec.jobs
                and rec.last_seen
                and now - max(rec.last_ping, rec.last_seen)
                > max(self.lost_after_s, 2 * ping_interval_s)
            ):
                reason = (
                    f"worker {rec.id} sent no heartbeat for {now - rec.last_ping:.0f} s "
                    "while running this job"
                )
                out.extend((rec, j, reason) for j in list(rec.jobs))
        return out
