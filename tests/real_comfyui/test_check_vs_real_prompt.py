"""`workflows.check` beside real ComfyUI's `/prompt` and what then happens when the prompt runs:
`check` must refuse what fails later or is silently wrong, and accept what ComfyUI accepts and
runs. Each case prints one row (check | /prompt | run) for the record."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.real_comfyui.helpers import video_workflow, wait_for
from tests.real_comfyui.server import RealComfyUI
from tests.worker.conftest import get_json, load_workflow
from workflows.schema import check

T2V = "wan22_t2v_14B_lightx2v"


def t2v(**changes: tuple[str, str, object]) -> dict:
    wf = load_workflow(T2V)
    for node, name, value in changes.values():
        wf[node]["inputs"][name] = value
    return wf


def load_missing_image() -> dict:
    wf = video_workflow(frames=8)
    wf["1"] = {"class_type": "LoadImage", "inputs": {"image": "never_uploaded.png"}}
    return wf


# case: (workflow, should check refuse it?, why)
CASES = {
    "SaveVideo webm + h264": (video_workflow(frames=8, fmt="webm"), True, "fails when it runs"),
    "odd width (255) for h264": (video_workflow(width=255, height=128, frames=8), True,
                                 "libx264 needs even sizes: avcodec_open2 fails at run time"),
    "LoadImage of a missing file": (load_missing_image(), True,
                                    "nothing uploads it (real /prompt refuses it: 400)"),
    "cfg 1.05": (t2v(a=("81", "cfg", 1.05), b=("78", "cfg", 1.05)), False,
                 "the schema says round 0.01: ComfyUI takes it"),
    "length 82": (t2v(a=("74", "length", 82)), True, "Wan makes 4n+1 frames: silently 81"),
    "width 130": (t2v(a=("74", "width", 130)), True, "silently cropped to a multiple of 16"),
    "5B VAE with a 14B model": (t2v(a=("73", "vae_name", "wan2.2_vae.safetensors")), True,
                                "fails at decode with real weights"),
}  # fmt: skip


def post_prompt(real: RealComfyUI, wf: dict) -> tuple[int, dict]:
    body = json.dumps({"prompt": wf, "client_id": "check-vs-prompt"}).encode()
    req = urllib.request.Request(
        real.url + "/prompt", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def outcome(real: RealComfyUI, prompt_id: str) -> str:
    entry = wait_for(lambda: get_json(f"{real.url}/history/{prompt_id}"), "the prompt to end", 300)
    status = entry[prompt_id]["status"]
    for kind, data in status["messages"]:
        if kind == "execution_error":
            return f"error at {data['node_type']}: {data['exception_message'].strip()[:90]}"
    return status["status_str"]


@pytest.mark.parametrize("case", list(CASES))
def test_check_refuses_what_real_comfyui_would_fail_on(real: RealComfyUI, case: str):
    wf, bad, why = CASES[case]
    # each case is a job that uploads no image
    problems = check(wf, get_json(real.url + "/object_info"), uploads=())
    status, body = post_prompt(real, wf)
    ran = outcome(real, body["prompt_id"]) if status == 200 else "-"
    verdict = "; ".join(map(str, problems)) or "ok"
    print(f"\nROW | {case} | check: {verdict} | /prompt: {status} | run: {ran} | {why}")
    assert bool(problems) == bad, (case, verdict, status, ran)
