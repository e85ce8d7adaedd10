"""The studio's generate API through gradio_client, against the local stack (real worker
processes behind the local RunPod control plane, ComfyUI emulator writing real mp4s)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from app.settings import PRICES_PATH
from app.studio import cost
from app.studio.markup import md_text

ADV = {
    "steps": 4,
    "cfg": 1.0,
    "shift": 5.0,
    "sampler": "euler",
    "scheduler": "simple",
    "lora_high": 1.0,
    "lora_low": 1.0,
}


def args(
    pipeline="t2v_14b",
    mode="turbo",
    prompt="a red fox in snow",
    start=None,
    end=None,
    resolution="480p square",
    seconds=2.0,
    seed=1234,
    randomize=False,
    loras="",
    upscale=False,
    upscale_model=None,
    interpolate=False,
    interpolate_model=None,
    start_url="",
    **adv,
):
    """Every form field, positionally, in FormValues order (the API's parameter order)."""
    a = {**ADV, **adv}
    return [
        pipeline,
        mode,
        prompt,
        "",
        start,
        end,
        None,
        resolution,
        seconds,
        seed,
        randomize,
        a["steps"],
        a["cfg"],
        a["shift"],
        a["sampler"],
        a["scheduler"],
        a["lora_high"],
        a["lora_low"],
        loras,
        upscale,
        upscale_model,
        interpolate,
        interpolate_model,
        start_url,
    ]


def finished(result) -> tuple[str, str, str, str]:
    status, video, details, job, _store, _data = result
    return status, video, details, job


def test_text_to_video_end_to_end(client):
    status, video, details, job = finished(client.predict(*args(), api_name="/generate"))
    assert 'data-state="COMPLETED"' in status, status
    data = Path(video).read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 1000
    assert job.startswith("wp-")
    assert "seed=1234" in details and "frames=33" in details  # 2 s at 16 fps -> 33 frames
    assert "**Actual:**" in details and "billed s" in details and "**Quote:**" in details


def test_image_to_video_end_to_end(client, png_file):
    result = client.predict(
        *args("i2v_14b", start=handle_file(str(png_file)), seed=77), api_name="/generate"
    )
    status, video, details, _ = finished(result)
    assert 'data-state="COMPLETED"' in status, status
    assert Path(video).read_bytes()[4:8] == b"ftyp"
    assert "start_image=wanpod_" in details and "seed=77" in details


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"prompt": "   "}, r"^prompt: is empty"),
        ({"pipeline": "i2v_14b"}, r"^start image: .*needs a start image"),
        ({"resolution": "4k"}, r"^resolution: '4k' is not offered; allowed: 480p"),
        ({"mode": "quality", "lora_high": 1.5}, None),  # LoRA not used in quality: accepted
        ({"pipeline": "ti2v_5b", "mode": "turbo"}, r"^mode: 'turbo' is not offered"),
        ({"steps": 61}, r"^steps: 61 is not allowed; allowed: 2 to 60"),
        ({"sampler": "warp9"}, r"^sampler: 'warp9' is not allowed; allowed: euler, "),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(client, kwargs, expected):
    if expected is None:
        text = client.predict(*args(**kwargs), api_name="/quote")
        assert text.startswith("**Quote:**"), text
        return
    with pytest.raises(AppError, match=expected):
        client.predict(*args(**kwargs), api_name="/generate")


