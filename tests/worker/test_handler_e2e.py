"""The real handler against the real ComfyUI emulator (a subprocess): success paths and every
failure the worker must turn into one clear error."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time

import av
import pytest

from tests.helpers import free_port, wait_for
from tests.worker.conftest import (
    Comfy,
    get_json,
    load_workflow,
    needs_wan_run,
    png_b64,
    post_json,
    run,
    with_seed,
)
from worker.errors import ScrubbingFormatter
from worker.handler import make_handler

T2V = load_workflow("wan22_t2v_14B_lightx2v")
I2V = load_workflow("wan22_i2v_14B_lightx2v")


def decode_mp4(data: bytes) -> tuple[int, int, int]:
    with av.open(io.BytesIO(data)) as c:
        frames = list(c.decode(video=0))
        return len(frames), frames[0].width, frames[0].height


@needs_wan_run
def test_t2v_job_returns_a_decodable_mp4_and_cleans_up(emu: Comfy):
    h = make_handler(emu.settings())
    out = run(h, {"id": "t2v-1", "input": {"workflow": with_seed(T2V, 11)}})
    assert "error" not in out, out
    [item] = out["images"]
    assert item["type"] == "base64" and item["kind"] == "video" and item["mime"] == "video/mp4"
    assert item["node_id"] == "80" and item["subfolder"] == "video"
    assert item["filename"].endswith(".mp4")
    data = base64.b64decode(item["data"])
    assert len(data) == item["size"]
    frames, w, h_ = decode_mp4(data)
    assert frames == 81 and w > 0 and h_ > 0
    assert out["comfyui"]["version"] and out["comfyui"]["prompt_id"]
    t = out["timings"]
    assert t["execution_ms"] >= 0 and t["end_detect_ms"] < 1000
    # outputs and the history entry were removed after delivery
    assert not list(emu.output.rglob("*.mp4"))
    assert get_json(f"{emu.url}/history/{out['comfyui']['prompt_id']}") == {}


@needs_wan_run
def test_i2v_job_uploads_the_image_with_its_real_content_type(emu: Comfy):
    wf = with_seed(I2V, 12)
    wf["97"]["inputs"]["image"] = "start frame.jpg"
    h = make_handler(emu.settings())
    job = {"workflow": wf, "images": [{"name": "start frame.jpg", "image": png_b64(fmt="JPEG")}]}
    out = run(h, {"id": "i2v-1", "input": job})
    assert "error" not in out, out
    assert out["images"][0]["kind"] == "video"
    assert decode_mp4(base64.b64decode(out["images"][0]["data"]))[0] == 81
    assert not (emu.input / "start frame.jpg").exists()  # job input deleted after the job


def test_image_referenced_but_not_uploaded_is_rejected_by_comfyui(emu: Comfy):
    out = run(make_handler(emu.settings()), {"id": "x", "input": {"workflow": I2V}})
    assert out["error"].startswith("workflow rejected by ComfyUI")
    assert any("node 97 (LoadImage)" in d for d in out["details"])


def test_invalid_input_is_refused_before_comfyui(emu: Comfy):
    out = run(make_handler(emu.settings()), {"id": "x", "input": {"workflow": {"1": {}}}})
    assert out == {"error": "invalid input: workflow['1'].class_type: is missing or not a string; "
                            "allowed: a node class"}  # fmt: skip


def test_invalid_workflow_gives_one_line_per_node_error(emu: Comfy):
    wf = with_seed(T2V, 13)
    wf["74"]["inputs"]["width"] = 0
    wf["81"]["inputs"]["sampler_name"] = "nope"
    out = run(make_handler(emu.settings()), {"id": "x", "input": {"workflow": wf}})
    assert isinstance(out["error"], str)
    assert out["error"].startswith("workflow rejected by ComfyUI: Prompt outputs failed validation")
    assert len(out["details"]) == 2, out
    assert any(
        d.startswith("node 74 (EmptyHunyuanLatentVideo) input 'width'") for d in out["details"]
    )
    assert any("node 81 (KSamplerAdvanced) input 'sampler_name': 'nope' is not one of the" in d
               for d in out["details"])  # fmt: skip


def test_a_bad_option_from_a_long_list_still_lists_what_is_allowed(emu: Comfy):
    """ComfyUI leaves out option lists over 20 long from its refusal (the samplers: "list of
    length 42"): the worker reads them from /object_info/{class}, so the line says what is
    allowed, as options (not files)."""
    wf = with_seed(T2V, 15)
    wf["81"]["inputs"]["sampler_name"] = "bogus"
    out = run(make_handler(emu.settings()), {"id": "opt", "input": {"workflow": wf}})
    [line] = out["details"]
    assert line.startswith(
        "node 81 (KSamplerAdvanced) input 'sampler_name': 'bogus' is not one of the options: "
        "euler, "
    ), line
    assert "more)" in line and "file" not in line, line


def test_odd_h264_size_fails_saying_the_size_must_be_even(emu: Comfy):
    """ComfyUI accepts an odd width for h264 and SaveVideo then fails opening libx264
    (`avcodec_open2`): the error says what that means."""
    wf = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 255, "height": 128, "batch_size": 4, "color": 0}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "3": {"class_type": "SaveVideo",
              "inputs": {"video": ["2", 0], "filename_prefix": "video/odd", "format": "mp4",
                         "codec": "h264"}},
    }  # fmt: skip
    out = run(make_handler(emu.settings()), {"id": "odd", "input": {"workflow": wf}})
    assert out["error"].startswith("workflow execution failed: node 3 (SaveVideo)"), out
    assert "avcodec_open2" in out["error"], out
    assert "h264 needs an even width and height" in out["error"], out


def test_missing_model_lists_the_files_that_exist(emu: Comfy):
    wf = with_seed(T2V, 14)
    wf["75"]["inputs"]["unet_name"] = "wan2.2_t2v_high_noise_14B_fp16.safetensors"
    out = run(make_handler(emu.settings()), {"id": "x", "input": {"workflow": wf}})
    [line] = [d for d in out["details"] if "node 75" in d]
    assert "'wan2.2_t2v_high_noise_14B_fp16.safetensors' is not available" in line
    assert (
        "files that exist: " in line and "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors" in line
    )
    assert "wan2.2_t2v_high_noise_14B_fp8_scaled" in out["error"]
    assert "probe_" not in line  # the recording session's artefacts are no files of an install


@needs_wan_run
def test_partially_valid_workflow_is_not_silent(emu: Comfy):
    wf = with_seed(T2V, 15)
    wf["999"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "broken"}}
    out = run(make_handler(emu.settings()), {"id": "x", "input": {"workflow": wf}})
    assert "error" not in out, out
    assert len(out["images"]) == 1
    assert (
        "dropped invalid nodes" in out["errors"][0] and "node 999 (SaveImage)" in out["errors"][0]
    )


def test_execution_error_names_the_node_and_exception(emu: Comfy):
    emu.knobs(error_at_node="87")
    out = run(make_handler(emu.settings()), {"id": "x", "input": {"workflow": with_seed(T2V, 16)}})
    assert out["error"].startswith("workflow execution failed: node 87 (VAEDecode) raised ")
    assert out["details"]
    assert get_json(emu.url + "/queue") == {"queue_running": [], "queue_pending": []}


def test_cancel_interrupts_comfyui_and_clears_the_queue(emu: Comfy):
    emu.knobs(step_delay=0.5)
    h = make_handler(emu.settings(CLEANUP_JOB_FILES="false"))  # keep the history to inspect it

    async def scenario():
        task = asyncio.create_task(h({"id": "c1", "input": {"workflow": with_seed(T2V, 17)}}))
        prompt_id = None
        for _ in range(200):
            await asyncio.sleep(0.02)
            q = await asyncio.to_thread(get_json, emu.url + "/queue")
            if q["queue_running"]:
                prompt_id = q["queue_running"][0][1]
                break
        assert prompt_id, "the job never started running"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return prompt_id

    t0 = time.monotonic()
    prompt_id = asyncio.run(scenario())
    assert time.monotonic() - t0 < 5
    for _ in range(100):
        q = get_json(emu.url + "/queue")
        hist = get_json(f"{emu.url}/history/{prompt_id}")
        if not q["queue_running"] and hist:
            break
        time.sleep(0.05)
    assert q == {"queue_running": [], "queue_pending": []}
    msgs = [m[0] for m in hist[prompt_id]["status"]["messages"]]
    assert msgs[-1] == "execution_interrupted"


def test_a_cancelled_job_leaves_no_progress_thread_behind(emu: Comfy):
    """RunPod's /cancel cancels the handler's task: the job's progress sender (a thread and an
    HTTP session) is closed, nothing pending posted, not left waiting for posts forever."""
    import threading

    emu.knobs(step_delay=0.3)
    sink = f"http://127.0.0.1:{free_port()}/progress/$ID"  # posts fail: logged, never fatal
    h = make_handler(emu.settings(RUNPOD_WEBHOOK_POST_OUTPUT=sink, PROGRESS_INTERVAL_S="0"))

    def sender_alive() -> bool:
        return any(t.name == "progress-c-threads" for t in threading.enumerate())

    async def scenario():
        task = asyncio.create_task(
            h({"id": "c-threads", "input": {"workflow": with_seed(T2V, 18)}})
        )
        for _ in range(200):
            await asyncio.sleep(0.02)
            if sender_alive():
                break
        assert sender_alive(), "no progress was posted"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    wait_for(lambda: not sender_alive(), 10, "the progress sender's end")


def test_cancel_while_pending_removes_the_prompt_from_the_queue(emu: Comfy):
    emu.knobs(step_delay=0.3)
    h = make_handler(emu.settings())

    async def scenario():
        first = asyncio.create_task(h({"id": "a", "input": {"workflow": with_seed(T2V, 18)}}))
        await asyncio.sleep(0.3)
        second = asyncio.create_task(h({"id": "b", "input": {"workflow": with_seed(T2V, 19)}}))
        for _ in range(100):
            await asyncio.sleep(0.02)
            q = await asyncio.to_thread(get_json, emu.url + "/queue")
            if q["queue_pending"]:
                break
        assert q["queue_pending"], q
        pending_id = q["queue_pending"][0][1]
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        q2 = await asyncio.to_thread(get_json, emu.url + "/queue")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return pending_id, q2

    pending_id, q2 = asyncio.run(scenario())
    assert pending_id not in [p[1] for p in q2["queue_pending"]]


def test_handler_timeout_interrupts_and_fails_clearly(emu: Comfy):
    emu.knobs(step_delay=1.0)
    h = make_handler(emu.settings(JOB_TIMEOUT_S="0.8"))
    t0 = time.monotonic()
    out = run(h, {"id": "x", "input": {"workflow": with_seed(T2V, 20)}})
    assert time.monotonic() - t0 < 4
    assert out["error"].startswith("job timed out: no result after 0.8 s (JOB_TIMEOUT_S)")
    for _ in range(60):
        if get_json(emu.url + "/queue")["queue_running"] == []:
            break
        time.sleep(0.05)
    assert get_json(emu.url + "/queue") == {"queue_running": [], "queue_pending": []}


@pytest.mark.parametrize("end", ["cancel", "deadline"])
def test_a_job_stopped_while_comfyui_answers_its_prompt_stops_the_prompt(emu: Comfy, end: str):
    """RunPod's /cancel (or JOB_TIMEOUT_S) lands after ComfyUI queued the prompt but before its
    /prompt answer reached the worker: the worker named the prompt itself, so it still
    interrupts it and takes it off the queue (no prompt left running into the next job)."""
    emu.knobs(step_delay=1.0, prompt_answer_delay=30.0)
    timeout = "1.5" if end == "deadline" else "60"
    h = make_handler(emu.settings(JOB_TIMEOUT_S=timeout, CLEANUP_JOB_FILES="false"))

    async def scenario() -> tuple[str, dict | None]:
        job = {"id": f"c-{end}", "input": {"workflow": with_seed(T2V, 21)}}
        task = asyncio.create_task(h(job))
        q = await asyncio.to_thread(
            wait_for, lambda: get_json(emu.url + "/queue")["queue_running"], 10, "the prompt"
        )
        prompt_id = q[0][1]
        if end == "cancel":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return prompt_id, None
        return prompt_id, await task

    prompt_id, out = asyncio.run(scenario())
    if out is not None:
        assert out["error"].startswith("job timed out: no result after 1.5 s"), out
    wait_for(lambda: get_json(f"{emu.url}/history/{prompt_id}"), 10, "the prompt's end")
    hist = get_json(f"{emu.url}/history/{prompt_id}")[prompt_id]
    assert hist["status"]["messages"][-1][0] == "execution_interrupted"
    assert get_json(emu.url + "/queue") == {"queue_running": [], "queue_pending": []}


def test_a_deadline_passing_during_the_clean_up_keeps_the_delivered_result(own_comfy: Comfy):
    """JOB_TIMEOUT_S bounds the job's run, not the clean-up after its outputs were delivered:
    ComfyUI's end-of-job garbage collection (gc_stall) holds the history's removal past the
    deadline, and the delivered video still comes back, not a time-out."""
    own_comfy.knobs(step_delay=0.005, gc_stall=4.0)
    h = make_handler(own_comfy.settings(JOB_TIMEOUT_S="2"))
    t0 = time.monotonic()
    out = run(h, {"id": "late-clean", "input": {"workflow": with_seed(T2V, 22)}})
    assert "error" not in out, out["error"]
    assert time.monotonic() - t0 > 2  # the clean-up did outlast the deadline
    [video] = out["images"]
    assert decode_mp4(base64.b64decode(video["data"]))[0] > 0


def test_the_job_ends_without_waiting_out_comfyuis_end_of_job_gc(own_comfy: Comfy):
    """After `execution_success` ComfyUI's gc may stall the server (gc_stall: 3 s here, 0.3 s
    measured on real ComfyUI); the worker closes its websocket without waiting for the stalled
    server's close frame, so the result (clean-up off: nothing else to ask ComfyUI) comes back
    while the server is still stalled."""
    own_comfy.knobs(step_delay=0.005, gc_stall=3.0)
    h = make_handler(own_comfy.settings(CLEANUP_JOB_FILES="false"))
    t0 = time.monotonic()
    out = run(h, {"id": "gc-end", "input": {"workflow": with_seed(T2V, 23)}})
    assert "error" not in out and len(out["images"]) == 1, out
    assert time.monotonic() - t0 < 2.5  # the job alone takes ~0.1 s; the stall 3 s


DROPS = {
    "early": ({"ws_drop_after": 6}, 1),
    "after_output": ({"ws_drop_after_type": "executed"}, 1),  # the end arrives during the drop
    "every_progress_state": ({"ws_drop_after_type": "progress_state"}, 2),
    "after_success": ({"ws_drop_after_type": "execution_success"}, 0),  # end already seen
}


@pytest.mark.parametrize("case", DROPS)
def test_websocket_drops_before_and_at_completion(emu: Comfy, case):
    knobs, min_reconnects = DROPS[case]
    emu.knobs(**knobs)
    t0 = time.monotonic()
    out = run(make_handler(emu.settings()), {"id": "d", "input": {"workflow": with_seed(T2V, 21)}})
    assert "error" not in out, out
    assert time.monotonic() - t0 < 5
    assert out["timings"]["ws_reconnects"] >= min_reconnects
    [item] = out["images"]
    assert item["kind"] == "video" and decode_mp4(base64.b64decode(item["data"]))[0] == 81


def test_websocket_refused_but_http_working_still_delivers_the_finished_job(emu: Comfy):
    """The socket drops and cannot be re-opened (ws_refuse_after) while HTTP works: the job
    ended during the failed attempts, so /history (checked between them) delivers it, instead
    of 'lost connection' after the last attempt with the output left behind."""
    emu.knobs(step_delay=0.05, ws_drop_after=6, ws_refuse_after=1)
    env = {"WEBSOCKET_RECONNECT_ATTEMPTS": "4", "WEBSOCKET_RECONNECT_DELAY_S": "0.5"}
    out = run(
        make_handler(emu.settings(**env)), {"id": "r", "input": {"workflow": with_seed(T2V, 22)}}
    )
    assert "error" not in out, out
    assert out["timings"]["end_seen_via"] == "history" and out["timings"]["ws_reconnects"] == 0
    [item] = out["images"]
    assert decode_mp4(base64.b64decode(item["data"]))[0] == 81
    assert not list(emu.output.rglob("*.mp4"))  # and cleaned up


def test_websocket_refused_for_longer_than_the_attempts_follows_the_job_over_http(emu: Comfy):
    """The reconnect attempts are used up while the prompt still runs: HTTP answers, so the
    worker follows the prompt through /history and delivers it (no 'lost connection')."""
    emu.knobs(step_delay=0.3, ws_drop_after=6, ws_refuse_after=1)
    env = {"WEBSOCKET_RECONNECT_ATTEMPTS": "2", "WEBSOCKET_RECONNECT_DELAY_S": "0.1"}
    h = make_handler(emu.settings(**env))
    out = run(h, {"id": "http", "input": {"workflow": with_seed(T2V, 25)}})
    assert "error" not in out, out
    assert out["timings"]["end_seen_via"] == "history"
    assert decode_mp4(base64.b64decode(out["images"][0]["data"]))[0] == 81


def test_websocket_refused_from_the_start_fails_clearly_and_queues_nothing(emu: Comfy):
    """No websocket can be opened at all (every upgrade refused) while HTTP works: the job is
    not queued (its progress and end could not be followed) and fails as ComfyUI unavailable,
    naming the websocket, the answer and the attempts, not as an internal worker error."""
    emu.knobs(ws_refuse_after=0)
    env = {"WEBSOCKET_RECONNECT_ATTEMPTS": "3", "WEBSOCKET_RECONNECT_DELAY_S": "0.05"}
    before = get_json(emu.url + "/history")
    post_json(emu.url + "/emulator/requests", {})
    out = run(make_handler(emu.settings(**env)), {"id": "ws0", "input": {"workflow": T2V}})
    assert out["error"].startswith("ComfyUI unavailable: could not open the websocket"), out
    assert "503" in out["error"] and "3 attempts" in out["error"], out
    log = get_json(emu.url + "/emulator/requests")
    assert sum(r["path"] == "/ws" and r["status"] == 503 for r in log) >= 3
    assert not [r for r in log if r["path"] == "/prompt" and r["method"] == "POST"]
    assert get_json(emu.url + "/history") == before


def test_websocket_and_http_both_gone_is_a_lost_connection(own_comfy: Comfy):
    """Following over HTTP ends with a clear 'lost connection' once HTTP stops answering too.
    HTTP may also go just as the reconnect attempts run out, before the worker turns to HTTP:
    the error says so either way."""
    own_comfy.knobs(step_delay=2.0, ws_drop_after=6, ws_refuse_after=1)
    env = {"WEBSOCKET_RECONNECT_ATTEMPTS": "2", "WEBSOCKET_RECONNECT_DELAY_S": "0.1",
           "COMFY_PID_FILE": ""}  # fmt: skip
    h = make_handler(own_comfy.settings(**env))

    def refused() -> int:
        log = get_json(own_comfy.url + "/emulator/requests")
        return sum(r["path"] == "/ws" and r["status"] == 503 for r in log)

    async def scenario() -> dict:
        task = asyncio.create_task(h({"id": "gone", "input": {"workflow": with_seed(T2V, 26)}}))
        while await asyncio.to_thread(refused) < 2:  # the attempts are used up
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        own_comfy.stop()  # and now HTTP is gone too
        return await task

    out = asyncio.run(scenario())
    assert out["error"].startswith("lost connection to ComfyUI"), out
    assert "HTTP API stopped answering" in out["error"]


def test_deaf_socket_after_a_client_side_drop_does_not_delay_the_end(emu: Comfy):
    """Real ComfyUI, when it notices a dropped socket only after the client reconnected with the
    same clientId, forgets that id: the new socket gets its status/executing greeting and then
    nothing (emulated by ws_drop_unnoticed_s). The end is still seen within a second through
    /history, not at the 5 s quiet check."""
    emu.knobs(step_delay=0.4, ws_drop_after=6, ws_drop_unnoticed_s=0.3)
    out = run(make_handler(emu.settings()), {"id": "q", "input": {"workflow": with_seed(T2V, 23)}})
    assert "error" not in out, out
    t = out["timings"]
    assert t["ws_reconnects"] == 1 and t["end_seen_via"] == "history", t
    assert t["end_detect_ms"] < 2500, t
    assert out["images"][0]["kind"] == "video"


def test_a_deaf_socket_is_replaced_so_progress_resumes(emu: Comfy):
    """When the reconnected socket hears nothing but its greeting for 2 s, the worker opens
    another (keeping the deaf one open: closing it would make ComfyUI forget the id again); that
    one takes the client id back and the rest of the job, its end included, arrives over it."""
    emu.knobs(step_delay=1.0, ws_drop_after_type="execution_cached", ws_drop_unnoticed_s=0.3)
    out = run(make_handler(emu.settings()), {"id": "q2", "input": {"workflow": with_seed(T2V, 24)}})
    assert "error" not in out, out
    t = out["timings"]
    assert t["ws_reconnects"] == 1 and t["end_seen_via"] == "websocket+history", t


def test_comfyui_crash_mid_job_fails_fast_and_clearly(own_comfy: Comfy):
    own_comfy.knobs(crash_at_node="81", step_delay=0.005)
    h = make_handler(own_comfy.settings(WEBSOCKET_RECONNECT_DELAY_S="3"))
    t0 = time.monotonic()
    out = run(h, {"id": "x", "input": {"workflow": with_seed(T2V, 22)}})
    took = time.monotonic() - t0
    assert out["error"].startswith("ComfyUI stopped during the job: the ComfyUI process exited")
    assert took < 2, took


def test_crash_without_pid_file_gives_connection_lost(own_comfy: Comfy):
    own_comfy.knobs(crash_at_node="81")
    h = make_handler(own_comfy.settings(COMFY_PID_FILE="", WEBSOCKET_RECONNECT_DELAY_S="0.05"))
    out = run(h, {"id": "x", "input": {"workflow": with_seed(T2V, 23)}})
    assert out["error"].startswith("lost connection to ComfyUI: the websocket to 127.0.0.1:")
    assert "3 reconnect attempts failed" in out["error"]
    assert out["error"].endswith("its HTTP API stopped answering too"), out


def test_slow_start_is_waited_for(tmp_path):
    c = Comfy(tmp_path / "slow", ["--startup-delay", "1.0"], wait=False)
    try:
        t0 = time.monotonic()
        out = run(
            make_handler(c.settings()), {"id": "s", "input": {"workflow": with_seed(T2V, 24)}}
        )
        assert "error" not in out, out
        assert out["timings"]["wait_ready_ms"] >= 500
        assert time.monotonic() - t0 < 10
    finally:
        c.stop()


def test_comfyui_never_up_fails_with_deadline(tmp_path):
    from tests.helpers import free_port
    from worker.settings import Settings

    s = Settings.from_env({"COMFY_HOST": f"127.0.0.1:{free_port()}", "COMFY_READY_TIMEOUT_S": "0.5",
                           "COMFY_PID_FILE": ""})  # fmt: skip
    out = run(make_handler(s), {"id": "x", "input": {"workflow": T2V}})
    assert out["error"].startswith("ComfyUI unavailable: ComfyUI at 127.0.0.1:")
    assert "within 0.5 s (COMFY_READY_TIMEOUT_S)" in out["error"]
    dead = tmp_path / "pid"
    dead.write_text("999999999")
    s2 = s.replace(ready_timeout_s=30.0, comfy_pid_file=str(dead))
    t0 = time.monotonic()
    out = run(make_handler(s2), {"id": "x", "input": {"workflow": T2V}})
    assert "its process (pid file" in out["error"] and time.monotonic() - t0 < 2


def test_oversized_result_without_s3_fails_before_posting(emu: Comfy):
    emu.knobs(output_bytes=3_000_000)
    h = make_handler(emu.settings(RESULT_MAX_BYTES="2000000"))
    out = run(h, {"id": "big", "input": {"workflow": with_seed(T2V, 25)}})
    assert out["error"].startswith("result too large: the outputs would make a 4.0 MB result")
    assert "BUCKET_ENDPOINT_URL" in out["error"] and "images" not in out
    assert not list(emu.output.rglob("*.mp4"))  # cleaned up anyway


@needs_wan_run
def test_outputs_fetched_over_http_when_folder_not_shared(emu: Comfy):
    h = make_handler(emu.settings(COMFY_OUTPUT_DIR="", COMFY_INPUT_DIR=""))
    out = run(h, {"id": "v", "input": {"workflow": with_seed(T2V, 26)}})
    assert "error" not in out, out
    assert decode_mp4(base64.b64decode(out["images"][0]["data"]))[0] == 81


def test_s3_delivery_against_moto(emu: Comfy, s3_server):
    import boto3
    import requests

    env = dict(
        BUCKET_ENDPOINT_URL=s3_server.base_url,
        BUCKET_ACCESS_KEY_ID="AKIDTESTKEY",
        BUCKET_SECRET_ACCESS_KEY="test-secret-key",
        BUCKET_NAME="wanpod-out",
        BUCKET_PREFIX="renders",
    )
    s3 = boto3.client(
        "s3", endpoint_url=s3_server.base_url, aws_access_key_id="a", aws_secret_access_key="b",
        region_name="us-east-1",
    )  # fmt: skip
    s3.create_bucket(Bucket="wanpod-out")
    emu.knobs(output_bytes=2_000_000)
    h = make_handler(emu.settings(**env, RESULT_MAX_BYTES="1000"))
    out = run(h, {"id": "job-s3", "input": {"workflow": with_seed(T2V, 27)}})
    assert "error" not in out, out
    [item] = out["images"]
    assert item["type"] == "s3_url" and item["mime"] == "video/mp4" and item["kind"] == "video"
    url = item["data"]
    assert f"/wanpod-out/renders/job-s3/{item['subfolder']}/{item['filename']}?" in url
    assert "test-secret-key" not in json.dumps(out)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "video/mp4"
    assert len(r.content) == item["size"] >= 2_000_000
    assert decode_mp4(r.content)[0] == 81


def test_s3_keys_keep_same_named_outputs_of_two_subfolders_apart(emu: Comfy, s3_server):
    """Two save nodes writing `a/x_00001_.png` and `b/x_00001_.png`: each its own object (the
    subfolder is in the key), each item's URL serving its own picture."""
    import io

    import boto3
    import requests
    from PIL import Image

    env = dict(BUCKET_ENDPOINT_URL=s3_server.base_url, BUCKET_ACCESS_KEY_ID="AKIDTESTKEY",
               BUCKET_SECRET_ACCESS_KEY="test-secret-key", BUCKET_NAME="two-folders")  # fmt: skip
    s3 = boto3.client("s3", endpoint_url=s3_server.base_url, aws_access_key_id="a",
                      aws_secret_access_key="b", region_name="us-east-1")  # fmt: skip
    s3.create_bucket(Bucket="two-folders")

    def empty(w: int, h: int) -> dict:
        return {"class_type": "EmptyImage",
                "inputs": {"width": w, "height": h, "batch_size": 1, "color": 0}}  # fmt: skip

    def save(image: str, prefix: str) -> dict:
        return {"class_type": "SaveImage",
                "inputs": {"images": [image, 0], "filename_prefix": prefix}}  # fmt: skip

    wf = {"1": empty(16, 16), "2": empty(32, 8), "3": save("1", "a/x"), "4": save("2", "b/x")}
    out = run(make_handler(emu.settings(**env)), {"id": "folders", "input": {"workflow": wf}})
    assert "error" not in out, out
    by_folder = {i["subfolder"]: i for i in out["images"]}
    assert sorted(by_folder) == ["a", "b"]
    assert {i["filename"] for i in out["images"]} == {"x_00001_.png"}
    for folder, size in (("a", (16, 16)), ("b", (32, 8))):
        url = by_folder[folder]["data"]
        assert f"/two-folders/folders/{folder}/x_00001_.png?" in url
        got = requests.get(url, timeout=10)
        assert Image.open(io.BytesIO(got.content)).size == size


