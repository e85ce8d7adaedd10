"""`python -m app.cli doctor` against the local stack: the workers' ComfyUI reads a fake network
volume that holds the 14B text-to-video files and all but one image-to-video file."""

from __future__ import annotations

import os
import subprocess

import pytest

from emulators.stack import LocalStack, StackConfig
from tests.endpoint.conftest import PYTHON, WORKER_PYTHON
from tests.helpers import REPO
from workflows.catalog import load_catalog

pytestmark = pytest.mark.slow
CATALOG = load_catalog()
LORA = "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"  # the one file left out


def doctor(env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    return subprocess.run([PYTHON, "-m", "app.cli", "doctor", "--timeout", str(timeout_s),
                           "--poll", "0.1"],
                          cwd=REPO, env={**base, **env}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def fake_volume(root):
    for f in CATALOG.files_for(["t2v_14b", "i2v_14b"], ["turbo", "quality"]):
        if f.name != LORA:
            (root / "models" / f.folder).mkdir(parents=True, exist_ok=True)
            (root / "models" / f.folder / f.name).write_bytes(b"")
    paths = root / "extra_model_paths.yaml"
    folders = "".join(
        f"  {d}: models/{d}/\n" for d in ("diffusion_models", "text_encoders", "vae", "loras")
    )
    paths.write_text(f"vol:\n  base_path: {root}\n{folders}")
    return paths


def test_doctor_names_ready_pipelines_and_each_missing_file_with_its_fix(tmp_path):
    paths = fake_volume(tmp_path / "volume")
    cfg = StackConfig(step_delay=0.02, worker_python=WORKER_PYTHON,
                      comfy_args=("--extra-model-paths-config", str(paths)))  # fmt: skip
    with LocalStack(cfg) as s:
        r = doctor(s.env())
        bad = doctor({**s.env(), "RUNPOD_API_KEY": "sk-wrong-key-123"})
        gone = doctor({**s.env(), "RUNPOD_ENDPOINT_ID": "no-such-endpoint"})
    out = r.stdout
    print(out)  # the report pastes this
    assert r.returncode == 0, out + r.stderr
    assert f"doctor: endpoint {s.base_url}" in out
    assert "  ok     key and endpoint id accepted" in out
    assert "  ok     health: workers " in out and "idle" in out
    assert "  ok     inventory: ComfyUI 0.3.64, " in out and "node classes" in out
    assert "  ready    t2v_14b turbo" in out and "  ready    t2v_14b quality" in out
    assert "  ready    i2v_14b quality" in out and "  ready    flf2v_14b quality" in out
    assert "  MISSING  i2v_14b turbo:" in out
    assert f"             file loras/{LORA}" in out
    assert "add the files: python -m worker.provision --pipelines i2v_14b --modes turbo" in out
    assert '{"input": {"provision": {"pipelines": ["i2v_14b"], "modes": ["turbo"]}}}' in out
    assert "file diffusion_models/wan2.2_ti2v_5B_fp16.safetensors" in out
    assert "file vae/wan2.2_vae.safetensors" in out
    assert "doctor: 4 of 7 pipeline modes ready" in out
    assert s.api_key not in out
    assert bad.returncode == 2 and "refused the API key" in bad.stdout
    assert "sk-wrong-key-123" not in bad.stdout + bad.stderr
    assert gone.returncode == 2 and "FAIL   key and endpoint id" in gone.stdout


def test_doctor_without_credentials_says_what_to_set():
    r = doctor({})
    assert r.returncode == 2
    assert "set RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID" in r.stdout


def test_doctor_cancels_an_inventory_job_no_worker_took_in_time(tmp_path):
    """An endpoint still starting (no worker up yet): the job doctor sent is cancelled when its
    wait ends, and the line says what to do (each run sends a job of its own)."""
    import json
    import urllib.request

    with LocalStack(StackConfig(workers=0, wait_workers=False)) as s:
        r = doctor(s.env(), timeout_s=2)
        req = urllib.request.Request(f"{s.plane_url}/emulator/state",
                                     headers={"Authorization": s.api_key})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as answer:
            state = json.load(answer)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not answered within 2 s" in r.stdout and "cancelled. Run doctor again" in r.stdout
    assert s.api_key not in r.stdout
    assert state["queue"] == []  # cancelled: no worker starting later runs it
