"""Worker test fixtures: a real ComfyUI emulator subprocess (shared, knobs reset per test), a
moto S3 server subprocess, and helpers to build settings and jobs.

With COMFYUI_DIR set (the real tier, `make test-comfyui`), `comfy`/`emu`/`own_comfy` are a real
ComfyUI checkout instead (tests/real_comfyui/server.py): tests that use none of them are
deselected (the emulator run covers them), tests marked `emulator_only(reason)` are skipped, and
a test that sets an emulator knob is skipped at that call."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import COMFY_FIXTURES, ServerProcess, comfy_emulator, free_port, png_bytes
from worker.settings import Settings

WORKFLOWS = COMFY_FIXTURES / "workflows"
DEFAULT_KNOBS = {
    "step_delay": 0.005,
    "node_delay": 0.0,
    "ws_drop_after": None,
    "ws_drop_after_type": None,
    "crash_at_node": None,
    "error_at_node": None,
    "output_bytes": None,
    "encode_delay": 0.0,
    "extra_output": None,
    "ws_drop_unnoticed_s": 0.0,
    "ws_refuse_after": None,
    "cache": False,
    "prompt_answer_delay": 0.0,
}
REAL_COMFYUI = bool(os.environ.get("COMFYUI_DIR", "").strip())
TARGET_FIXTURES = {"comfy", "emu", "own_comfy"}
# for tests that need a Wan template to finish: only the emulator does that without model weights
needs_wan_run = pytest.mark.emulator_only("a Wan job must finish; real-tier models are 0 bytes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The real tier runs this folder's tests that use the ComfyUI under test, nothing else."""
    if not REAL_COMFYUI:
        return
    here, keep, drop = Path(__file__).parent, [], []
    for item in items:
        if here in item.path.parents:
            if not TARGET_FIXTURES & set(item.fixturenames):
                drop.append(item)
                continue
            if marker := item.get_closest_marker("emulator_only"):
                item.add_marker(pytest.mark.skip(reason=f"emulator only: {marker.args[0]}"))
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def load_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.api.json").read_text())


def post_json(url: str, body: object) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"null")


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


class Comfy:
    """A running emulator process plus its folders."""

    kind = "emulator"

    def __init__(
        self, root: Path, extra_args: list[str] = (), wait: bool = True, fixed_port: bool = False
    ) -> None:
        """`wait`: until it answers (else a worker must know the port before it binds);
        `fixed_port`: a restart comes back on the same port, as under a supervisor."""
        self.root = root
        self.input = root / "input"
        self.output = root / "output"
        self.temp = root / "temp" / "temp"  # ComfyUI's --temp-directory D: its files in D/temp
        for d in (self.input, self.output, self.temp):
            d.mkdir(parents=True, exist_ok=True)
        self.pid_file = root / "comfyui.pid"
        self.server = comfy_emulator(  # not waited for: a worker must know the port first
            "--step-delay", "0.005", "--no-cache", *extra_args, folders=root,
            port=0 if wait and not fixed_port else free_port(),
        )  # fmt: skip
        self.server.start(wait=False)
        self.pid_file.write_text(str(self.server.proc.pid))
        if wait:
            self.server.wait_ready()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def knobs(self, **knobs: object) -> dict:
        return post_json(self.url + "/emulator/config", knobs)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "COMFY_HOST": self.address,
            "COMFY_PID_FILE": str(self.pid_file),
            "COMFY_INPUT_DIR": str(self.input),
            "COMFY_OUTPUT_DIR": str(self.output),
            "COMFY_READY_TIMEOUT_S": "20",
            "WEBSOCKET_RECONNECT_ATTEMPTS": "3",
            "WEBSOCKET_RECONNECT_DELAY_S": "0.1",
            "JOB_TIMEOUT_S": "60",
        }
        env.update(extra)
        return env

    def settings(self, **extra: str) -> Settings:
        return Settings.from_env(self.env(**extra))

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def comfy(tmp_path_factory) -> Comfy:
    if REAL_COMFYUI:
        from tests.real_comfyui.server import shared_real_comfyui

        yield shared_real_comfyui()  # stopped at exit: the real tier's own tests share it
        return
    c = Comfy(tmp_path_factory.mktemp("comfy"))
    yield c
    c.stop()


@pytest.fixture
def emu(comfy: Comfy) -> Comfy:
    """The shared emulator with its knobs reset before and after the test."""
    comfy.knobs(**DEFAULT_KNOBS)
    yield comfy
    comfy.knobs(**DEFAULT_KNOBS)


@pytest.fixture
def own_comfy(tmp_path) -> Comfy:
    """A private emulator (for tests that crash or restart it)."""
    if REAL_COMFYUI:
        from tests.real_comfyui.server import RealComfyUI, comfyui_dir

        c = RealComfyUI(tmp_path / "own", comfyui_dir())
    else:
        c = Comfy(tmp_path / "own", fixed_port=True)  # restarted on its port by some tests
    yield c
    c.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    port = free_port()
    srv = ServerProcess(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        port,
        ready_path="/moto-api/",
        deadline_s=60,
    )
    srv.start()
    yield srv
    srv.stop()


def run(handler, job: dict) -> dict:
    return asyncio.run(handler(job))


def png_b64(size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> str:
    return base64.b64encode(png_bytes(*size, fmt=fmt)).decode()


def with_seed(wf: dict, seed: int) -> dict:
    wf = copy.deepcopy(wf)
    for node in wf.values():
        for k in ("noise_seed", "seed"):
            if k in node["inputs"] and not isinstance(node["inputs"][k], list):
                node["inputs"][k] = seed
    return wf