def test_interrupt_by_someone_else_is_reported(emu: Comfy):
    emu.knobs(step_delay=0.3)
    h = make_handler(emu.settings())

    async def scenario():
        task = asyncio.create_task(h({"id": "i", "input": {"workflow": with_seed(T2V, 50)}}))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if (await asyncio.to_thread(get_json, emu.url + "/queue"))["queue_running"]:
                break
        await asyncio.to_thread(post_json, emu.url + "/interrupt", {})
        return await task

    out = asyncio.run(scenario())
    assert out["error"].startswith(
        "workflow interrupted: ComfyUI interrupted the workflow at node "
    )


def test_comfy_org_api_key_reaches_comfyui_but_never_the_result(emu: Comfy):
    emu.knobs(error_at_node="80", step_delay=0.05)
    h = make_handler(emu.settings(COMFY_ORG_API_KEY="env-key-ABCDEF"))
    seen = {}

    async def scenario():
        task = asyncio.create_task(h({"id": "k", "input": {
            "workflow": with_seed(T2V, 51), "comfy_org_api_key": "job-key-123456"}}))  # fmt: skip
        for _ in range(200):
            await asyncio.sleep(0.02)
            q = await asyncio.to_thread(get_json, emu.url + "/queue")
            if q["queue_running"]:
                seen["extra"] = q["queue_running"][0][3]
                break
        return await task

    out = asyncio.run(scenario())
    assert seen["extra"]["api_key_comfy_org"] == "job-key-123456"
    assert out["error"].startswith("workflow execution failed")
    assert "key-" not in json.dumps(out)


