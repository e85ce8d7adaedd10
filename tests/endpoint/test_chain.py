"""The whole chain: EndpointClient -> local control plane -> real runpod SDK loop ->
worker.handler -> ComfyUI emulator (emulators.stack starts them as real processes)."""

from __future__ import annotations

import base64
import json
import os
import signal

import pytest
import requests

from app.endpoint import EndpointClient
from emulators.stack import LocalStack, StackConfig
from tests.emulators.video_checks import START, Video, distance, grid, middle, seen
from tests.endpoint.conftest import WORKER_PYTHON
from tests.helpers import REPO, wait_for
from workflows.fill import fill

pytestmark = pytest.mark.slow
JOB = json.loads((REPO / "test_input.json").read_text())["input"]
PROGRESS_KEYS = {
    "stage",
    "node",
    "node_type",
    "step",
    "steps",
    "nodes_done",
    "nodes_total",
    "percent",
    "elapsed_s",
    "queue_position",
}


def job(seed: int) -> dict:
    wf = json.loads(json.dumps(JOB["workflow"]))
    for node in wf.values():
        if "noise_seed" in node["inputs"]:
            node["inputs"]["noise_seed"] = seed
    return {**JOB, "workflow": wf}


@pytest.fixture(scope="module")
def stack():
    cfg = StackConfig(
        workers=1,
        step_delay=0.02,
        worker_python=WORKER_PYTHON,
        hold_s=5,
        plane_args=("--lost-after", "3"),
    )
    with LocalStack(cfg) as s:
        yield s


def comfy(stack, **knobs) -> dict:
    r = requests.post(f"{stack.comfy_urls[0]}/emulator/config", json=knobs, timeout=5)
    r.raise_for_status()
    return r.json()


def client(stack) -> EndpointClient:
    return EndpointClient(stack.base_url, stack.api_key, backoff_s=0.05)


def fault(stack, **f) -> None:
    r = requests.post(
        f"{stack.plane_url}/emulator/faults",
        json=f,
        headers={"Authorization": stack.api_key},
        timeout=5,
    )
    r.raise_for_status()


def plane_record(stack, path: str) -> dict:
    """A control-plane test hook: `state` (workers, pids) or `jobs/<id>` (hand-out/final times)."""
    url = f"{stack.plane_url}/emulator/{path}"
    return requests.get(url, timeout=5, headers={"Authorization": stack.api_key}).json()


def interrupted_count(stack) -> int:
    hist = requests.get(f"{stack.comfy_urls[0]}/history", timeout=5).json()
    return sum(
        any(m[0] == "execution_interrupted" for m in h["status"].get("messages", []))
        for h in hist.values()
    )


def test_success_with_progress_in_status_and_retried_reads(stack):
    # 4 steps of 1 s: longer than the client's worst retry backoff for the faults below
    # (jitter up to 0.5 + 1 + 2 s), so some sampler step is always seen after them
    comfy(stack, step_delay=1.0, cache=False)
    c = client(stack)
    ref = c.run(job(1))
    seen = []

    def on(st):
        seen.append(st)
        if len(seen) == 3:  # the client rides through 5xx and 429 while polling
            fault(stack, status=503, count=2, ops=["status"])
            fault(stack, status=429, count=1, ops=["status"])

    st = c.wait(ref.id, on_update=on, poll_s=0.1, timeout_s=60)
    assert st.ok, st.error
    progress = [s.progress for s in seen if s.state == "IN_PROGRESS" and s.progress]
    assert progress and all(set(p) == PROGRESS_KEYS for p in progress)
    sampling = [p for p in progress if p["stage"] == "sampling"]
    assert sampling and all(p["node_type"] == "KSamplerAdvanced" for p in sampling)
    assert any(p["steps"] == 2 and p["step"] in (1, 2) for p in sampling), sampling
    r = requests.get(
        f"{stack.plane_url}/emulator/jobs/{ref.id}",
        headers={"Authorization": stack.api_key},
        timeout=5,
    )
    received = [p for _, p in r.json()["progress_wall"]]  # in the order the plane got them
    percents = [p["percent"] for p in received]
    assert percents == sorted(percents), percents  # never backwards
    assert [p["elapsed_s"] for p in received] == sorted(p["elapsed_s"] for p in received)
    video = st.output["images"][0]
    assert video["kind"] == "video" and video["type"] == "base64"
    assert base64.b64decode(video["data"])[4:8] == b"ftyp"
    assert st.worker_id == "w1" and st.execution_ms > 1500


