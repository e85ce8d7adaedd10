"""One emulator process for the whole emulator suite (`python -m emulators.comfyui`), its folders,
and a fixture that puts the fault knobs back after each test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators.comfy_client import Comfy
from tests.helpers import ServerProcess, comfy_emulator

DEFAULT_KNOBS = {
    "step_delay": 0.01,
    "node_delay": 0.0,
    "ws_drop_after": None,
    "ws_drop_after_type": None,
    "ws_drop_unnoticed_s": 0.0,
    "ws_refuse_after": None,
    "encode_delay": 0.0,
    "extra_output": None,
    "crash_at_node": None,
    "error_at_node": None,
    "hold_at_node": None,
    "output_bytes": None,
    "video_max_side": 320,
    "cache": True,
    "preview_method": "none",
    "gc_stall": 0.0,
    "prompt_answer_delay": 0.0,
}


@pytest.fixture(scope="session")
def comfy_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("comfy")
    return {n: root / n for n in ("input", "output", "temp")}


@pytest.fixture(scope="session")
def comfy_server(comfy_dirs: dict[str, Path]) -> Iterator[ServerProcess]:
    dirs = [arg for name, path in comfy_dirs.items() for arg in (f"--{name}-directory", str(path))]
    with comfy_emulator(*dirs, "--step-delay", "0.01") as srv:
        yield srv


@pytest.fixture
def comfy(comfy_server: ServerProcess) -> Iterator[Comfy]:
    """The shared emulator; knobs are reset and the queue is empty after each test."""
    c = Comfy(comfy_server.base_url)
    c.config(**DEFAULT_KNOBS)
    wait_idle(c)
    c.post("/free", json={"free_memory": True})  # empty the output cache: runs start fresh
    yield c
    c.post("/interrupt")
    c.post("/queue", json={"clear": True})
    c.config(**DEFAULT_KNOBS)
    wait_idle(c)
    c.close()


def wait_idle(c: Comfy, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while c.get("/prompt").json()["exec_info"]["queue_remaining"]:
        assert time.monotonic() < end, "the emulator queue did not drain"
        time.sleep(0.02)