def test_identical_rerun_after_cleanup_saves_the_cached_result_again(emu: Comfy):
    """ComfyUI serves an identical re-run from its cache, naming the files the first job's clean-up
    removed: the worker queues it once more with its own output names, so only the save node runs
    again and the job gets the same video under a new name."""
    emu.knobs(cache=True, step_delay=0.25)
    h = make_handler(emu.settings())
    wf = with_seed(T2V, 52)
    first = run(h, {"id": "c1", "input": {"workflow": wf}})
    assert "error" not in first, first
    second = run(h, {"id": "job-c2-rerun", "input": {"workflow": wf}})
    assert "error" not in second, second
    a, b = first["images"][0], second["images"][0]
    assert b["filename"] != a["filename"] and "c2rerun" in b["filename"]
    assert base64.b64decode(b["data"])[4:8] == b"ftyp"
    # the samplers stayed cached: the first run spent 4 x 0.25 s sampling, the re-run none
    # (ComfyUI deletes the history that would list them: CLEANUP_JOB_FILES)
    assert second["timings"]["run_ms"] < first["timings"]["run_ms"] - 600, (
        first["timings"],
        second["timings"],
    )
    keep = make_handler(emu.settings(CLEANUP_JOB_FILES="false"))
    wf2 = with_seed(T2V, 53)
    assert "error" not in run(keep, {"id": "c3", "input": {"workflow": wf2}})
    again = run(keep, {"id": "c4", "input": {"workflow": wf2}})
    assert "error" not in again and again["images"][0]["kind"] == "video"


