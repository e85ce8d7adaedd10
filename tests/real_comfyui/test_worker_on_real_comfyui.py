"""The worker's handler against a real ComfyUI 0.3.64 (CPU, 0-byte Wan model files): what issue 11
tried by hand, as tests. A case that does not hold yet is `known_gap(...)` (xfail, strict) naming
the issue item: once the fix lands it XPASSes, which fails the run until the marker goes."""

from __future__ import annotations

import asyncio
import base64
import io
import time

import av
import pytest

from tests.real_comfyui.helpers import (
    WsGate,
    await_for,
    files_under,
    idle,
    video_workflow,
    wait_for,
)
from tests.real_comfyui.server import RealComfyUI
from tests.worker.conftest import get_json, load_workflow, png_b64, run
from worker.handler import make_handler

TEMPLATES = [
    "wan22_t2v_14B_lightx2v",
    "wan22_i2v_14B_lightx2v",
    "wan22_flf2v_14B_lightx2v",
    "wan22_ti2v_5B",
]


def known_gap(what: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=what)


def decode(data: bytes) -> tuple[int, int, int]:
    with av.open(io.BytesIO(data)) as c:
        frames = list(c.decode(video=0))
        return len(frames), frames[0].width, frames[0].height


def template_job(name: str) -> dict:
    """The template with each LoadImage's file supplied in the job's `images`."""
    wf = load_workflow(name)
    names = {n["inputs"]["image"] for n in wf.values() if n["class_type"] == "LoadImage"}
    images = [
        {"name": n, "image": png_b64((64, 64), "JPEG" if n.endswith(".jpg") else "PNG")}
        for n in sorted(names)
    ]
    return {"workflow": wf, **({"images": images} if images else {})}


def queue(real: RealComfyUI) -> dict:
    return get_json(real.url + "/queue")


def history(real: RealComfyUI, prompt_id: str) -> dict:
    return get_json(f"{real.url}/history/{prompt_id}")


# -- model-free video ---------------------------------------------------------------------------


def model_free_job(real: RealComfyUI, seed: int) -> dict:
    job = {"id": f"mf-{seed}", "input": {"workflow": video_workflow(frames=24, seed=seed)}}
    return run(make_handler(real.settings()), job)


def test_model_free_video_comes_back_as_a_decodable_mp4(real: RealComfyUI):
    out = model_free_job(real, 101)
    assert "error" not in out, out
    [item] = out["images"]
    assert (item["kind"], item["mime"], item["node_id"]) == ("video", "video/mp4", "4")
    assert decode(base64.b64decode(item["data"])) == (24, 256, 256)
    assert out["comfyui"]["version"] == "0.3.64"
    assert not files_under(real.output)  # cleaned up


def test_model_free_video_leaves_no_history_entry(real: RealComfyUI):
    out = model_free_job(real, 102)
    assert "error" not in out, out
    wait_for(lambda: idle(real), "ComfyUI to finish the prompt")
    assert history(real, out["comfyui"]["prompt_id"]) == {}


# -- the four Wan templates at model load -------------------------------------------------------


@pytest.mark.parametrize("name", TEMPLATES)
def test_wan_template_is_accepted_and_fails_at_model_load(real: RealComfyUI, name: str):
    out = run(make_handler(real.settings()), {"id": f"tpl-{name}", "input": template_job(name)})
    # accepted by /prompt (a refusal reads "workflow rejected by ComfyUI"), failed when it ran
    assert out["error"].startswith("workflow execution failed: node "), out
    assert "Loader)" in out["error"], out
    assert not list(real.input.iterdir())  # the uploaded start/end frames were removed


@pytest.mark.parametrize("name", TEMPLATES)
def test_wan_template_load_failure_names_the_unreadable_file(real: RealComfyUI, name: str):
    out = run(make_handler(real.settings()), {"id": f"tpl-{name}", "input": template_job(name)})
    error = out["error"]
    assert "SafetensorError" not in error and "header too small" not in error, error
    assert "vae" in error and ".safetensors" in error, error
    assert any(w in error for w in ("unreadable", "corrupt", "incomplete")), error