def test_the_demo_video_shows_the_jobs_inputs(stack):
    """A shared demo link shows the job: its aspect ratio (scaled to 320 px), frames, fps and
    its start image, uploaded by the worker and zoomed by the emulator."""
    comfy(stack, step_delay=0.0)
    f = fill("i2v_14b", {"prompt": "a paper boat", "width": 832, "height": 480, "frames": 17})
    start = grid(START)
    images = [{"name": name, "image": base64.b64encode(start).decode()} for name in f.images]
    st = client(stack).runsync({"workflow": f.workflow, "images": images}, wait_ms=60_000)
    assert st.ok, st.error
    video = Video(base64.b64decode(st.output["images"][0]["data"]))
    assert (video.size, len(video.frames), video.fps) == ((320, 184), 17, 16)
    assert distance(middle(video.frames[0]), middle(seen(start, video.size))) < 8


def test_second_job_queues_while_the_worker_is_busy(stack):
    comfy(stack, step_delay=0.3, cache=False)
    c = client(stack)
    a, b = c.run(job(2)), c.run(job(3))
    wait_for(lambda: c.status(a.id).state == "IN_PROGRESS", 30, "a running")
    assert c.status(b.id).state == "IN_QUEUE"
    sa = c.wait(a.id, poll_s=0.1, timeout_s=60)
    sb = c.wait(b.id, poll_s=0.1, timeout_s=60)
    assert sa.ok and sb.ok
    # b was handed out only once a had finished (the plane's record, not a duration)
    b_taken = plane_record(stack, f"jobs/{b.id}")["taken_wall"]
    assert b_taken >= plane_record(stack, f"jobs/{a.id}")["finished_wall"]


def test_cancel_mid_job_interrupts_comfyui(stack):
    comfy(stack, step_delay=2.0, cache=False)
    before = interrupted_count(stack)
    c = client(stack)
    ref = c.run(job(4))

    def sampling() -> bool:
        st = c.status(ref.id)
        return bool(st.progress and st.progress.get("stage") == "sampling")

    wait_for(sampling, 30, "the sampler's progress")
    assert c.cancel(ref.id).state == "CANCELLED"
    wait_for(lambda: interrupted_count(stack) > before, 20, "ComfyUI's execution_interrupted")
    assert interrupted_count(stack) == before + 1
    assert c.status(ref.id).state == "CANCELLED"
    comfy(stack, step_delay=0.02)
    stack.wait_idle(1, 15)


def test_handler_error_is_failed_with_our_text(stack):
    comfy(stack, step_delay=0.02, cache=False, error_at_node="81")
    try:
        st = client(stack).wait(client(stack).run(job(5)).id, poll_s=0.1, timeout_s=60)
    finally:
        comfy(stack, error_at_node=None)
    assert st.state == "FAILED"
    assert isinstance(st.error, str) and "81" in st.error and "KSamplerAdvanced" in st.error
    assert "Traceback" not in st.error


def test_killed_worker_mid_job_does_not_hang(stack):
    comfy(stack, step_delay=2.0, cache=False)
    c = client(stack)
    ref = c.run(job(6))
    wait_for(lambda: c.status(ref.id).state == "IN_PROGRESS", 30, "the job running")
    os.kill(plane_record(stack, "state")["workers"]["w1"]["pid"], signal.SIGKILL)
    st = c.wait(ref.id, poll_s=0.1, timeout_s=20)
    assert st.state == "FAILED" and "worker w1 exited" in st.error
    comfy(stack, step_delay=0.02)
    nxt = c.wait(c.run(job(7)).id, poll_s=0.1, timeout_s=60)
    assert nxt.ok and nxt.worker_id == "w2"


def test_cold_start_from_zero_shows_queue_then_progress(tmp_path):
    cfg = StackConfig(
        workers=1,
        start_workers=0,
        boot_delay=1.0,
        idle_timeout=30,
        step_delay=0.3,
        worker_python=WORKER_PYTHON,
        wait_workers=False,
    )
    with LocalStack(cfg) as s:
        assert s.health()["workers"]["idle"] == 0
        c = client(s)
        states = []
        st = c.wait(
            c.run(job(8)).id, on_update=lambda x: states.append(x.state), poll_s=0.1, timeout_s=60
        )
        assert st.ok, st.error
        assert states[0] == "IN_QUEUE" and "IN_PROGRESS" in states
        assert states.index("IN_PROGRESS") > 0
        assert st.delay_ms >= 1000
