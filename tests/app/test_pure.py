"""Pure parts of the studio: settings, quote arithmetic, progress lines, images, ledger."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from app.errors import ConfigError, ImageError, user_message
from app.settings import PRICES_PATH, Settings
from app.studio import cost
from app.studio.images import prepare_image
from app.studio.ledger import Ledger
from app.studio.progress import clock, describe, experts, samplers
from tests.helpers import COMFY_FIXTURES, load_json, png_bytes

PRICES = cost.load_prices(PRICES_PATH)


def test_settings_demo_and_runpod_and_masking():
    assert Settings.from_env({}).demo
    s = Settings.from_env({"RUNPOD_API_KEY": "rpa_SECRET123", "RUNPOD_ENDPOINT_ID": "abc123"})
    assert not s.demo and s.base_url == "https://api.runpod.ai/v2/abc123"
    assert "rpa_SECRET123" not in repr(s) and "rpa_SECRET123" not in str(s)
    with pytest.raises(ConfigError, match="RUNPOD_ENDPOINT_ID"):
        Settings.from_env({"RUNPOD_API_KEY": "k"})
    with pytest.raises(ConfigError, match=r"WANPOD_CONCURRENCY=0 is out of range"):
        Settings.from_env({"WANPOD_CONCURRENCY": "0"})


def test_prices_yaml_has_the_date_and_runpod_rates():
    assert PRICES.read_on == "2026-05-13"
    assert PRICES.price("H100 PRO") == 0.00116
    assert PRICES.price("4090 PRO") == 0.00031
    with pytest.raises(ConfigError, match=r"WANPOD_GPU_TYPE='TPU'.*allowed: .*H100 PRO"):
        PRICES.price("TPU")


def test_quote_arithmetic_is_seconds_rounded_up_times_price():
    req = cost.CostRequest("t2v_14b", "turbo", 832, 480, 81, 4, 1.0)
    q = cost.quote(req, "A100", PRICES)
    assert q.dollars == pytest.approx(math.ceil(q.execution_s) * 0.00076)
    assert q.cold_dollars == pytest.approx(math.ceil(q.cold_start_s) * 0.00076)
    assert q.basis == "published timings"
    # quality (cfg>1, 20 steps) costs more than turbo; 720p more than 480p; A100 slower than H100
    quality = cost.CostRequest("t2v_14b", "quality", 832, 480, 81, 20, 3.5)
    big = cost.CostRequest("t2v_14b", "quality", 1280, 720, 81, 20, 3.5)
    assert cost.model_seconds(quality, "H100 PRO") > cost.model_seconds(req, "H100 PRO")
    ratio = cost.model_seconds(big, "H100 PRO") / cost.model_seconds(quality, "H100 PRO")
    assert 2.5 < ratio < 4.0  # the official table: 480p -> 720p is 3.2x on H100
    assert cost.model_seconds(req, "A100") > cost.model_seconds(req, "H100 PRO")


def test_published_reference_is_reproduced_within_a_quarter():
    # H100, A14B T2V, 480p x 81, 40 steps, cfg > 1: 326.9 s in the official table
    req = cost.CostRequest("t2v_14b", "quality", 832, 480, 81, 40, 5.0)
    assert cost.model_seconds(req, "H100 PRO") == pytest.approx(326.9, rel=0.25)


def test_calibration_learns_from_finished_jobs():
    req = cost.CostRequest("t2v_14b", "turbo", 832, 480, 81, 4, 1.0)
    other = cost.CostRequest("t2v_14b", "turbo", 640, 640, 81, 4, 1.0)
    obs = [cost.Observation(req, "H100 PRO", 10.0), cost.Observation(req, "H100 PRO", 12.0)]
    cal = cost.calibrate(obs)
    exact = cost.quote(req, "H100 PRO", PRICES, cal)
    assert exact.execution_s == pytest.approx(11.0) and "2 identical jobs" in exact.basis
    scaled = cost.quote(other, "H100 PRO", PRICES, cal)
    factor = math.sqrt(10.0 * 12.0) / cost.model_seconds(req, "H100 PRO")
    assert scaled.execution_s == pytest.approx(cost.model_seconds(other, "H100 PRO") * factor)
    assert "calibrated from 2 jobs" in scaled.basis


def test_a_workflow_is_quoted_at_its_largest_steps_and_cfg_wherever_they_stand():
    """Wan 2.2's two experts each carry steps and cfg; the quote takes the largest of each, so
    a cfg-1 sampler after a cfg-3.5 one (or one that feeds nothing) does not halve it."""
    import copy

    from workflows.fill import fill

    wf = fill("t2v_14b", {"prompt": "x", "mode": "quality"}).workflow
    samplers = [n for n, node in wf.items() if "Sampler" in node["class_type"]]
    assert len(samplers) == 2
    whole = cost.request_from_workflow("t2v_14b", "quality", wf)
    assert whole.cfg > 1
    for last in (samplers[-1], "999"):  # the low-noise expert at cfg 1; a sampler added last
        mixed = copy.deepcopy(wf)
        mixed.setdefault(last, {"class_type": "KSampler", "inputs": {"steps": 1}})
        mixed[last]["inputs"]["cfg"] = 1.0
        req = cost.request_from_workflow("t2v_14b", "quality", mixed)
        assert (req.cfg, req.steps) == (whole.cfg, whole.steps), last


def test_a_second_sampling_pass_is_quoted_on_top_of_the_first():
    """Steps add up over the samplers that run: Wan 2.2's two experts split one count (2 + 2 of
    4), a second full pass after them (a refine at denoise 0.5) adds its own 6, and a sampler
    that feeds nothing (it would not run) adds none."""
    import copy

    from workflows.fill import fill

    wf = fill("t2v_14b", {"prompt": "x"}).workflow
    assert cost.request_from_workflow("t2v_14b", "turbo", wf).steps == 4
    decode = next(n for n, node in wf.items() if node["class_type"] == "VAEDecode")
    low = next(n for n, node in wf.items() if node["class_type"] == "KSamplerAdvanced"
               and node["inputs"]["start_at_step"] > 0)  # fmt: skip
    refined = copy.deepcopy(wf)
    refined["900"] = {"class_type": "KSampler", "inputs": {
        **{k: wf[low]["inputs"][k] for k in ("model", "positive", "negative", "sampler_name")},
        "latent_image": wf[decode]["inputs"]["samples"], "seed": 1, "steps": 6, "cfg": 1.0,
        "scheduler": "simple", "denoise": 0.5}}  # fmt: skip
    refined[decode]["inputs"]["samples"] = ["900", 0]
    assert cost.request_from_workflow("t2v_14b", "turbo", refined).steps == 10
    refined[decode]["inputs"]["samples"] = wf[decode]["inputs"]["samples"]  # 900 feeds nothing
    assert cost.request_from_workflow("t2v_14b", "turbo", refined).steps == 4


def test_actual_cost_is_billed_per_second_rounded_up():
    a = cost.actual(4001, 1500, "H100 PRO", PRICES)
    assert a.billed_s == 5 and a.dollars == pytest.approx(5 * 0.00116) and a.delay_s == 1.5


def test_progress_lines_name_the_expert_and_step():
    wf = load_json(COMFY_FIXTURES / "workflows" / "wan22_t2v_14B_lightx2v.api.json")
    assert experts(wf) == {"81": "high-noise", "78": "low-noise"}
    p = {
        "stage": "sampling",
        "node": "78",
        "node_type": "KSamplerAdvanced",
        "step": 1,
        "steps": 2,
        "nodes_done": 9,
        "nodes_total": 14,
        "percent": 60.0,
        "elapsed_s": 3.0,
        "queue_position": None,
    }
    v = describe("IN_PROGRESS", p, 20.0, 40.0, wf)
    assert v.line.startswith("Sampling: step 1 of 2 on the low-noise expert")
    assert 0.5 < v.fraction < 0.9 and "left" in v.line
    first = describe("IN_PROGRESS", {**p, "node": "81"}, 10.0, 40.0, wf)
    assert "high-noise" in first.line and first.fraction < v.fraction
    plan = samplers(wf)  # what a page or the tracker keeps per job: the graph read once
    assert len(plan.order) == 2 and plan.experts[plan.order[0]] == "high-noise"
    assert describe("IN_PROGRESS", p, 20.0, 40.0, plan) == v
    assert describe("IN_QUEUE", None, 3.0, 40.0).line.startswith("Queued")
    assert describe("IN_PROGRESS", {"stage": "decoding"}, 30.0, 40.0).line.startswith("Decoding")
    assert describe("COMPLETED", None, 31.0).fraction == 1.0
    assert "boom" in describe("FAILED", None, 3.0, error="boom").line


def test_a_live_line_is_a_head_the_server_knows_plus_a_clock_the_page_can_count():
    # the page's clock (app/ui/page.py CLOCK_JS) redraws `clock(elapsed, left)` from these fields
    paced = describe("IN_PROGRESS", {"stage": "decoding"}, 30.0, 40.0)
    assert paced.line == paced.head + clock(30.0, paced.left_s)
    assert paced.head == "Decoding video (VAE)" and paced.left_from == "pace"
    assert paced.left_s == pytest.approx(30.0 / paced.fraction - 30.0)
    quoted = describe("IN_PROGRESS", {"stage": "loading"}, 3.0, 40.0)  # fraction < 0.15
    assert quoted.left_from == "quote" and quoted.left_s == 37.0
    assert quoted.line == "Loading models · 3 s elapsed · about 37 s left"
    queued = describe("IN_QUEUE", None, 75.0, 40.0)
    assert queued.left_s is None and queued.left_from == "" and queued.elapsed_s == 75.0
    assert queued.line.endswith(" · 1 min 15 s elapsed")
    done = describe("COMPLETED", None, 31.0)
    assert done.elapsed_s is None and done.line == "Done in 31 s"


def test_images_are_fitted_and_bad_files_named():
    img = prepare_image(png_bytes(1000, 500), 640, 640, field="start image", name="start.png")
    with Image.open(io.BytesIO(img.data)) as out:
        assert out.size == (640, 640)
    assert img.note == (
        "PNG 1000x500 centre-cropped to 500x500 (aspect 2.00:1 → square), upscaled ×1.28 to 640x640"
    )
    with pytest.raises(ImageError, match=r"^start image: not a readable image"):
        prepare_image(b"not an image at all", 640, 640, field="start image", name="s.png")
    with pytest.raises(ImageError, match=r"^end image: the file is empty"):
        prepare_image(b"", 640, 640, field="end image", name="e.png")


def test_images_are_reencoded_under_the_budget():
    noise = Image.effect_noise((1280, 720), 100).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    img = prepare_image(
        buf.getvalue(), 1280, 720, field="start image", name="s.png", max_bytes=400_000
    )
    assert len(img.data) <= 400_000 and img.mime == "image/jpeg" and img.name == "s.jpg"


def test_ledger_survives_reopen(tmp_path):
    led = Ledger(tmp_path / "l.db")
    rid = led.create(
        template="t2v_14b",
        mode="turbo",
        params={"seed": 1},
        workflow={"1": {}},
        quote=cost.Quote(gpu="H100 PRO", per_s=0.001, execution_s=100, dollars=0.1),
        gpu="H100 PRO",
    )
    led.update(rid, job_id="job-1", state="IN_QUEUE")
    again = Ledger(tmp_path / "l.db")
    row = again.get(rid)
    assert row.job_id == "job-1" and row.params == {"seed": 1} and row.live
    light = again.get(rid, workflow=False)  # what a page reads at every update
    assert light.workflow == {} and again.workflow(rid) == {"1": {}} and light.params == row.params
    assert [r.id for r in again.live()] == [rid]
    again.update(rid, state="COMPLETED", execution_ms=1234)
    assert again.live() == [] and again.finished_with_timing()[0].execution_ms == 1234


def test_user_message_scrubs_secrets_and_hides_internals():
    assert user_message(ConfigError("key rpa_X leaked"), ("rpa_X",)) == "key *** leaked"
    assert user_message(RuntimeError("rpa_X")) == "internal error (RuntimeError)"
