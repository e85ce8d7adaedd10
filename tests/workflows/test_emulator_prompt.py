"""Every filled template (and a filled bring-your-own workflow) is accepted by the ComfyUI
emulator's /prompt: HTTP 200 with empty node_errors, after uploading the images fill named."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from tests.helpers import REPO, comfy_emulator, png_bytes
from tests.workflows.conftest import OFFICIAL, TEMPLATE_MODES
from workflows.byo import fill_byo
from workflows.fill import fill

pytestmark = pytest.mark.skipif(
    not (REPO / "emulators" / "comfyui" / "__main__.py").exists(),
    reason="the ComfyUI emulator (python -m emulators.comfyui) is not in this checkout yet",
)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("comfy-wf")
    with comfy_emulator("--step-delay", "0", "--video-max-side", "64", folders=root) as srv:
        yield srv.base_url
        requests.post(srv.base_url + "/queue", json={"clear": True}, timeout=5)
        requests.post(srv.base_url + "/interrupt", timeout=5)


def upload(base: str, name: str) -> None:
    r = requests.post(
        base + "/upload/image",
        files={"image": (name, png_bytes(64, 64, (200, 80, 40)), "image/png")},
        data={"overwrite": "true"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name


def post_prompt(base: str, workflow: dict) -> requests.Response:
    return requests.post(base + "/prompt", json={"prompt": workflow, "client_id": "wf"}, timeout=10)


@pytest.mark.parametrize(("tid", "mode"), TEMPLATE_MODES)
def test_filled_template_accepted(comfy, tid, mode):
    params = {"mode": mode, "prompt": "a paper boat on a river", "seconds": 1.0}
    if tid == "ti2v_5b":
        params["start_image"] = True
    f = fill(tid, params)
    for name in f.images:
        upload(comfy, name)
    r = post_prompt(comfy, f.workflow)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["node_errors"] == {} and body["prompt_id"]


def test_5b_text_only_accepted(comfy):
    r = post_prompt(comfy, fill("ti2v_5b", {"prompt": "x", "frames": 9}).workflow)
    assert r.status_code == 200 and r.json()["node_errors"] == {}, r.text


def test_missing_upload_is_refused(comfy):
    """Control: the emulator does validate LoadImage, so the uploads above are what made it pass."""
    f = fill("i2v_14b", {"prompt": "x", "frames": 5})
    r = post_prompt(comfy, f.workflow)
    assert r.status_code == 400
    assert "17" in r.json()["node_errors"]


def test_filled_byo_accepted(comfy):
    wf = json.loads((OFFICIAL / "wan22_flf2v_14B_lightx2v.api.json").read_text())
    f = fill_byo(wf, {"prompt": "x", "frames": 9})
    for name in f.images:
        upload(comfy, name)
    r = post_prompt(comfy, f.workflow)
    assert r.status_code == 200 and r.json()["node_errors"] == {}, r.text