# -- cancel at three moments --------------------------------------------------------------------


def test_cancel_while_queued_removes_the_prompt(real: RealComfyUI):
    h = make_handler(real.settings())

    async def scenario():
        first = asyncio.create_task(h({"id": "q-a", "input": {
            "workflow": video_workflow(frames=48, blur=21, seed=201)}}))  # fmt: skip
        await await_for(lambda: queue(real)["queue_running"], "the first job to run")
        second = asyncio.create_task(h({"id": "q-b", "input": {
            "workflow": video_workflow(frames=24, seed=202)}}))  # fmt: skip
        pending = await await_for(lambda: queue(real)["queue_pending"], "the second to queue")
        pending_id = pending[0][1]
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        after = await asyncio.to_thread(queue, real)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return pending_id, after

    pending_id, after = asyncio.run(scenario())
    assert pending_id not in [p[1] for p in after["queue_pending"] + after["queue_running"]]
    wait_for(lambda: idle(real), "ComfyUI to go idle")
    assert history(real, pending_id) == {}  # it never ran


def cancel_when(real: RealComfyUI, workflow: dict, moment) -> tuple[str, float]:
    """Start a job, cancel it once `moment()` holds; the prompt id and how long cancel took."""
    h = make_handler(real.settings())

    async def scenario():
        task = asyncio.create_task(h({"id": "cx", "input": {"workflow": workflow}}))
        running = await await_for(lambda: queue(real)["queue_running"], "the job to run")
        await await_for(moment, "the moment to cancel")
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return running[0][1], time.monotonic() - t0

    return asyncio.run(scenario())


def after_next_job(real: RealComfyUI) -> None:
    """Let ComfyUI finish what it cannot interrupt, then run one more job (a worker may sweep what
    a cancelled job left on its next job)."""
    wait_for(lambda: idle(real), "ComfyUI to finish the cancelled prompt", 300)
    job = {"id": "next", "input": {"workflow": video_workflow(frames=8, seed=299)}}
    out = run(make_handler(real.settings()), job)
    assert "error" not in out, out


def test_cancel_while_running_interrupts_before_the_save(real: RealComfyUI):
    wf = video_workflow(frames=48, blur=21, seed=301)
    _, took = cancel_when(real, wf, lambda: not files_under(real.output))
    assert took < 10, took
    wait_for(lambda: idle(real), "the interrupt to end the prompt", 300)
    assert not files_under(real.output)  # interrupted before SaveVideo


def test_cancel_while_running_leaves_no_history_entry(real: RealComfyUI):
    wf = video_workflow(frames=48, blur=21, seed=302)
    prompt_id, _ = cancel_when(real, wf, lambda: not files_under(real.output))
    after_next_job(real)
    assert history(real, prompt_id) == {}


def test_cancel_during_the_encode_leaves_nothing_behind(real: RealComfyUI):
    wf = video_workflow(width=512, height=512, frames=96, seed=401)
    prompt_id, took = cancel_when(real, wf, lambda: files_under(real.output))
    assert took < 10, took  # the worker does not wait for the encode to finish
    after_next_job(real)
    assert not files_under(real.output), files_under(real.output)
    assert history(real, prompt_id) == {}


# -- websocket refused while HTTP works ---------------------------------------------------------


@pytest.fixture
def gate(real: RealComfyUI):
    g = WsGate(real.port)
    yield g
    g.close()


def test_websocket_refused_from_the_start_fails_clearly_and_queues_nothing(real, gate):
    gate.refuse()
    h = make_handler(real.settings(COMFY_HOST=gate.address, WEBSOCKET_RECONNECT_DELAY_S="0.2"))
    before = get_json(real.url + "/history")
    out = run(h, {"id": "ws-0", "input": {"workflow": video_workflow(frames=8, seed=501)}})
    assert gate.refused >= 1 and idle(real) and get_json(real.url + "/history") == before
    assert out["error"].startswith("ComfyUI unavailable: could not open the websocket"), out
    assert "HTTP 403" in out["error"], out