def test_a_lone_surrogate_in_a_prompt_is_refused_naming_the_field(client):
    """JSON's \\ud800 escape decodes to a lone surrogate, which no UTF-8 encodes: ComfyUI's
    video writer failed on it after the job was paid for, and every answer echoing the prompt
    failed in Gradio's encoder. (gradio_client cannot send one: raw HTTP, as any client can.)"""
    import json

    import requests

    for field, at in (("prompt", 2), ("negative prompt", 3)):
        data = args(mode="quality", prompt="a kite")
        data[at] = "a kite \ud800 at dusk"
        body = json.dumps({"data": data})  # ensure_ascii: the surrogate as \ud800
        call = f"{client.src.rstrip('/')}/gradio_api/call/generate"
        r = requests.post(call, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        r.raise_for_status()
        with requests.get(f"{call}/{r.json()['event_id']}", stream=True, timeout=60) as answer:
            events = [line for line in answer.iter_lines(decode_unicode=True) if line]
        assert events[0] == "event: error", events
        assert (
            f"{field}: 'a kite \\\\ud800 at dusk' is not allowed; allowed: text without lone "
            "surrogates (U+D800..U+DFFF)" in events[1]
        ), events


def test_a_form_without_a_prompt_is_priced_and_refused(client):
    # the price is the settings' (a prompt's words cost nothing): an operator sees what a
    # choice costs before writing the prompt; the refusal follows the quote, and Generate
    # is refused for it as before
    empty = client.predict(*args(prompt="", resolution="720p landscape"), api_name="/quote")
    typed = client.predict(*args(prompt="a tram", resolution="720p landscape"), api_name="/quote")
    assert empty.startswith(typed + "\n\n⚠️ prompt\\: is empty"), empty  # markdown: "\\:"
    smaller = client.predict(*args(prompt="  ", resolution="480p square"), api_name="/quote")
    assert smaller.split("\n\n")[0] != empty.split("\n\n")[0]  # each setting priced anew
    with pytest.raises(AppError, match=r"^prompt: is empty"):
        client.predict(*args(prompt="", resolution="720p landscape"), api_name="/generate")


def test_a_form_without_its_image_is_priced_and_refused(client, png_file):
    # an image's content does not change the price (it is fitted to the resolution): the
    # settings' quote, the refusal under it; with the image the same price, described
    kw = {"pipeline": "i2v_14b", "resolution": "480p landscape"}
    missing = client.predict(*args(**kw), api_name="/quote")
    price, refusal = missing.split("\n\n")
    assert price.startswith("**Quote:**") and "GPU s" in price, missing
    assert refusal.startswith("⚠️ start image\\: Image to video"), missing
    given = client.predict(*args(**kw, start=handle_file(str(png_file))), api_name="/quote")
    assert given.startswith(price + "\n\n**Images:** start image"), given
    with pytest.raises(AppError, match=r"^start image: .*needs a start image"):
        client.predict(*args(**kw), api_name="/generate")
    # without a prompt either: priced, the prompt refused first
    neither = client.predict(*args(**kw, prompt=""), api_name="/quote")
    assert neither == f"{price}\n\n⚠️ {md_text('prompt: is empty; describe the video you want')}"


def test_unreadable_image_is_refused(client, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(
        AppError,
        match=r"^start image: not a readable image; allowed: PNG, JPEG or WebP \(Unidentified",
    ):
        client.predict(*args("i2v_14b", start=handle_file(str(bad))), api_name="/generate")


def test_quote_arithmetic(client):
    prices = cost.load_prices(PRICES_PATH)
    text = client.predict(
        *args(
            "t2v_14b",
            "quality",
            resolution="720p landscape",
            seconds=5,
            steps=20,
            cfg=3.5,
            shift=8.0,
        ),
        api_name="/quote",
    )
    m = re.search(
        r"≈ (\d+) GPU s on (.+?) = \$([\d.]+) .*cold start \+(\d+) s = \+\$([\d.]+)", text
    )
    assert m, text
    secs, gpu, dollars, cold, cold_dollars = m.groups()
    per_s = prices.price(gpu)
    assert float(dollars) == pytest.approx(int(secs) * per_s, abs=5e-5)
    assert float(cold_dollars) == pytest.approx(int(cold) * per_s, abs=5e-5)
    turbo = client.predict(
        *args("t2v_14b", "turbo", resolution="720p landscape", seconds=5), api_name="/quote"
    )
    t_secs = int(re.search(r"≈ (\d+) GPU s", turbo).group(1))
    assert t_secs < int(secs)  # 4 steps at cfg 1 is cheaper than 20 steps at cfg 3.5
    if "published timings" in text:  # before any 720p quality job calibrated it
        req = cost.CostRequest("t2v_14b", "quality", 1280, 720, 81, 20, 3.5)
        assert int(secs) == math.ceil(cost.model_seconds(req, gpu))


def byo_args(path, prompt="a byo cat", seed=99):
    a = args("byo", "as uploaded", prompt=prompt, seed=seed)
    a[6] = handle_file(str(path))
    return a


def test_bring_your_own_workflow_end_to_end(client, tmp_path):
    from tests.helpers import COMFY_FIXTURES

    wf = tmp_path / "my_t2v.json"
    wf.write_bytes((COMFY_FIXTURES / "workflows" / "wan22_t2v_14B_lightx2v.api.json").read_bytes())
    status, video, details, _ = finished(client.predict(*byo_args(wf), api_name="/generate"))
    assert 'data-state="COMPLETED"' in status, status
    assert Path(video).read_bytes()[4:8] == b"ftyp"
    assert "seed=99" in details and "a byo cat" in details


def test_bring_your_own_ui_format_is_refused_with_the_export_hint(client, tmp_path):
    wf = tmp_path / "ui_format.json"
    wf.write_text('{"nodes": [], "links": []}')
    with pytest.raises(AppError, match=r"^workflow file: .*Export \(API\)"):
        client.predict(*byo_args(wf), api_name="/generate")
