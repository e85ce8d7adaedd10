"""Upscale x2 and smooth motion x2 in the quote and the status line (pure): the post-steps are read
from the filled workflow itself, priced from published figures as estimates, calibrated by
finished jobs apart from sampling, and named while they run."""

from __future__ import annotations

import math

import pytest

from app.errors import InputError
from app.settings import PRICES_PATH
from app.studio import cost, postplan
from app.studio.ledger import Ledger
from app.studio.progress import describe, samplers
from app.studio.shown import Shown, check_shown
from workflows.fill import fill

PRICES = cost.load_prices(PRICES_PATH)
H100 = "H100 PRO"
BOTH = {"upscale": True, "interpolate": True}


def request(tid: str = "t2v_14b", mode: str = "turbo", **params: object) -> cost.CostRequest:
    filled = fill(tid, {"prompt": "x", "mode": mode, **params})
    return cost.request_from_workflow(tid, mode, filled.workflow)


# -- what the quote reads from the graph ------------------------------------------------------


def test_the_quote_reads_the_post_steps_from_the_filled_workflow():
    plain = request(width=832, height=480, frames=81)
    assert (plain.upscale, plain.interpolate) == (0, 0)
    assert cost.post_seconds(plain, H100) == {}
    up = request(width=832, height=480, frames=81, upscale=True)  # RealESRGAN_x2plus.pth
    assert (up.upscale, up.upscale_to, up.upscale_frames, up.interpolate) == (2, 2, 81, 0)
    four = request(width=832, height=480, frames=81, upscale=True, upscale_model="4x-Sharp.pth")
    assert (four.upscale, four.upscale_to) == (4, 2)  # a 4x model, scaled to exactly 2x
    both = request(width=832, height=480, frames=81, **BOTH)
    # RIFE runs after the upscale: on 81 frames of the upscaled size
    assert (both.interpolate, both.interpolate_frames) == (2, 81)
    assert both.interpolate_pixels == 1664 * 960
    alone = request(width=832, height=480, frames=81, interpolate=True)
    assert alone.interpolate_pixels == 832 * 480
    # the exact key tells them apart, the (pipeline, mode) key does not
    assert len({r.exact for r in (plain, up, four, both, alone)}) == 5
    assert {r.key for r in (plain, up, four, both, alone)} == {("t2v_14b", "turbo")}


def test_a_workflow_that_interpolates_before_upscaling_is_read_in_its_own_order():
    f = fill("t2v_14b", {"prompt": "x", "width": 832, "height": 480, "frames": 33, **BOTH})
    wf = f.workflow
    rife = next(n for n, k in f.post_nodes.items() if k == "interpolate")
    loader, up, scale = (n for n, k in f.post_nodes.items() if k == "upscale")
    decoded = wf[up]["inputs"]["image"]
    video = next(n for n, v in wf.items() if v["class_type"] == "CreateVideo")
    # rewire: VAEDecode -> RIFE -> upscale -> scale -> CreateVideo (a bring-your-own order)
    wf[rife]["inputs"]["frames"] = decoded
    wf[up]["inputs"]["image"] = [rife, 0]
    wf[video]["inputs"]["images"] = [scale, 0]
    plan = postplan.read(wf)
    assert [s.kind for s in plan.steps] == ["interpolate", "upscale"]
    assert plan.first("upscale").nodes == (loader, up, scale)
    req = cost.request_from_workflow("t2v_14b", "turbo", wf)
    assert (req.interpolate_frames, req.interpolate_pixels) == (33, 832 * 480)
    assert req.upscale_frames == 65  # it upscales RIFE's 2 x 33 - 1 frames


# -- the time model ---------------------------------------------------------------------------


def test_post_step_seconds_grow_with_frames_and_size():
    for kind in ("upscale", "interpolate"):
        short = cost.post_seconds(request(width=832, height=480, frames=33, **BOTH), H100)
        long = cost.post_seconds(request(width=832, height=480, frames=81, **BOTH), H100)
        big = cost.post_seconds(request(width=1280, height=720, frames=81, **BOTH), H100)
        assert 0 < short[kind] < long[kind] < big[kind], kind


def test_a_4x_model_costs_more_than_a_2x_one_and_slower_gpus_scale_like_sampling():
    x2 = request(width=832, height=480, frames=81, upscale=True)
    x4 = request(width=832, height=480, frames=81, upscale=True, upscale_model="4x-Sharp.pth")
    assert cost.post_seconds(x4, H100)["upscale"] > 2 * cost.post_seconds(x2, H100)["upscale"]
    both = request(width=832, height=480, frames=81, **BOTH)
    on_h100, on_a100 = cost.post_seconds(both, H100), cost.post_seconds(both, "A100")
    for kind in on_h100:
        assert on_a100[kind] == pytest.approx(on_h100[kind] * cost.GPU_SPEED["A100"])
    # the estimates are in the quote: sampling + the post-steps
    total = cost.sampling_seconds(both, H100) + sum(on_h100.values())
    assert cost.quote(both, H100, PRICES).execution_s == pytest.approx(total)
    # the published figures give seconds, not minutes, for 480p x 81 on an H100
    assert 2 < on_h100["upscale"] < 15 and 1 < on_h100["interpolate"] < 10


