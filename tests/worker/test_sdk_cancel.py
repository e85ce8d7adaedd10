"""RunPod's cancel reaches the handler through the unmodified SDK loop: the SDK's JobScaler (with
its local-test injection points for the job and stop channels) runs the real handler; a stop
signal for the job cancels the handler task, and the handler interrupts ComfyUI and clears its
queue. (The production HTTP channels are exercised by the RunPod emulator's tests.)"""

from __future__ import annotations

import asyncio
import time

from tests.worker.conftest import Comfy, get_json, load_workflow, with_seed
from worker.handler import make_handler


def test_sdk_stop_signal_cancels_the_handler_and_interrupts_comfyui(emu: Comfy, monkeypatch):
    monkeypatch.delenv("RUNPOD_WEBHOOK_GET_JOB", raising=False)
    from runpod.serverless.modules.rp_scale import JobScaler

    emu.knobs(step_delay=0.5)
    job = {
        "id": "sdk-cancel-1",
        "input": {"workflow": with_seed(load_workflow("wan22_t2v_14B_lightx2v"), 60)},
    }
    state = {"given": False, "stop": False, "stopped_sent": False}
    outcome: dict = {}
    handler = make_handler(emu.settings(CLEANUP_JOB_FILES="false"))  # keep the history

    async def recording_handler(j):
        try:
            return await handler(j)
        except asyncio.CancelledError:
            outcome["cancelled_at"] = time.monotonic()
            raise

    async def jobs_fetcher(session, jobs_needed=1):
        if not state["given"]:
            state["given"] = True
            return [job]
        await asyncio.sleep(0.2)
        return []

    async def stop_fetcher(session):
        await asyncio.sleep(0.05)
        if state["stop"] and not state["stopped_sent"]:
            state["stopped_sent"] = True
            return [job["id"]]
        return []

    scaler = JobScaler({"handler": recording_handler, "jobs_fetcher": jobs_fetcher,
                        "stop_signals_fetcher": stop_fetcher})  # fmt: skip

    async def scenario():
        run = asyncio.create_task(scaler.run())
        prompt_id = None
        for _ in range(300):
            await asyncio.sleep(0.02)
            q = await asyncio.to_thread(get_json, emu.url + "/queue")
            if q["queue_running"]:
                prompt_id = q["queue_running"][0][1]
                break
        assert prompt_id, "the SDK never ran the job"
        state["stop"] = True
        outcome["stop_at"] = time.monotonic()
        for _ in range(200):
            await asyncio.sleep(0.02)
            if "cancelled_at" in outcome:
                break
        scaler.kill_worker()
        await asyncio.wait_for(run, 10)
        return prompt_id

    prompt_id = asyncio.run(scenario())
    assert "cancelled_at" in outcome, "the stop signal never reached the handler"
    # the SDK polls the stop channel with a 1 s pause after an empty answer
    assert outcome["cancelled_at"] - outcome["stop_at"] < 2.5
    for _ in range(100):
        hist = get_json(f"{emu.url}/history/{prompt_id}")
        if hist:
            break
        time.sleep(0.05)
    assert hist[prompt_id]["status"]["messages"][-1][0] == "execution_interrupted"
    assert get_json(emu.url + "/queue") == {"queue_running": [], "queue_pending": []}
