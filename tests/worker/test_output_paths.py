"""The worker delivers only what ComfyUI's savers write: regular files inside ComfyUI's output
folder once symlinks are resolved. An output that ComfyUI (a custom node, or a compromised
ComfyUI; the emulator's `extra_output` knob) reports elsewhere is refused with a clear `errors`
entry, the job's real outputs are still delivered, and nothing is read from the named path."""

from __future__ import annotations

import base64
import json
import os

import pytest

from tests.worker.conftest import Comfy, load_workflow, run, with_seed
from worker.handler import make_handler

T2V = load_workflow("wan22_t2v_14B_lightx2v")
SECRET = "wanpod-secret-NOT-TO-BE-DELIVERED"


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("WANPOD_TEST_SECRET", SECRET)  # in this process's /proc/self/environ


def hostile_cases(emu: Comfy, tmp_path) -> dict[str, dict]:
    outside = tmp_path / "outside.txt"
    outside.write_text(SECRET)
    link_dir = emu.output / "links"
    link_dir.mkdir(exist_ok=True)
    for name, target in (("to_outside.mp4", outside), ("to_environ.mp4", "/proc/self/environ")):
        if (link_dir / name).is_symlink():
            (link_dir / name).unlink()
        os.symlink(target, link_dir / name)
    (emu.output / "a_folder.mp4").mkdir(exist_ok=True)
    return {
        "proc environ": {"filename": "environ", "subfolder": "/proc/self", "type": "output"},
        "dot-dot subfolder": {"filename": "outside.txt", "subfolder": "../../" * 12 + str(tmp_path),
                              "type": "output"},
        "dot-dot name": {"filename": "../outside.txt", "subfolder": "", "type": "output"},
        "symlink out": {"filename": "to_outside.mp4", "subfolder": "links", "type": "output"},
        "symlink to proc": {"filename": "to_environ.mp4", "subfolder": "links", "type": "output"},
        "not a file": {"filename": "a_folder.mp4", "subfolder": "", "type": "output"},
        "input folder": {"filename": "secret.png", "subfolder": "", "type": "input"},
    }  # fmt: skip


@pytest.mark.parametrize("shared", [True, False], ids=["shared folder", "over /view"])
def test_outputs_outside_the_output_folder_are_refused(emu: Comfy, tmp_path, secret_env, shared):
    cases = hostile_cases(emu, tmp_path)
    (emu.input / "secret.png").write_text(SECRET)
    env = {} if shared else {"COMFY_OUTPUT_DIR": "", "COMFY_INPUT_DIR": ""}
    h = make_handler(emu.settings(**env))
    for seed, (case, ref) in enumerate(cases.items()):
        if not shared and (case.startswith("symlink") or case == "not a file"):
            continue  # only a shared folder shows these; over /view ComfyUI's route decides
        emu.knobs(extra_output=ref)
        out = run(h, {"id": f"path-{seed}", "input": {"workflow": with_seed(T2V, 80 + seed)}})
        assert "error" not in out, (case, out)
        [video] = out["images"]  # the real output is delivered
        assert video["kind"] == "video" and base64.b64decode(video["data"])[4:8] == b"ftyp"
        [problem] = out["errors"]
        assert f"output {ref['filename']!r} of node 80" in problem, (case, problem)
        assert "was not delivered" in problem
        assert SECRET not in json.dumps(out), case
        assert SECRET.encode() not in base64.b64decode(video["data"])
    assert (tmp_path / "outside.txt").read_text() == SECRET  # clean-up did not touch it either
    assert (emu.input / "secret.png").exists()
    (emu.input / "secret.png").unlink()
