"""The real handler against the ComfyUI emulator: uploads that never touch files the job did not
create, worker-comfyui requests with extra keys and subfolders, file inputs outside the input
folder, and readable validation errors."""

from __future__ import annotations

import base64
import io

from PIL import Image

from tests.worker.conftest import Comfy, png_b64, run
from worker.handler import make_handler


def load_save(name: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "in"}},
    }


def size_of(item: dict) -> tuple[int, int]:
    with Image.open(io.BytesIO(base64.b64decode(item["data"]))) as img:
        return img.size


def test_an_upload_named_like_an_existing_input_file_leaves_it_alone(emu: Comfy):
    existing = emu.input / "example.png"
    Image.new("RGB", (32, 32), (0, 0, 255)).save(existing)
    before = existing.read_bytes()
    job = {
        "workflow": load_save("example.png"),
        "images": [{"name": "example.png", "image": png_b64()}],
    }
    out = run(make_handler(emu.settings()), {"id": "same-name", "input": job})
    assert "error" not in out, out
    assert size_of(out["images"][0]) == (64, 48)  # the job read its own upload, not the stock file
    assert existing.read_bytes() == before  # neither overwritten nor deleted by the clean-up
    assert not list(emu.input.glob("wanpod-*"))  # the job's own upload folder is gone
    existing.unlink()


def test_worker_comfyui_request_with_extra_keys_and_a_subfolder(emu: Comfy):
    job = {
        "workflow": load_save("sub/test.png"),
        "images": [{"name": "sub/test.png", "image": png_b64((40, 30)), "comment": "x"}],
        "client_tag": "t-1",
    }
    out = run(make_handler(emu.settings()), {"id": "extra-keys", "input": job})
    assert "error" not in out, out
    assert size_of(out["images"][0]) == (40, 30)
    assert out["warnings"] == [
        "input: unknown key 'client_tag' ignored (known: workflow, images, comfy_org_api_key)",
        "images[0]: unknown key 'comment' ignored (known: name, image)",
    ]
    assert not list(emu.input.rglob("test.png"))


def test_a_file_input_outside_the_input_folder_never_reaches_comfyui(emu: Comfy):
    secret = emu.root / "secret.png"
    Image.new("RGB", (8, 8)).save(secret)
    for value in ("../secret.png", str(secret)):
        out = run(
            make_handler(emu.settings()), {"id": "trav", "input": {"workflow": load_save(value)}}
        )
        assert out["error"].startswith("invalid input: workflow['1'] (LoadImage) input 'image': ")
        assert "points outside ComfyUI's input folder" in out["error"]
        assert f"(got {value!r}"[:40] in out["error"]  # the caller's own value, as given
    assert not list(emu.output.rglob("in_*.png"))


def test_validation_errors_read_plainly(emu: Comfy):
    h = make_handler(emu.settings())
    size = {"width": 64, "height": 64}
    wf = {
        "1": {"class_type": "EmptyImage", "inputs": {**size, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "ImageScale",
            "inputs": {"image": ["1", 0], "upscale_method": "bogus", **size, "crop": "disabled"},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    out = run(h, {"id": "v1", "input": {"workflow": wf}})
    assert "'bogus' is not one of the options: nearest-exact" in out["details"][0], out
    missing = {
        "3": {"class_type": "SaveImage", "inputs": {"images": ["99", 0], "filename_prefix": "x"}}
    }
    out = run(h, {"id": "v2", "input": {"workflow": missing}})
    assert out["details"] == [
        "node 3 (SaveImage) input 'images': links to node 99, which is not in the workflow"
    ]
    slot = {
        **wf,
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 5], "filename_prefix": "x"}},
    }
    out = run(h, {"id": "v3", "input": {"workflow": slot}})
    assert out["details"] == [
        "node 3 (SaveImage) input 'images': links to output slot 5 of node 1 (EmptyImage), "
        "which has no such output"
    ]
    nope = {
        "1": {"class_type": "NoSuchNode", "inputs": {}},
        **{k: v for k, v in wf.items() if k != "1"},
    }
    out = run(h, {"id": "v4", "input": {"workflow": nope}})
    assert out["error"] == (
        "workflow rejected by ComfyUI: "
        "Cannot execute because node NoSuchNode does not exist (node 1)"
    )
    assert out["details"] == ["node 1: Cannot execute because node NoSuchNode does not exist"]
    for entry in [out["error"], *out["details"]]:
        assert "\n" not in entry and "/" not in entry


def test_save_image_websocket_images_are_returned(emu: Comfy):
    """ComfyUI sends SaveImageWebsocket's images only as binary websocket frames (no file, no
    history output); the worker returns them like files, sampler previews are not mistaken."""
    wf = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 24, "height": 16, "batch_size": 3, "color": 255},
        },
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    }
    emu.knobs(preview_method="auto")
    try:
        out = run(make_handler(emu.settings()), {"id": "ws-img", "input": {"workflow": wf}})
    finally:
        emu.knobs(preview_method="none")
    assert "error" not in out, out
    assert [(i["filename"], i["type"], i["mime"], i["node_id"]) for i in out["images"]] == [
        (f"websocket_2_0000{n}_.png", "base64", "image/png", "2") for n in (1, 2, 3)
    ]
    assert {size_of(i) for i in out["images"]} == {(24, 16)}
    assert "status" not in out  # not "success_no_images"


def test_save_image_websocket_images_go_to_s3_too(emu: Comfy, s3_server):
    import boto3
    import requests

    s3 = boto3.client(
        "s3", endpoint_url=s3_server.base_url, aws_access_key_id="a", aws_secret_access_key="b",
        region_name="us-east-1",
    )  # fmt: skip
    s3.create_bucket(Bucket="wanpod-ws")
    env = dict(
        BUCKET_ENDPOINT_URL=s3_server.base_url,
        BUCKET_ACCESS_KEY_ID="AKIDTESTKEY",
        BUCKET_SECRET_ACCESS_KEY="test-secret-key",
        BUCKET_NAME="wanpod-ws",
    )
    wf = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 20, "height": 10, "batch_size": 1, "color": 0},
        },
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    }
    out = run(make_handler(emu.settings(**env)), {"id": "ws-s3", "input": {"workflow": wf}})
    assert "error" not in out, out
    [item] = out["images"]
    assert item["type"] == "s3_url" and "/wanpod-ws/ws-s3/websocket_2_00001_.png?" in item["data"]
    r = requests.get(item["data"], timeout=10)
    assert r.headers["Content-Type"] == "image/png" and len(r.content) == item["size"]
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.size == (20, 10)
