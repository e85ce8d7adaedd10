"""The real-ComfyUI tier's fixtures: the shared real ComfyUI (COMFYUI_DIR) and ComfyUI's own example
clients from that checkout. Without COMFYUI_DIR every test here is skipped, saying so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emulators.comfyui.models import OUTPUT_MODEL_FOLDERS
from tests.real_comfyui.helpers import idle, wait_for
from tests.real_comfyui.server import RealComfyUI, comfyui_dir, shared_real_comfyui


@pytest.fixture
def real() -> RealComfyUI:
    """The shared real ComfyUI, idle and with empty input/output folders (what an earlier test
    left is removed first); the test must leave it idle (real ComfyUI may still be finishing a
    node it cannot interrupt: waited for)."""
    c = shared_real_comfyui()
    wait_for(lambda: idle(c), "ComfyUI to finish an earlier test's prompt", 300)
    for folder in (c.input, c.output):
        shutil.rmtree(folder)
        folder.mkdir()
    for name in OUTPUT_MODEL_FOLDERS:  # ComfyUI lists models there and caches each folder's
        (c.output / name).mkdir()  # time: one that goes away breaks every loader's listing
    yield c
    wait_for(lambda: idle(c), "the test's prompts to end", 300)


@pytest.fixture(scope="session")
def checkout() -> Path:
    path = comfyui_dir()
    if path is None:
        pytest.skip("real-ComfyUI tier: COMFYUI_DIR is unset")
    return path
