"""docs/deploy.md's commands, run as written (every ```bash tested block, in order) against the
local stack: a local Hugging Face Hub (emulators/hfhub.py via HF_ENDPOINT) with placeholder files,
an empty volume, and a RunPod endpoint whose ComfyUI reads that volume, so the video at the end
is only made if the provision step put the files there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from emulators.stack import LocalStack, StackConfig
from tests.endpoint.conftest import PYTHON, WORKER_PYTHON
from tests.helpers import REPO, ServerProcess, free_port
from workflows.catalog import load_catalog

pytestmark = pytest.mark.slow
DOC = (REPO / "docs" / "deploy.md").read_text()
BLOCKS = re.findall(r"^```bash tested\n(.*?)^```", DOC, re.M | re.S)
FOLDERS = ("diffusion_models", "text_encoders", "vae", "loras")


def python_shim(bin_dir):
    """`python` as the docs say it: the worker's modules run in the worker environment (as in
    the worker image or on a pod), the rest in the app environment (the operator's clone)."""
    bin_dir.mkdir()
    shim = bin_dir / "python"
    shim.write_text(
        "#!/bin/sh\n"
        f'case "$2" in worker*) exec {WORKER_PYTHON} "$@";; *) exec {PYTHON} "$@";; esac\n'
    )
    shim.chmod(0o755)


def test_every_tested_block_of_the_deploy_doc_runs_against_the_local_stack(tmp_path):
    assert len(BLOCKS) >= 4, "deploy.md lost its tested blocks"
    repos, volume, work = tmp_path / "hub", tmp_path / "volume", tmp_path / "work"
    for i, f in enumerate(load_catalog().sources.values()):
        (repos / f.repo / f.path).parent.mkdir(parents=True, exist_ok=True)
        (repos / f.repo / f.path).write_bytes(os.urandom(1000 + i))
    volume.mkdir()
    work.mkdir()
    shutil.copy(REPO / "test_input.json", work / "test_input.json")
    paths = tmp_path / "extra_model_paths.yaml"
    paths.write_text(
        f"vol:\n  base_path: {volume}\n" + "".join(f"  {d}: models/{d}/\n" for d in FOLDERS)
    )
    python_shim(tmp_path / "bin")
    port, cdn = free_port(), free_port()
    hub_argv = [sys.executable, "-m", "emulators.hfhub", "--repos", str(repos), "--port", str(port),
                "--cdn-port", str(cdn)]  # fmt: skip
    common = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "WANPOD_VOLUME_PATHS": str(volume)}
    cfg = StackConfig(step_delay=0.02, worker_python=WORKER_PYTHON, worker_env=common,
                      comfy_args=("--extra-model-paths-config", str(paths)))  # fmt: skip
    with ServerProcess(hub_argv, port, ready_path="/_emulator/requests"), LocalStack(cfg) as s:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "HF_"))}
        env = {**base, **s.env(), **common, "PYTHONPATH": str(REPO),
               "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}  # fmt: skip
        outputs = []
        for block in BLOCKS:
            p = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                               capture_output=True, text=True, timeout=180)  # fmt: skip
            assert p.returncode == 0, f"{block}\n{p.stdout}\n{p.stderr}"
            outputs.append(p.stdout)
    text = "\n".join(outputs)
    assert "to fetch: 6 file(s)" in text  # the dry run, before anything was fetched
    assert "provision: done; 6 file(s) present and verified" in text
    assert '"provision": {"volume": ' in text and '"dry_run": true' in text  # the job, via curl
    assert "  ready    t2v_14b turbo" in text and "  MISSING  ti2v_5b quality:" in text
    assert "saved " in text and (work / "out" / "ComfyUI_00001_.mp4").read_bytes()[4:8] == b"ftyp"
    assert s.api_key not in text
