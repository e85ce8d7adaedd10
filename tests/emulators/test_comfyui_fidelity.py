"""Emulator behaviour checked against a real ComfyUI 0.3.64 on CPU (issues 11 and 15): what
SaveImageWebsocket sends, where LoadImage reads annotated and `..` names at run time, validation
errors for broken links, and loader option lists without the recording's probe files.

Real ComfyUI showed (EmptyImage 16x8 batch 2 -> SaveImageWebsocket): `progress 0/2`, a binary
frame `[uint32 1][uint32 2][PNG]`, `progress 1/2`, the second frame, `execution_success`; no
`executed` message and no history output for the node. `LoadImage "x.png [output]"` and
`"../secret.png"` both passed validation and ran, reading the output folder and the file beside
the input folder (8x8 and 10x6 outputs from 8x8 and 10x6 inputs).
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

from PIL import Image

from tests.emulators.bodies import CASES, FALSY_IDS, UPLOADS, ids_answered, statuses
from tests.emulators.comfy_client import Comfy
from tests.emulators.test_comfyui_replay import wait_history
from tests.helpers import comfy_emulator


def empty_image(w: int = 16, h: int = 8, batch: int = 2) -> dict:
    return {
        "class_type": "EmptyImage",
        "inputs": {"width": w, "height": h, "batch_size": batch, "color": 0},
    }


def test_save_image_websocket_sends_png_frames_like_comfyui(comfy: Comfy) -> None:
    sock = comfy.connect()
    prompt = {
        "1": empty_image(),
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    }
    pid = comfy.queue_prompt(prompt, sock.client_id)["prompt_id"]
    seen: list[object] = []
    while True:
        raw = sock.ws.recv()
        if isinstance(raw, bytes):
            event, fmt = struct.unpack(">II", raw[:8])
            with Image.open(io.BytesIO(raw[8:])) as img:
                seen.append(("binary", event, fmt, img.format, img.size))
            continue
        msg = json.loads(raw)
        if msg["data"].get("prompt_id") != pid:
            continue
        if msg["type"] == "progress":
            seen.append(("progress", msg["data"]["value"], msg["data"]["max"], msg["data"]["node"]))
        elif msg["type"] in ("executed", "execution_success"):
            seen.append(msg["type"])
            if msg["type"] == "execution_success":
                break
    sock.close()
    assert seen == [
        ("progress", 0, 2, "2"),
        ("binary", 1, 2, "PNG", (16, 8)),
        ("progress", 1, 2, "2"),
        ("binary", 1, 2, "PNG", (16, 8)),
        "execution_success",
    ]
    assert wait_history(comfy, pid)["outputs"] == {}


def test_load_image_reads_annotated_and_dotdot_names_at_run_time(
    comfy: Comfy, comfy_dirs: dict[str, Path]
) -> None:
    Image.new("RGB", (10, 6)).save(comfy_dirs["output"] / "only_in_output.png")
    Image.new("RGB", (8, 8)).save(comfy_dirs["input"].parent / "beside_input.png")
    names = {"only_in_output.png [output]": (10, 6), "../beside_input.png": (8, 8),
             "only_in_output.png_[output]": (10, 6)}  # fmt: skip  # the character before: cut
    for name, size in names.items():
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": name}},
            "2": {
                "class_type": "SaveImage",
                "inputs": {"images": ["1", 0], "filename_prefix": "annot"},
            },
        }
        pid = comfy.queue_prompt(prompt, None)["prompt_id"]
        out = wait_history(comfy, pid)
        assert out["status"]["status_str"] == "success", out["status"]
        [item] = out["outputs"]["2"]["images"]
        with Image.open(comfy_dirs["output"] / item["subfolder"] / item["filename"]) as img:
            assert img.size == size


def test_bad_output_slot_and_inner_missing_node_fail_validation_like_comfyui(comfy: Comfy) -> None:
    bad_slot = {
        "1": empty_image(),
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 5], "filename_prefix": "x"}},
    }
    body = comfy.post("/prompt", json={"prompt": bad_slot}).json()
    assert body["error"]["details"] == "Exception when validating node: tuple index out of range"
    [err] = body["node_errors"]["2"]["errors"]
    assert (err["type"], err["extra_info"]["exception_type"]) == (
        "exception_during_validation",
        "IndexError",
    )
    inner = {
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["99", 0], "fps": 8}},
        "3": {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["2", 0],
                "filename_prefix": "x",
                "format": "auto",
                "codec": "auto",
            },
        },
    }
    body = comfy.post("/prompt", json={"prompt": inner}).json()
    [err] = body["node_errors"]["2"]["errors"]
    assert err["type"] == "exception_during_inner_validation"
    assert (err["details"], err["extra_info"]["input_name"]) == ("'99'", "video")


def test_loader_lists_leave_out_the_recording_probe_files(comfy: Comfy) -> None:
    info = comfy.get("/object_info").text
    assert "probe_in_unet_dir" not in info and "probe_in_clip_dir" not in info
    assert "probe_subdir/" not in info
    bad = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": "nope.safetensors", "weight_dtype": "default"},
        },
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    body = comfy.post("/prompt", json={"prompt": bad}).json()
    listed = body["node_errors"]["1"]["errors"][0]["extra_info"]["input_config"][0]
    assert listed and not [n for n in listed if n.startswith("probe_")]


def test_odd_requests_are_answered_as_real_comfyui_answers_them(comfy: Comfy) -> None:
    assert statuses(comfy.base_url) == (CASES, UPLOADS)


def test_a_falsy_prompt_id_is_kept_as_given(comfy: Comfy) -> None:
    assert ids_answered(comfy.base_url) == [kept for _, kept in FALSY_IDS]


def test_models_saved_under_the_output_folder_are_listed(tmp_path: Path) -> None:
    """ComfyUI also reads <output>/{checkpoints,clip,vae,diffusion_models,loras} (where its
    save nodes put models); with model folders on disk, so does the emulator."""
    (tmp_path / "models" / "loras").mkdir(parents=True)
    for folder in ("loras", "clip", "vae"):
        (tmp_path / "output" / folder).mkdir(parents=True)
        (tmp_path / "output" / folder / f"saved_{folder}.safetensors").touch()
    args = ["--base-directory", str(tmp_path), "--output-directory", str(tmp_path / "output")]
    with comfy_emulator(*args) as srv:
        c = Comfy(srv.base_url)
        assert c.get("/models/loras").json() == ["saved_loras.safetensors"]
        assert c.get("/models/vae").json() == ["saved_vae.safetensors"]
        assert "saved_clip.safetensors" in c.get("/models/text_encoders").json()