def test_the_summary_names_the_post_steps_as_estimates_and_keeps_the_plain_line():
    plain = cost.quote(request(width=832, height=480, frames=81), H100, PRICES)
    assert plain.post_s == {}
    assert plain.summary() == (
        f"≈ {math.ceil(plain.execution_s)} GPU s on H100 PRO = ${plain.dollars:.4f} "
        "(at $0.00116/s, prices of 2026-05-13; published timings) · "
        f"cold start +{math.ceil(plain.cold_start_s)} s = +${plain.cold_dollars:.4f} "
        "if no worker is warm"
    )
    q = cost.quote(request(width=832, height=480, frames=81, **BOTH), H100, PRICES)
    assert list(q.post_s) == ["upscale ×2", "smooth motion ×2"]
    up, smooth = (math.ceil(s) for s in q.post_s.values())
    incl = f" incl. upscale ×2 ≈ {up} s, smooth motion ×2 ≈ {smooth} s (estimates) = $"
    assert f"GPU s on H100 PRO{incl}" in q.summary()


def test_a_stored_quote_keeps_its_post_step_breakdown(tmp_path):
    q = cost.quote(request(**BOTH), H100, PRICES)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=q, gpu=H100)
    stored = ledger.get(rid).quote
    assert stored.post_s == q.post_s and stored.summary() == q.summary()


def test_a_jobs_details_show_the_quote_lines_seconds(tmp_path):
    """The job's details say the quote in the quote line's seconds (whole, rounded up as
    RunPod bills): '≈ 12 GPU s' on the line was '≈11 GPU s' in the details for one price."""
    import dataclasses

    from app.studio.records import details

    q = cost.quote(request(), H100, PRICES)
    q = dataclasses.replace(q, execution_s=11.3, cold_start_s=40.2)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=q, gpu=H100)
    shown = details(ledger.get(rid))
    assert "≈ 12 GPU s on H100 PRO" in q.summary() and "cold start +41 s" in q.summary()
    assert f"**Quote:** ≈12 GPU s = ${q.dollars:.4f}" in shown and "cold start +41 s" in shown


def test_the_quote_line_check_names_a_changed_post_step():
    plain, up = request(), request(upscale=True)
    shown = Shown(plain, cost.quote(plain, H100, PRICES))
    with pytest.raises(InputError, match="upscale 2 instead of 0"):
        check_shown(shown, up, cost.quote(up, H100, PRICES))


# -- calibration -------------------------------------------------------------------------------


def observe(req: cost.CostRequest, sampling_x: float, post_x: dict[str, float]) -> cost.Observation:
    """A finished job that took `sampling_x` times the sampling estimate plus `post_x[kind]` times
    each post-step's estimate."""
    est = cost.post_seconds(req, H100)
    took = cost.sampling_seconds(req, H100) * sampling_x
    took += sum(est[k] * post_x[k] for k in est)
    return cost.Observation(req, H100, took)


def test_calibration_moves_the_post_step_factor_and_leaves_sampling_alone():
    plain = [request(frames=n) for n in (33, 49, 81)]
    ups = [request(frames=n, upscale=True) for n in (33, 81)]
    smooth = [request(frames=n, interpolate=True) for n in (49, 81)]
    obs = [observe(r, 1.5, {}) for r in plain]
    sampling_only = cost.calibrate(obs)
    obs += [observe(r, 1.5, {"upscale": 3.0}) for r in ups]
    obs += [observe(r, 1.5, {"interpolate": 0.5}) for r in smooth]
    cal = cost.calibrate(obs)
    key = ("t2v_14b", "turbo", H100)
    assert cal.scale[key] == sampling_only.scale[key]  # learnt from the jobs without post-steps
    assert cal.scale[key][0] == pytest.approx(1.5)
    assert cal.post[("upscale", H100)] == (pytest.approx(3.0), 2)
    assert cal.post[("interpolate", H100)] == (pytest.approx(0.5), 2)
    # a new job with both: each part calibrated on its own
    new = request(frames=65, **BOTH)
    q = cost.quote(new, H100, PRICES, cal)
    est = cost.post_seconds(new, H100)
    assert q.post_s == {
        "upscale ×2": pytest.approx(est["upscale"] * 3.0),
        "smooth motion ×2": pytest.approx(est["interpolate"] * 0.5),
    }
    expect = cost.sampling_seconds(new, H100) * 1.5 + est["upscale"] * 3 + est["interpolate"] / 2
    assert q.execution_s == pytest.approx(expect)
    assert q.basis == (
        "calibrated from 3 jobs on this endpoint; post-steps calibrated: upscale from 2 jobs, "
        "smooth motion from 2 jobs"
    )
    # the plain quote is what it was without the post-step jobs
    assert cost.quote(request(frames=65), H100, PRICES, cal) == cost.quote(
        request(frames=65), H100, PRICES, sampling_only
    )


