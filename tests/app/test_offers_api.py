"""The user's LoRAs, upscale x2, smooth motion x2 and start images by URL through the studio's API
(gradio_client, the named parameters of /generate, /quote and /reuse) against the local stack.

`volume_studio`'s endpoint reads a volume with the user's LoRAs and upscale models and has the RIFE
node (tests/app/conftest.py); the plain `studio`'s endpoint has neither, like a stock worker image.
"""

from __future__ import annotations

import json
from fractions import Fraction

import av
import pytest
from gradio_client import Client

from tests.app.conftest import USER_LORAS, start_studio
from tests.app.test_api import args, finished

pytestmark = pytest.mark.slow
HIGH, LOW, SINGLE = USER_LORAS["loras"]
PAIR = [{"high": HIGH, "low": LOW, "strength_high": 0.8, "strength_low": 0.6}]


@pytest.fixture(scope="module")
def vclient(volume_studio):
    return Client(volume_studio.base_url + "/", verbose=False)


def video_facts(path: str) -> tuple[int, int, int, Fraction]:
    with av.open(path) as f:
        s = f.streams.video[0]
        frames = sum(1 for _ in f.decode(s))
        return s.codec_context.width, s.codec_context.height, frames, s.average_rate


def test_a_pair_with_upscale_and_smooth_motion_makes_a_video_twice_the_size_at_double_fps(vclient):
    call = args(resolution="480p landscape", seconds=1.0, loras=json.dumps(PAIR), upscale=True,
                interpolate=True)  # fmt: skip
    quote = vclient.predict(*call, api_name="/quote")
    assert quote.startswith("**Quote:**"), quote
    status, video, details, job = finished(vclient.predict(*call, api_name="/generate"))
    assert 'data-state="COMPLETED"' in status, status
    width, height, frames, fps = video_facts(video)
    assert (width, height) == (2 * 832, 2 * 480)  # exactly 2x the generated 832x480
    assert frames == 2 * 17 - 1 and fps == 32  # 1 s at 16 fps = 17 frames -> 33, 32 fps
    shown = details.replace("\\", "")  # Markdown escapes
    assert f"**LoRAs:** {HIGH} (0.8) + {LOW} (0.6)" in shown, details  # the recipe's LoRAs
    reused = vclient.predict(job, api_name="/reuse")
    names = ["loras", "upscale", "upscale_model", "interpolate", "interpolate_model"]
    back = dict(zip(names, reused[-6:-1], strict=True))  # the fields before the URL
    assert json.loads(back["loras"]) == PAIR
    assert back["upscale"] is True and back["interpolate"] is True
    status, rerun_video, rerun_details, _ = finished(vclient.predict(job, api_name="/rerun"))
    assert 'data-state="COMPLETED"' in status, status  # Rerun exactly: the same LoRAs and steps
    assert f"**LoRAs:** {HIGH} (0.8) + {LOW} (0.6)" in rerun_details.replace("\\", "")
    assert video_facts(rerun_video)[:3] == (width, height, frames)


def test_a_pair_on_the_5b_is_refused_saying_why(vclient):
    call = args(pipeline="ti2v_5b", mode="quality", resolution="480p square",
                loras=json.dumps(PAIR))  # fmt: skip
    text = vclient.predict(*call, api_name="/quote").replace("\\", "")  # Markdown escapes
    assert "LoRAs (LoRA 1)" in text and "5B" in text and "one model" in text, text


def test_preflight_names_a_lora_the_endpoint_lacks_before_a_paid_run(vclient, volume_stack):
    call = args(loras=json.dumps([{"file": "not_on_the_volume.safetensors"}]))
    with pytest.raises(Exception) as e:
        vclient.predict(*call, api_name="/generate")
    assert "not_on_the_volume.safetensors → models/loras/" in str(e.value)


def test_smooth_motion_without_the_node_is_refused_naming_the_pack(stack, tmp_path):
    # pre-flight "required": the job waits for the inventory (best-effort, the default, may send a
    # job while the inventory job still queues behind others: the worker then fails it)
    studio = start_studio(stack, tmp_path / "data", WANPOD_PREFLIGHT="required")
    try:
        client = Client(studio.base_url + "/", verbose=False)
        with pytest.raises(Exception) as e:
            client.predict(*args(interpolate=True), api_name="/generate")
    finally:
        studio.stop()
    text = str(e.value)
    assert "RIFE VFI" in text and "ComfyUI-Frame-Interpolation" in text, text


def test_a_start_image_by_url_is_downloaded_by_the_worker(vclient, image_host):
    url = image_host.url("/start.png?X-Amz-Signature=d3adb33fc0ffee")
    call = args(pipeline="i2v_14b", resolution="480p square", seconds=1.0, start_url=url)
    quote = vclient.predict(*call, api_name="/quote").replace("\\", "")
    assert "start image from https://localhost:" in quote and "d3adb33f" not in quote, quote
    status, _, details, _ = finished(vclient.predict(*call, api_name="/generate"))
    assert 'data-state="COMPLETED"' in status, status  # the worker fetched it: LoadImage read it
    assert "d3adb33f" not in details
    bad = args(pipeline="i2v_14b", start_url="http://localhost/start.png")
    refused = vclient.predict(*bad, api_name="/quote").replace("\\", "")
    assert "start image URL: http://localhost/start.png uses http://" in refused, refused
