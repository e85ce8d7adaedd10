"""Filled workflows with the user's LoRAs and the post-steps, sent to a real ComfyUI 0.3.64's
`/prompt` (CPU, placeholder model files): every template x mode x LoRA count x upscale is accepted
(200), and `workflows.check` against the real server's own /object_info agrees. The prompts then
fail at model load (0-byte files), as any job does on this tier. Smooth motion needs the
ComfyUI-Frame-Interpolation pack: it is sent only when the checkout has the RIFE node, and else
real ComfyUI must refuse it (400, the node class is unknown), as pre-flight says it would."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.helpers import png_bytes
from tests.real_comfyui.server import USER_FILES, RealComfyUI
from tests.real_comfyui.test_check_vs_real_prompt import outcome, post_prompt
from tests.worker.conftest import get_json
from workflows.fill import fill
from workflows.loras import LoraUse
from workflows.poststeps import post_steps
from workflows.schema import check

HIGH, LOW, SINGLE, BOOST_HIGH, BOOST_LOW = USER_FILES["loras"]
STACKS = {
    0: [],
    1: [{"high": HIGH, "low": LOW, "strength_low": 0.7}],
    4: [
        {"high": HIGH, "low": LOW},
        {"file": SINGLE, "strength": -0.4},
        {"high": BOOST_HIGH},  # halves of another pair, one expert each
        {"low": BOOST_LOW, "strength": 0.5},
    ],
}
STACKS_5B = {0: [], 1: [{"file": SINGLE}], 4: []}
CASES = [
    (tid, mode, n, upscale)
    for tid, modes in (("t2v_14b", ("turbo", "quality")), ("i2v_14b", ("turbo", "quality")),
                       ("flf2v_14b", ("turbo", "quality")), ("ti2v_5b", ("quality",)))
    for mode in modes
    for n in (0, 1, 4)
    for upscale in (False, True)
    if not (tid == "ti2v_5b" and n == 4)
]  # fmt: skip


def upload(real: RealComfyUI, name: str) -> None:
    boundary = "wanpodboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png_bytes(256, 256, (10, 80, 160))
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        real.url + "/upload/image", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200


@pytest.mark.parametrize(("tid", "mode", "n", "upscale"), CASES)
def test_real_comfyui_accepts_filled_loras_and_upscale(real: RealComfyUI, tid, mode, n, upscale):
    stack = (STACKS_5B if tid == "ti2v_5b" else STACKS)[n]
    params = {"prompt": "a fox", "mode": mode, "seconds": 1, "width": 256, "height": 256,
              "loras": stack, "upscale": upscale}  # fmt: skip
    if upscale:
        params["upscale_model"] = "4x-UltraSharp.pth"
    filled = fill(tid, params)
    for name in filled.images:
        upload(real, name)
    info = get_json(real.url + "/object_info")
    problems = check(filled.workflow, info, uploads=tuple(filled.images))
    status, body = post_prompt(real, filled.workflow)
    ran = outcome(real, body["prompt_id"]) if status == 200 else json.dumps(body)[:200]
    print(f"\nROW | {tid} {mode} loras={n} upscale={upscale} | check: {problems or 'ok'} | "
          f"/prompt: {status} | run: {ran}")  # fmt: skip
    assert not problems and status == 200, (problems, status, body)
    loras = [n for n in filled.workflow.values() if n["class_type"] == "LoraLoaderModelOnly"]
    turbo = 2 if mode == "turbo" and tid != "ti2v_5b" else 0
    experts = ("model",) if tid == "ti2v_5b" else ("high", "low")
    placed = sum(1 for u in stack for e in experts if LoraUse(**u).on(e))  # one node per expert
    assert len(loras) == turbo + placed


def test_smooth_motion_is_accepted_only_where_the_rife_node_is(real: RealComfyUI):
    filled = fill("t2v_14b", {"prompt": "a fox", "seconds": 1, "width": 256, "height": 256,
                              "interpolate": True})  # fmt: skip
    node = post_steps().interpolate.node
    has = node in get_json(real.url + "/object_info")
    status, body = post_prompt(real, filled.workflow)
    print(f"\nROW | smooth motion | {node} installed: {has} | /prompt: {status}")
    if has:
        assert status == 200, body
        outcome(real, body["prompt_id"])
    else:
        assert status == 400 and node in json.dumps(body), body