def test_identical_jobs_with_post_steps_quote_their_own_mean():
    req = request(**BOTH)
    cal = cost.calibrate([cost.Observation(req, H100, s) for s in (50.0, 54.0)])
    q = cost.quote(req, H100, PRICES, cal)
    assert q.execution_s == pytest.approx(52.0) and q.basis == "2 identical jobs on this endpoint"
    assert "(estimates)" in q.summary()  # the breakdown is still the estimates'
    # an identical job without the post-steps is another job
    assert cost.quote(request(), H100, PRICES, cal).basis != q.basis


def test_without_plain_jobs_sampling_scales_the_whole_and_a_residual_below_zero_is_skipped():
    ups = [request(frames=n, upscale=True) for n in (33, 81)]
    cal = cost.calibrate([observe(r, 2.0, {"upscale": 2.0}) for r in ups])
    assert cal.scale[("t2v_14b", "turbo", H100)][0] == pytest.approx(2.0)
    assert cal.post[("upscale", H100)][0] == pytest.approx(2.0)
    fast = cost.Observation(ups[0], H100, cost.sampling_seconds(ups[0], H100) * 0.5)
    cal = cost.calibrate([observe(request(), 1.0, {}), fast])  # faster than sampling alone
    assert ("upscale", H100) not in cal.post


# -- the status line ---------------------------------------------------------------------------


def live(node: str | None, stage: str = "decoding", **more: object) -> dict:
    return {"stage": stage, "node": node, "step": None, "steps": None, **more}


def test_the_status_line_names_each_post_step_and_the_bar_never_goes_back():
    f = fill("t2v_14b", {"prompt": "x", "interpolate_model": "rife47.pth", **BOTH})
    plan = samplers(f.workflow)
    assert {n: plan.post.step_of(n).kind for n in f.post_nodes} == f.post_nodes
    loader, up, scale = (n for n, k in f.post_nodes.items() if k == "upscale")
    rife = next(n for n, k in f.post_nodes.items() if k == "interpolate")
    decode = next(n for n, v in f.workflow.items() if v["class_type"] == "VAEDecode")
    run = [
        live(plan.order[-1], "sampling", step=4, steps=4),
        live(decode),
        live(loader),
        live(up),
        live(up, step=3, steps=8),
        live(scale),
        live(rife),
        live(rife, step=40, steps=80),
        live("16", "saving"),
        {"stage": "delivering"},
    ]
    views = [describe("IN_PROGRESS", p, 30.0, 60.0, plan) for p in run]
    fractions = [v.fraction for v in views]
    assert fractions == sorted(fractions) and fractions[-1] < 1
    heads = [v.head for v in views]
    assert heads[1] == "Decoding video (VAE)"
    assert heads[2:6] == ["Upscaling ×2 (RealESRGAN_x2plus.pth)"] * 4
    assert heads[6:8] == ["Smoothing motion ×2 (RIFE, rife47.pth)"] * 2
    assert fractions[3] < fractions[4] < fractions[5]  # the upscale's tiles move the bar
    assert fractions[6] < fractions[7] < fractions[8]
    # the same from the workflow itself, and the line a page keeps when the job stops there
    assert describe("IN_PROGRESS", run[4], 30.0, 60.0, f.workflow) == views[4]
    stopped = describe("FAILED", run[4], 30.0, None, plan, "boom")
    assert stopped.fraction == views[4].fraction


def test_without_post_steps_decoding_reads_as_before():
    f = fill("t2v_14b", {"prompt": "x"})
    plan = samplers(f.workflow)
    assert plan.post.steps == () and plan.post_lines == {}
    decode = next(n for n, v in f.workflow.items() if v["class_type"] == "VAEDecode")
    with_plan = describe("IN_PROGRESS", live(decode), 30.0, 60.0, plan)
    assert with_plan == describe("IN_PROGRESS", {"stage": "decoding"}, 30.0, 60.0)
    assert (with_plan.head, with_plan.fraction) == ("Decoding video (VAE)", 0.90)


def test_an_upscale_without_exact_size_scale_says_the_models_own_factor():
    f = fill("t2v_14b", {"prompt": "x", "upscale": True, "upscale_model": "sub/4x-Sharp.pth"})
    wf = f.workflow
    _loader, up, scale = (n for n, k in f.post_nodes.items() if k == "upscale")
    video = next(n for n, v in wf.items() if v["class_type"] == "CreateVideo")
    wf[video]["inputs"]["images"] = [up, 0]
    del wf[scale]
    plan = samplers(wf)
    assert plan.post_lines == {"upscale": "Upscaling ×4 (sub/4x-Sharp.pth)"}
    assert cost.request_from_workflow("t2v_14b", "turbo", wf).upscale_to == 4
