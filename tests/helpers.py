"""Test helpers shared by every suite: where the recorded fixtures are, free ports, real server
processes started the right way (port 0 bound by the child and announced, emulators/ports.py;
readiness poll to a deadline, the child's output in the failure message, terminate then kill),
the ComfyUI emulator's launch, waiting for an event (`wait_for`), threads at once (`in_threads`)
and test images (`png_bytes`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emulators import ports
from emulators.runpod.workers import default_worker_python

REPO = Path(__file__).resolve().parent.parent
# Recorded from a real ComfyUI 0.3.64 (tests/fixtures/comfyui/README.md says how); kept in the
# repository so a clone anywhere runs its tests.
COMFY_FIXTURES = REPO / "tests" / "fixtures" / "comfyui"
RECORDINGS = COMFY_FIXTURES / "recordings"
WAN_SCHEMA = COMFY_FIXTURES / "object_info_with_wan_placeholders.json"
WORKER_PYTHON = default_worker_python()  # the worker venv: the runpod SDK, moto


def load_json(path: Path) -> object:
    return json.loads(Path(path).read_text())


def free_port() -> int:
    """A port free now, for a port nothing must listen on, or a server that cannot announce
    its own (emulators/ports.py): another process may take it before the server binds it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    pred: Callable[[], object],
    timeout: float = 20.0,
    what: str = "condition",
    context: Callable[[], str] = lambda: "",
) -> object:
    """Poll `pred` until it returns something true (returned) or fail after `timeout` s, saying
    what was awaited and `context()` (logs)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; {context()}")


def in_threads(target: Callable[[], object], count: int) -> list[BaseException]:
    """Run `target` in `count` threads at once; what they raised (none: [])."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def png_bytes(
    w: int = 64, h: int = 48, color: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG"
) -> bytes:
    """A plain image of w x h pixels, encoded as `fmt` (PNG, JPEG, WEBP)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format=fmt)
    return buf.getvalue()


def http_ok(url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except (OSError, ValueError):
        return False


@dataclass
class ServerProcess:
    """A child process serving HTTP on 127.0.0.1:port. Use as a context manager.

    `port=0`: the child binds a free port itself and announces it (emulators/ports.py; its argv
    says --port 0); `port` is the announced one once `wait_ready()` returned."""

    argv: Sequence[str]
    port: int
    ready_path: str = "/"
    env: Mapping[str, str] | None = None
    cwd: Path = REPO
    deadline_s: float = 30.0
    ready: Callable[[ServerProcess], bool] | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)
    _log: object = field(default=None, init=False)
    _kept: str | None = field(default=None, init=False)  # the log's text, once stopped
    _announces: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._announces = self.port == 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> ServerProcess:
        self._drop_log()  # a restart after the child ended by itself (a crash) without stop()
        # kept open for the child's lifetime and closed in stop(), so no context manager
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="wanpod-child-", suffix=".log", delete=False
        )
        self._kept = None
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        if self._announces:
            self.port = 0  # a restart gets a new port
        self.proc = subprocess.Popen(
            list(self.argv), cwd=self.cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        if wait:
            self.wait_ready()
        return self

    def output(self) -> str:
        if self._kept is not None:
            return self._kept
        if self._log is None:
            return ""
        return Path(self._log.name).read_text(errors="replace")

    def wait_ready(self, deadline_s: float | None = None) -> None:
        end = time.monotonic() + (deadline_s or self.deadline_s)
        check = self.ready or (lambda s: http_ok(s.base_url + s.ready_path))
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.argv} exited with {self.proc.returncode} before it was ready:\n"
                    + self.output()[-4000:]
                )
            if self.port == 0 and (url := ports.announced(self.output())) is not None:
                self.port = ports.port_of(url)
            if self.port != 0 and check(self):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.argv} not ready in time:\n" + self.output()[-4000:])

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._drop_log()
        return self.proc.returncode

    def _drop_log(self) -> None:
        """Close and remove the child's log file, its text kept for output()."""
        if self._log is None:
            return
        self._log.close()
        log = Path(self._log.name)
        self._kept = log.read_text(errors="replace") if log.exists() else ""
        log.unlink(missing_ok=True)
        self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def comfy_emulator(
    *args: str, folders: Path | None = None, deadline_s: float = 30.0, port: int = 0
) -> ServerProcess:
    """The ComfyUI emulator (`python -m emulators.comfyui`) on a free loopback port (0: it binds
    one and announces it; a fixed `port` only where it must be known before the bind), ready
    when /system_stats answers; `folders`: a root whose input/, output/ and temp/ it uses;
    `args`: its other options (--step-delay, --video-max-side, ...). Not started: use it as a
    context manager or call start()."""
    argv = [sys.executable, "-m", "emulators.comfyui", "--host", "127.0.0.1", "--port", str(port)]
    for name in ("input", "output", "temp") if folders is not None else ():
        argv += [f"--{name}-directory", str(folders / name)]
    return ServerProcess([*argv, *args], port, ready_path="/system_stats", deadline_s=deadline_s)


def s3_server(bucket: str) -> ServerProcess:
    """moto's S3 server (the worker venv has it) on a free port, with `bucket` created."""
    port = free_port()
    srv = ServerProcess(
        [WORKER_PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        port,
        ready_path="/moto-api/",
        deadline_s=60,
    ).start()
    req = urllib.request.Request(f"{srv.base_url}/{bucket}", method="PUT")
    with urllib.request.urlopen(req, timeout=10):
        pass
    return srv
