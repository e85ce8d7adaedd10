"""ComfyUI's own example clients (`script_examples/` of the checkout in COMFYUI_DIR), unchanged but
for the server address, against the ComfyUI emulator: what works with real ComfyUI must work
with the emulator. Their SD 1.5 checkpoint is a 0-byte file in the emulator's model folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.real_comfyui.helpers import wait_for
from tests.worker.conftest import Comfy, get_json

REPORT = """
import json as _json
print("IMAGES " + _json.dumps({k: [b[:8].hex() for b in v] for k, v in images.items()}))
"""
PNG = "89504e470d0a1a0a"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Comfy:
    root = tmp_path_factory.mktemp("examples")
    (root / "models" / "checkpoints").mkdir(parents=True)
    (root / "models" / "checkpoints" / "v1-5-pruned-emaonly.safetensors").touch()
    paths = root / "extra_model_paths.yaml"
    paths.write_text(f"examples:\n  base_path: {root}\n  checkpoints: models/checkpoints\n")
    c = Comfy(root / "comfy", ["--extra-model-paths-config", str(paths)])
    yield c
    c.stop()


def run_example(checkout: Path, name: str, address: str, tmp_path: Path, tail: str = ""):
    source = (checkout / "script_examples" / name).read_text()
    assert "127.0.0.1:8188" in source, f"{name} no longer names 127.0.0.1:8188"
    script = tmp_path / name
    script.write_text(source.replace("127.0.0.1:8188", address) + tail)
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def images_of(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("IMAGES ")]
    return json.loads(line.removeprefix("IMAGES "))


def test_basic_api_example_queues_a_prompt_that_runs(checkout, emulator, tmp_path):
    before = set(get_json(emulator.url + "/history"))
    proc = run_example(checkout, "basic_api_example.py", emulator.address, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = wait_for(
        lambda: {k: v for k, v in get_json(emulator.url + "/history").items() if k not in before},
        "the example's prompt to finish",
    )
    [entry] = new.values()
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["prompt"][2]["3"]["inputs"]["seed"] == 5  # the script's own edit


def test_websockets_api_example_gets_its_png(checkout, emulator, tmp_path):
    images = images_of(
        run_example(checkout, "websockets_api_example.py", emulator.address, tmp_path, REPORT)
    )
    assert images == {"9": [PNG]}, images


def test_websockets_api_example_ws_images_gets_its_png_frames(checkout, emulator, tmp_path):
    name = "websockets_api_example_ws_images.py"
    images = images_of(run_example(checkout, name, emulator.address, tmp_path, REPORT))
    assert images == {"save_image_websocket_node": [PNG]}, images
