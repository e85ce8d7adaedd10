"""A job with both post-steps through the local stack (ComfyUI emulator with the RIFE node's
recorded schema, local RunPod control plane, a real worker) and the studio's services: its quote
lists the post-steps, the status lines the studio shows while it runs name the upscale and then
the interpolation, the bar never goes back, and the video has 2N - 1 frames.

The emulator runs both nodes in no time; its `hold_at_node` knob keeps the job at each one until
the studio's line has shown it, so the test waits for events, not for luck."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.endpoint import EndpointClient
from app.endpoint.states import JobState
from app.settings import PRICES_PATH, Settings
from app.studio import cost, stitch
from app.studio.forms import FormValues
from app.studio.forms_catalog import load_forms
from app.studio.jobs import Studio
from app.studio.ledger import Ledger
from app.studio.owners import ANYONE
from app.studio.tracker import Tracker
from emulators.stack import LocalStack, StackConfig
from tests.helpers import REPO, wait_for
from workflows.fill import fill

RIFE_SCHEMA = REPO / "workflows" / "data" / "comfyui_frame_interpolation.object_info.json"
UPSCALER = "tiny_compact_x2_random.safetensors"  # the upscale model of the recorded schema
POST = {"upscale": True, "upscale_model": UPSCALER, "interpolate": True}
VALUES = FormValues(
    pipeline="t2v_14b", prompt="a heron", resolution="480p landscape", seconds=1.0, seed=7,
    randomize=False, upscale=True, upscale_model=UPSCALER, interpolate=True,
)  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    config = StackConfig(
        workers=1,
        step_delay=0.01,
        work_dir=tmp_path_factory.mktemp("post-stack"),
        comfy_args=("--extra-schema", str(RIFE_SCHEMA)),  # ComfyUI-Frame-Interpolation installed
    )
    with LocalStack(config) as s:
        yield s


def studio(stack: LocalStack, folder: Path) -> Studio:
    """The studio's services as `python -m app` assembles them (pre-flight off)."""
    settings = Settings.from_env({"WANPOD_DATA_DIR": str(folder), "WANPOD_PREFLIGHT": "off"})
    prices = cost.load_prices(PRICES_PATH)
    ledger = Ledger(folder / "ledger.sqlite3")
    endpoint = EndpointClient(stack.base_url, stack.api_key)
    tracker = Tracker(ledger, endpoint, folder, prices, poll_s=0.05)
    forms, byo_fill = load_forms()
    s = Studio(
        settings=settings, forms=forms, fill=fill, byo_fill=byo_fill,
        endpoint=endpoint, ledger=ledger, tracker=tracker, prices=prices,
    )  # fmt: skip
    tracker.start()
    return s


def hold(stack: LocalStack, node: str | None) -> None:
    for url in stack.comfy_urls:
        requests.post(f"{url}/emulator/config", json={"hold_at_node": node}, timeout=5)


def test_the_status_line_shows_the_upscale_then_the_interpolation(stack, tmp_path):
    planned = fill("t2v_14b", {"prompt": "x", "seconds": 1.0, **POST})  # same graph, same ids
    kinds = {planned.workflow[n]["class_type"]: n for n in planned.post_nodes}
    up = kinds["ImageUpscaleWithModel"]
    rife = kinds["RIFE VFI"]
    s = studio(stack, tmp_path)
    seen: list[tuple[str, float]] = []

    def shows(text: str, rid: str) -> bool:
        view = s.view(rid, ANYONE)
        seen.append((view.progress.head, view.progress.fraction))
        return text in view.progress.head or view.final

    try:
        hold(stack, up)
        rid = s.submit(VALUES)
        quoted = s.ledger.get(rid).quote
        assert list(quoted.post_s) == ["upscale ×2", "smooth motion ×2"]
        assert "(estimates)" in quoted.summary()
        wait_for(lambda: shows("Upscaling", rid), 60, "the upscale on the status line")
        hold(stack, rife)
        wait_for(lambda: shows("Smoothing motion", rid), 30, "the interpolation on the line")
        hold(stack, None)
        wait_for(lambda: shows("Done", rid), 30, "the job done")
    finally:
        hold(stack, None)
        s.tracker.stop()
    heads = [h for h, _ in seen]
    assert f"Upscaling ×2 ({UPSCALER})" in heads, heads
    assert "Smoothing motion ×2 (RIFE, rife49.pth)" in heads, heads
    assert heads.index(f"Upscaling ×2 ({UPSCALER})") < heads.index(
        "Smoothing motion ×2 (RIFE, rife49.pth)"
    )
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions), seen
    row = s.ledger.get(rid)
    assert row.state is JobState.COMPLETED
    video = Path(row.result_path)
    assert stitch.frame_count(video) == planned.output.frames == 2 * 17 - 1
    # the finished row calibrates quotes of the same job, post-steps read from its workflow
    s.forget_calibration()
    again = s.prepare(VALUES)
    assert again.request == cost.request_from_workflow("t2v_14b", "turbo", row.workflow)
    assert again.quote.basis == "1 identical job on this endpoint"
    off = ("upscale", "upscale_to", "upscale_frames", "interpolate", "interpolate_frames")
    plain = dataclasses.replace(again.request, interpolate_pixels=0, **dict.fromkeys(off, 0))
    basis = cost.quote(plain, row.gpu, s.prices, s.calibration()).basis
    assert basis == "calibrated from 1 job on this endpoint"  # the same job without post-steps
