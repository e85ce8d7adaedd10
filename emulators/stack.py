"""The whole local stack: ComfyUI emulator(s) + the local RunPod control plane + real workers.

In Python:
    with LocalStack(StackConfig(workers=2, step_delay=0.02)) as stack:
        stack.base_url   # http://127.0.0.1:PORT/v2/local-ep  (EndpointClient's base_url)
        stack.api_key    # the key the control plane accepts
        stack.api_base, stack.endpoint_id, stack.plane_url, stack.comfy_urls, stack.work_dir
As a process (stays up until SIGTERM/SIGINT; prints `READY <base_url>` then env lines):
    python -m emulators.stack [--port P] [--workers N] [--step-delay S] [--boot-delay S]
                              [--idle-timeout S] [--api-key K] [--shared-comfy]
Each worker gets its own ComfyUI emulator (as on RunPod, where every worker runs its own
ComfyUI), unless `shared_comfy` is set. Children are separate processes, stopped by pid.
Worker python: StackConfig.worker_python, else WANPOD_WORKER_PYTHON, else .venvs/worker.
Children get SIGTERM when the thread that started the stack ends (Linux PDEATHSIG): start it
from the main thread or one that lives as long as the stack.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import ports
from .runpod import default_worker_python
from .runpod.workers import REPO, die_with_parent


@dataclass
class StackConfig:
    workers: int = 1
    start_workers: int | None = None  # default: all
    step_delay: float = 0.05
    boot_delay: float = 0.0
    idle_timeout: float | None = None
    shared_comfy: bool = False
    port: int | None = None
    endpoint_id: str = "local-ep"
    api_key: str | None = None  # default: random
    worker_python: str | None = None
    worker_module: str = "worker.handler"
    worker_env: dict[str, str] = field(default_factory=dict)
    plane_args: tuple[str, ...] = ()
    comfy_args: tuple[str, ...] = ()
    ping_interval_ms: int = 2000
    hold_s: float = 10.0
    wait_workers: bool = True  # wait until the started workers are idle
    ready_timeout_s: float = 60.0
    work_dir: Path | None = None


def _get(url: str, key: str | None = None, timeout: float = 1.0) -> dict | None:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"{}")
    except (OSError, ValueError, urllib.error.HTTPError):
        return None


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.api_key = self.config.api_key or "local-" + secrets.token_hex(8)
        self.endpoint_id = self.config.endpoint_id
        self.procs: list[subprocess.Popen] = []
        self.comfy_urls: list[str] = []
        self.plane_url = ""
        self._logs: dict[Path, int] = {}  # each child's log -> its offset at the child's start
        self._own_dir = self.config.work_dir is None
        self.work_dir = Path(self.config.work_dir or tempfile.mkdtemp(prefix="wanpod-stack-"))

    @property
    def api_base(self) -> str:
        return f"{self.plane_url}/v2"

    @property
    def base_url(self) -> str:
        return f"{self.api_base}/{self.endpoint_id}"

    def env(self) -> dict[str, str]:
        """What points the studio / CLI at this stack."""
        return {
            "RUNPOD_API_BASE": self.api_base,
            "RUNPOD_ENDPOINT_ID": self.endpoint_id,
            "RUNPOD_API_KEY": self.api_key,
        }

    def job_times(self, job_id: str) -> dict:
        """The control plane's record of RunPod job `job_id` (GET /emulator/jobs/{id}): the
        wall times it was taken and finished, its webhook calls, the /status calls it answered for
        it; raises when it cannot say."""
        req = urllib.request.Request(
            f"{self.plane_url}/emulator/jobs/{job_id}",
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen:
        path = self.work_dir / log_name
        log = open(path, "ab")  # noqa: SIM115 - kept open for the child
        self._logs[path] = log.tell()  # where this start's output begins (a reused work_dir)
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # children go when the thread that started them ends
        )
        log.close()
        self.procs.append(proc)
        return proc

    def _listening(self, proc: subprocess.Popen, log_name: str, what: str) -> str:
        """The URL a child announced (it bound port 0 itself: emulators/ports.py)."""
        path = self.work_dir / log_name
        start = self._logs[path]

        def read() -> str:
            with open(path, "rb") as f:
                f.seek(start)
                return f.read().decode(errors="replace")

        return ports.wait_announced(
            read, lambda: proc.poll() is None, self.config.ready_timeout_s, what
        )

    def _wait(self, proc: subprocess.Popen, url: str, key: str | None, what: str) -> None:
        end = time.monotonic() + self.config.ready_timeout_s
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}; logs in {self.work_dir}")
            if _get(url, key) is not None:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{what} not ready in {self.config.ready_timeout_s} s ({self.work_dir})")

    def start(self) -> LocalStack:
        c = self.config
        wpy = c.worker_python or default_worker_python()
        n_comfy = 1 if c.shared_comfy else max(1, c.workers)
        slots: dict[str, list[str]] = {
            "COMFY_HOST": [],
            "COMFY_INPUT_DIR": [],
            "COMFY_OUTPUT_DIR": [],
            "COMFY_PID_FILE": [],
        }
        started = []
        try:
            for i in range(n_comfy):
                d = self.work_dir / f"comfy{i}"
                for sub in ("input", "output", "temp"):
                    (d / sub).mkdir(parents=True, exist_ok=True)
                proc = self._spawn(
                    [
                        wpy,
                        "-m",
                        "emulators.comfyui",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "0",
                        "--step-delay",
                        str(c.step_delay),
                        "--input-directory",
                        str(d / "input"),
                        "--output-directory",
                        str(d / "output"),
                        "--temp-directory",
                        str(d / "temp"),
                        *c.comfy_args,
                    ],
                    f"comfy{i}.log",
                )
                pid_file = d / "comfyui.pid"
                pid_file.write_text(str(proc.pid))
                started.append(proc)
            for i, proc in enumerate(started):  # all start together; each says its port
                url = self._listening(proc, f"comfy{i}.log", "ComfyUI emulator")
                d = self.work_dir / f"comfy{i}"
                self.comfy_urls.append(url)
                slots["COMFY_HOST"].append(url.removeprefix("http://"))
                slots["COMFY_INPUT_DIR"].append(str(d / "input"))
                slots["COMFY_OUTPUT_DIR"].append(str(d / "output"))
                slots["COMFY_PID_FILE"].append(str(d / "comfyui.pid"))
            argv = [
                sys.executable, "-m", "emulators.runpod", "--port", str(c.port or 0),
                "--endpoint-id", self.endpoint_id, "--api-key", self.api_key,
                "--workers", str(c.workers), "--worker-python", wpy,
                "--worker-module", c.worker_module, "--boot-delay", str(c.boot_delay),
                "--ping-interval-ms", str(c.ping_interval_ms), "--hold", str(c.hold_s),
                "--log-dir", str(self.work_dir / "workers"),
            ]  # fmt: skip
            if c.start_workers is not None:
                argv += ["--start-workers", str(c.start_workers)]
            if c.idle_timeout is not None:
                argv += ["--idle-timeout", str(c.idle_timeout)]
            for name, values in slots.items():
                argv += ["--worker-env-slots", f"{name}={','.join(values)}"]
            for name, value in {"COMFY_READY_TIMEOUT_S": "60", **c.worker_env}.items():
                argv += ["--worker-env", f"{name}={value}"]
            plane = self._spawn([*argv, *c.plane_args], "control-plane.log")
            self.plane_url = self._listening(plane, "control-plane.log", "control plane")
            for proc, url in zip(started, self.comfy_urls, strict=True):
                self._wait(proc, url + "/system_stats", None, "ComfyUI emulator")
            self._wait(plane, self.base_url + "/health", self.api_key, "control plane")
            if c.wait_workers:
                n = c.workers if c.start_workers is None else c.start_workers
                self.wait_idle(n, max(c.ready_timeout_s, 5.0 * n))  # ~2 s CPU per worker boot
        except BaseException:
            self.stop()
            raise
        return self

    def health(self) -> dict:
        return _get(self.base_url + "/health", self.api_key) or {}

    def wait_idle(self, n: int, timeout_s: float | None = None) -> None:
        end = time.monotonic() + (timeout_s or self.config.ready_timeout_s)
        while time.monotonic() < end:
            if self.health().get("workers", {}).get("idle", 0) >= n:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{n} workers not idle in time; logs in {self.work_dir}/workers")

    def stop(self) -> None:
        for proc in reversed(self.procs):  # control plane first: it stops its workers
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()
        if self._own_dir and not os.environ.get("WANPOD_KEEP_STACK"):
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m emulators.stack", description=__doc__.split("\n")[0]
    )
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--start-workers", type=int, default=None)
    p.add_argument("--step-delay", type=float, default=0.05)
    p.add_argument("--boot-delay", type=float, default=0.0)
    p.add_argument("--idle-timeout", type=float, default=None)
    p.add_argument("--api-key", default=None)
    p.add_argument("--endpoint-id", default="local-ep")
    p.add_argument("--shared-comfy", action="store_true")
    a = p.parse_args(argv)
    cfg = StackConfig(
        workers=a.workers,
        start_workers=a.start_workers,
        step_delay=a.step_delay,
        boot_delay=a.boot_delay,
        idle_timeout=a.idle_timeout,
        shared_comfy=a.shared_comfy,
        port=a.port,
        api_key=a.api_key,
        endpoint_id=a.endpoint_id,
    )
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with LocalStack(cfg) as stack:
        print(f"READY {stack.base_url}", flush=True)
        for k, v in stack.env().items():
            print(f"{k}={v}", flush=True)
        while not stop:
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
