"""The local stack for demo mode (and the studio's tests/bench): ComfyUI emulator(s) + the local
RunPod control plane + real worker processes, each a child process with a readiness deadline.

`start_local_stack(...)` is a context manager yielding a `LocalStack` with `.base_url`
(`http://127.0.0.1:P/v2/<endpoint>`), `.api_base`, `.endpoint_id` and `.api_key` (a fresh random
key: the app treats it as a secret like a real one). Real ComfyUI runs one prompt at a time, so
`emulators` > 1 starts that many emulators; workers are spread over them when the control plane
can hand each worker its own COMFY_HOST, else they share the first one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_python() -> str:
    env = os.environ.get("WANPOD_WORKER_PYTHON")
    if env:
        return env
    venv = REPO / ".venvs" / "worker" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@dataclass
class LocalStack:
    api_base: str
    endpoint_id: str
    api_key: str
    comfy_urls: list[str]
    folder: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{self.api_base}/{self.endpoint_id}"

    def __repr__(self) -> str:  # never show the key
        return f"LocalStack(base_url={self.base_url!r}, comfy={self.comfy_urls!r})"


def _wait(url: str, proc: subprocess.Popen, log: Path, deadline_s: float, headers=None) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: child exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {deadline_s} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def start_local_stack(
    settings: object | None = None,
    *,
    workers: int | None = None,
    step_delay: float | None = None,
    emulators: int = 1,
    folder: Path | None = None,
    deadline_s: float = 60.0,
) -> Iterator[LocalStack]:
    workers = workers or int(getattr(settings, "demo_workers", 2))
    if step_delay is None:
        step_delay = float(getattr(settings, "demo_step_delay", 0.5))
    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="wanpod-stack-")
        folder = Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    procs: list[subprocess.Popen] = []
    comfy_urls: list[str] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for i in range(max(1, emulators)):
            port = _free_port()
            d = folder / f"comfy{i}"
            for sub in ("input", "output", "temp"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            log = d / "emulator.log"
            argv = [
                py,
                "-m",
                "emulators.comfyui",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--step-delay",
                str(step_delay),
                "--input-directory",
                str(d / "input"),
                "--output-directory",
                str(d / "output"),
                "--temp-directory",
                str(d / "temp"),
            ]
            with log.open("wb") as fh:
                p = subprocess.Popen(argv, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
            procs.append(p)
            url = f"http://127.0.0.1:{port}"
            _wait(url + "/system_stats", p, log, deadline_s)
            comfy_urls.append(url)
        port = _free_port()
        key = "wp-local-" + secrets.token_hex(12)
        endpoint = "wanpod-local"
        log = folder / "runpod.log"
        first = folder / "comfy0"
        argv = [
            py,
            "-m",
            "emulators.runpod",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--endpoint-id",
            endpoint,
            "--api-key",
            key,
            "--workers",
            str(workers),
            "--worker-python",
            _worker_python(),
            "--log-dir",
            str(folder / "workers"),
            "--worker-env",
            f"COMFY_HOST={comfy_urls[0].removeprefix('http://')}",
            "--worker-env",
            f"COMFY_INPUT_DIR={first / 'input'}",
            "--worker-env",
            f"COMFY_OUTPUT_DIR={first / 'output'}",
        ]
        with log.open("wb") as fh:
            p = subprocess.Popen(argv, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
        procs.append(p)
        api_base = f"http://127.0.0.1:{port}/v2"
        _wait(
            f"{api_base}/{endpoint}/health",
            p,
            log,
            deadline_s,
            headers={"Authorization": f"Bearer {key}"},
        )
        yield LocalStack(api_base, endpoint, key, comfy_urls, folder, procs)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if tmp is not None:
            tmp.cleanup()
