"""Fixtures for the endpoint tests: local control planes (real subprocesses running
`python -m emulators.runpod`) with real runpod-SDK worker processes (worker venv python)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from app.endpoint import EndpointClient
from tests.helpers import REPO, WORKER_PYTHON, ServerProcess, wait_for

KEY = "test-client-key-123456"
EP = "test-ep"
PYTHON = str(REPO / ".venvs" / "app" / "bin" / "python")


class Plane:
    def __init__(self, server: ServerProcess, log_dir: Path) -> None:
        self.server = server
        self.log_dir = log_dir
        self.base_url = f"{server.base_url}/v2/{EP}"

    def client(self, **kw) -> EndpointClient:
        kw.setdefault("backoff_s", 0.05)
        return EndpointClient(self.base_url, KEY, **kw)

    def get(self, path: str, key: str | None = KEY, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.get(f"{self.base_url}/{path}", headers=headers, timeout=10, **kw)

    def post(self, path: str, body=None, key: str | None = KEY, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.post(
            f"{self.base_url}/{path}", json=body, headers=headers, timeout=30, **kw
        )

    def emulator(self, path: str, body=None) -> dict:
        url = f"{self.server.base_url}/emulator/{path}"
        h = {"Authorization": KEY}
        r = requests.post(url, json=body, headers=h) if body else requests.get(url, headers=h)
        r.raise_for_status()
        return r.json()

    def health(self) -> dict:
        return self.get("health").json()

    def wait_for(self, pred, timeout: float = 20.0, what: str = "condition"):
        return wait_for(pred, timeout, what, lambda: self.log_tail())

    def log_tail(self) -> str:
        return f"logs: {self.log_dir}\n{self.server.output()[-2000:]}{self.worker_logs()}"

    def job_times(self, job_id: str) -> dict:
        """The plane's record of a job: taken_wall, finished_wall, ignored_posts (test hook)."""
        return self.emulator(f"jobs/{job_id}")

    def wait_idle(self, n: int = 1, timeout: float = 30.0) -> None:
        self.wait_for(lambda: self.health()["workers"]["idle"] >= n, timeout, f"{n} idle workers")

    def worker_logs(self) -> str:
        return "".join(
            f"\n--- {p.name}\n" + p.read_text()[-1500:] for p in self.log_dir.glob("*.log")
        )


@contextmanager
def plane(
    tmp: Path,
    *args: str,
    module: str = "tests.endpoint.echo_worker",
    wait_workers: int | None = 1,
    env: Mapping[str, str] | None = None,
) -> Iterator[Plane]:
    log_dir = Path(tempfile.mkdtemp(prefix="workers-", dir=tmp))
    argv = [
        PYTHON,
        "-m",
        "emulators.runpod",
        "--port",
        "0",  # it binds a free one and says which (emulators/ports.py)
        "--endpoint-id",
        EP,
        "--api-key",
        KEY,
        "--worker-python",
        WORKER_PYTHON,
        "--worker-module",
        module,
        "--ping-interval-ms",
        "1000",
        "--hold",
        "5",
        "--log-dir",
        str(log_dir),
        *args,
    ]
    with ServerProcess(argv, 0, ready_path=f"/v2/{EP}/health", env=env) as server:
        p = Plane(server, log_dir)
        if wait_workers:
            p.wait_idle(wait_workers)
        yield p


@pytest.fixture(scope="session")
def echo_plane(tmp_path_factory) -> Iterator[Plane]:
    """One echo worker, short retention for the expiry test, webhooks retried fast."""
    with plane(
        tmp_path_factory.mktemp("echo"),
        "--workers",
        "1",
        "--retention",
        "3",
        "--webhook-retry",
        "0.2",
        "--lost-after",
        "3",
    ) as p:
        yield p