@needs_wan_run
def test_refresh_worker_is_returned(emu: Comfy):
    out = run(make_handler(emu.settings(REFRESH_WORKER="true")),
              {"id": "r", "input": {"workflow": with_seed(T2V, 54)}})  # fmt: skip
    assert out["refresh_worker"] is True and out["images"]


def test_binary_preview_frames_are_tolerated(emu: Comfy):
    emu.knobs(preview_method="auto")
    try:
        out = run(
            make_handler(emu.settings()), {"id": "pv", "input": {"workflow": with_seed(T2V, 55)}}
        )
    finally:
        emu.knobs(preview_method="none")
    assert "error" not in out, out
    assert out["images"][0]["kind"] == "video"


def test_comfyui_restarted_during_the_job_is_not_waited_for(own_comfy: Comfy):
    """ComfyUI crashes and a supervisor restarts it on the same port before the worker reconnects:
    the new ComfyUI knows nothing of the prompt, and the job fails at once instead of hanging."""
    import threading

    own_comfy.knobs(crash_at_node="81")
    h = make_handler(own_comfy.settings(COMFY_PID_FILE="", WEBSOCKET_RECONNECT_DELAY_S="0.5",
                                        WEBSOCKET_RECONNECT_ATTEMPTS="10"))  # fmt: skip

    def restart():
        own_comfy.server.proc.wait(30)
        own_comfy.server.start(wait=False)  # same argv, same port

    t = threading.Thread(target=restart, daemon=True)
    t.start()
    t0 = time.monotonic()
    out = run(h, {"id": "rs", "input": {"workflow": with_seed(T2V, 56)}})
    t.join(5)
    assert out["error"].startswith("ComfyUI stopped during the job: ComfyUI no longer knows prompt")
    assert time.monotonic() - t0 < 15


