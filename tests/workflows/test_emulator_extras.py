"""Filled workflows with user LoRAs and post-steps run on the ComfyUI emulator to a real mp4 whose
decoded size, frame count and fps are what fill said (`FilledWorkflow.output`).

The emulator gets a fake model volume (0-byte files named like the templates', the user's LoRAs
and two upscale models) and the RIFE node's recorded schema (`--extra-schema`), the way an
endpoint with ComfyUI-Frame-Interpolation installed has it. Without that schema, real ComfyUI and
the emulator refuse the RIFE node at /prompt (the control at the end)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

from emulators.volume import RIFE_SCHEMA, write_volume
from tests.emulators.comfy_client import Comfy, close_later
from tests.helpers import ServerProcess, comfy_emulator
from workflows.fill import fill
from workflows.poststeps import post_steps

FOUR_X = "4x-UltraSharp.pth"  # a 4x model: ImageScale must still bring it to exactly 2x
USER_LORAS = [
    "style/my_style_HIGH.safetensors",
    "style/my_style_LOW.safetensors",
    "Wan21_CausVid_14B_T2V_lora_rank32_v2.safetensors",
    "moe_distill_HIGH.safetensors",
    "detail.safetensors",
    *(f"five_b_{i}.safetensors" for i in range(1, 5)),
]
PAIR = {"high": USER_LORAS[0], "low": USER_LORAS[1], "strength_low": 0.8}
FOUR_14B = [
    PAIR,
    {"file": USER_LORAS[2], "strength": 0.5},
    {"high": USER_LORAS[3]},
    {"file": USER_LORAS[4], "strength": -0.3},
]
FOUR_5B = [{"file": f"five_b_{i}.safetensors"} for i in range(1, 5)]

POSTS = ({}, {"upscale": True}, {"interpolate": True}, {"upscale": True, "interpolate": True})
STACK_14B = {0: [], 1: [PAIR], 4: FOUR_14B}
STACK_5B = {0: [], 1: [{"file": "five_b_1.safetensors"}], 4: FOUR_5B}
MODES = {"t2v_14b": ("turbo", "quality"), "i2v_14b": ("turbo", "quality"),
         "flf2v_14b": ("turbo", "quality"), "ti2v_5b": ("quality",)}  # fmt: skip
SIZES = {"t2v_14b": (160, 128), "i2v_14b": (128, 160), "flf2v_14b": (144, 144),
         "ti2v_5b": (192, 128)}  # fmt: skip
# every (template, mode, LoRA count, post-steps): the video's size, frames, fps checked below
CASES = [
    (tid, mode, (STACK_5B if tid == "ti2v_5b" else STACK_14B)[n], post, SIZES[tid])
    for tid, modes in MODES.items()
    for mode in modes
    for n in (0, 1, 4)
    for post in POSTS
]
CASES.append(("i2v_14b", "quality", [PAIR], {"upscale": True, "upscale_model": FOUR_X}, (128, 160)))


def volume(root: Path) -> Path:
    """A fake model volume with every file the cases need, and its extra_model_paths.yaml."""
    ups = [FOUR_X, post_steps().upscale.default_model]
    return write_volume(root, {"loras": USER_LORAS, "upscale_models": ups})


def emulator(root: Path, *extra: str) -> ServerProcess:
    return comfy_emulator("--step-delay", "0", "--video-max-side", "0", *extra, folders=root)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Comfy, Path]]:
    root = tmp_path_factory.mktemp("comfy-extras")
    paths = volume(root / "volume")
    extra = ("--extra-model-paths-config", str(paths), "--extra-schema", str(RIFE_SCHEMA))
    with emulator(root, *extra) as srv:
        c = Comfy(srv.base_url)
        close_later(c)
        yield c, root / "output"


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


def run(c: Comfy, workflow: dict) -> tuple[dict, set[str]]:
    """The prompt's history entry and the node ids it executed (or took from the cache)."""
    with c.connect() as ws:
        queued = c.queue_prompt(workflow, ws.client_id)
        assert queued["node_errors"] == {}
        messages = ws.until_done(queued["prompt_id"])
    types = [m["type"] for m in messages]
    assert "execution_success" in types, types
    executed = {m["data"]["node"] for m in messages if m["type"] == "executing"}
    for m in messages:
        if m["type"] == "execution_cached":
            executed.update(m["data"]["nodes"])
    return c.get(f"/history/{queued['prompt_id']}").json()[queued["prompt_id"]], executed


@pytest.mark.parametrize(
    ("tid", "mode", "loras", "post", "size"),
    CASES,
    ids=[f"{t}-{m}-{len(lo)}loras-{'+'.join(p) or 'plain'}" for t, m, lo, p, _ in CASES],
)
def test_runs_to_a_video_of_the_promised_size_frames_and_fps(comfy, tid, mode, loras, post, size):
    c, out = comfy
    w, h = size
    params = {"mode": mode, "prompt": "x", "width": w, "height": h, "frames": 9, "loras": loras}
    if tid == "ti2v_5b":
        params["start_image"] = True
    f = fill(tid, params | post)
    for name in f.images:
        assert c.upload(name, png(w, h), overwrite="true").status_code == 200
    history, executed = run(c, f.workflow)
    (video,) = history["outputs"]["16"]["images"]
    path = out / video["subfolder"] / video["filename"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = sum(1 for _ in container.decode(stream))
        got = (stream.codec_context.width, stream.codec_context.height, decoded)
        fps = Fraction(stream.average_rate)
    assert got == (f.output.width, f.output.height, f.output.frames)
    assert fps == f.output.fps
    up = post.get("upscale", False)
    smooth = post.get("interpolate", False)
    native = 24 if tid == "ti2v_5b" else 16
    assert got == (w * (1 + up), h * (1 + up), 17 if smooth else 9)
    assert fps == native * (1 + smooth)
    # every node ran (or was cached from the case before): each LoRA, each post-step node
    assert set(f.workflow) <= executed
    assert history["status"]["status_str"] == "success"


def test_without_the_custom_node_rife_is_refused_at_prompt(tmp_path: Path):
    with emulator(tmp_path) as srv:
        c = Comfy(srv.base_url)
        close_later(c)
        f = fill("t2v_14b", {"prompt": "x", "frames": 9, "interpolate": True})
        r = c.post("/prompt", json={"prompt": f.workflow})
        assert r.status_code == 400
        # what a real ComfyUI 0.3.64 without the pack answered to this workflow
        rife = next(n for n, v in f.workflow.items() if v["class_type"] == "RIFE VFI")
        assert r.json()["error"] == {
            "type": "invalid_prompt",
            "message": "Cannot execute because node RIFE VFI does not exist.",
            "details": f"Node ID '#{rife}'",
            "extra_info": {},
        }
