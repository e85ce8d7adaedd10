"""The real-ComfyUI tier's fixtures: the shared real ComfyUI (COMFYUI_DIR) and ComfyUI's own example
clients from that checkout. Without COMFYUI_DIR every test here is skipped, saying so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.real_comfyui.server import RealComfyUI, comfyui_dir, shared_real_comfyui
from tests.worker.conftest import get_json


@pytest.fixture
def real() -> RealComfyUI:
    """The shared real ComfyUI with empty input/output folders (what an earlier test left is
    removed first); the test must leave its queue empty."""
    c = shared_real_comfyui()
    for folder in (c.input, c.output):
        shutil.rmtree(folder)
        folder.mkdir()
    yield c
    assert get_json(c.url + "/queue") == {"queue_running": [], "queue_pending": []}


@pytest.fixture(scope="session")
def checkout() -> Path:
    path = comfyui_dir()
    if path is None:
        pytest.skip("real-ComfyUI tier: COMFYUI_DIR is unset")
    return path