def test_a_jobs_own_key_is_kept_out_of_its_error_and_the_log(emu: Comfy):
    """The key a job brings (`comfy_org_api_key`) is scrubbed like the worker's own: here a
    model name that happens to hold it comes back in the refusal and in the log's line."""
    import logging

    key = "job-key-SCRUB-7788"
    wf = with_seed(T2V, 54)
    loader = next(n for n in wf.values() if n["class_type"] == "UNETLoader")
    loader["inputs"]["unet_name"] = f"{key}.safetensors"
    line = io.StringIO()
    log_to = logging.StreamHandler(line)
    log_to.setFormatter(ScrubbingFormatter("%(message)s", []))
    logging.getLogger("worker").addHandler(log_to)
    try:
        out = run(make_handler(emu.settings()), {"id": "s", "input": {
            "workflow": wf, "comfy_org_api_key": key}})  # fmt: skip
    finally:
        logging.getLogger("worker").removeHandler(log_to)
    assert "***.safetensors" in out["error"] and key not in json.dumps(out), out
    assert "***.safetensors" in line.getvalue() and key not in line.getvalue(), line.getvalue()
    # the job over, its key is not scrubbed from later lines (it is no secret of the worker's)
    assert key in ScrubbingFormatter("%(message)s", []).format(
        logging.LogRecord("worker", logging.INFO, "", 0, key, (), None)
    )