def test_websocket_cut_and_refused_mid_job_still_returns_the_video(real, gate):
    h = make_handler(real.settings(COMFY_HOST=gate.address, WEBSOCKET_RECONNECT_ATTEMPTS="3",
                                   WEBSOCKET_RECONNECT_DELAY_S="1"))  # fmt: skip
    wf = video_workflow(frames=48, blur=15, seed=502)

    async def scenario():
        task = asyncio.create_task(h({"id": "ws-1", "input": {"workflow": wf}}))
        await await_for(lambda: queue(real)["queue_running"], "the job to run")
        gate.refuse()
        return await task

    out = asyncio.run(scenario())
    assert "error" not in out, out
    assert decode(base64.b64decode(out["images"][0]["data"]))[0] == 48
    assert not files_under(real.output)


# -- bad inputs ---------------------------------------------------------------------------------


def details_of(out: dict) -> str:
    return "\n".join(out.get("details") or [])


def handle(real: RealComfyUI, job_input: object) -> dict:
    return run(make_handler(real.settings()), {"id": "bad", "input": job_input})


def test_bad_node_input_names_node_input_and_options(real: RealComfyUI):
    wf = load_workflow("wan22_t2v_14B_lightx2v")
    wf["74"]["inputs"]["width"] = 0
    out = handle(real, {"workflow": wf})
    assert out["error"].startswith("workflow rejected by ComfyUI"), out
    assert "node 74 (EmptyHunyuanLatentVideo) input 'width'" in details_of(out), out


def test_bad_option_is_not_called_a_missing_file(real: RealComfyUI):
    wf = load_workflow("wan22_t2v_14B_lightx2v")
    wf["81"]["inputs"]["sampler_name"] = "bogus"
    out = handle(real, {"workflow": wf})
    [line] = [d for d in out["details"] if "node 81" in d]
    # real ComfyUI leaves option lists over 20 long (the samplers) out of its refusal: the
    # worker reads them from /object_info/KSamplerAdvanced
    assert "'bogus' is not one of the options: euler, " in line, line
    assert "file" not in line, line


@pytest.mark.parametrize(
    ("link", "said", "not_said"),
    [
        pytest.param(["99", 0], "99", "Exception when validating", id="missing-node"),
        pytest.param(["2", 5], "slot", "tuple index out of range", id="bad-slot"),
    ],
)  # fmt: skip
def test_a_bad_link_says_what_is_wrong(real: RealComfyUI, link: list, said: str, not_said: str):
    wf = video_workflow()
    wf["3"]["inputs"]["images"] = link
    out = handle(real, {"workflow": wf})
    text = out["error"] + details_of(out)
    assert said in text and not_said not in text, out


def test_unknown_node_class_is_one_clean_line_with_details(real: RealComfyUI):
    wf = video_workflow()
    wf["5"] = {"class_type": "NoSuchNode", "inputs": {}}
    out = handle(real, {"workflow": wf})
    assert "NoSuchNode" in out["error"] and ".:" not in out["error"], out
    assert out.get("details"), out


def test_empty_input_is_called_empty_not_missing(real: RealComfyUI):
    out = handle(real, {})
    assert "missing" not in out["error"] and "empty" in out["error"], out


def test_execution_error_details_are_single_lines_without_server_paths(real: RealComfyUI):
    out = handle(real, template_job("wan22_t2v_14B_lightx2v"))
    assert out["error"].startswith("workflow execution failed"), out
    for line in [out["error"], *out["details"]]:
        assert "\n" not in line and "^^^" not in line, line
        assert str(real.server.cwd) not in line and 'File "' not in line, line


def test_odd_width_for_h264_fails_with_the_encoder_named(real: RealComfyUI):
    out = handle(real, {"workflow": video_workflow(width=255, height=128, frames=8)})
    assert out["error"].startswith("workflow execution failed: node 4 (SaveVideo)"), out
    assert "h264 needs an even width and height" in out["error"], out
    assert not files_under(real.output)
