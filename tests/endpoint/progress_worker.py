"""A test worker for progress ordering: the real runpod SDK loop (`runpod.serverless.start`)
around a handler that sends bursts of progress through the worker's own `ProgressReporter` (its
production transport to the SDK's job-done URL), as the handler does at stage changes.

input: {"bursts": b, "size": n}: b bursts of n updates each (no throttle: every update is due),
10 ms apart; update k carries step=k. Returns {"last": the newest step}.
Run with the worker venv: `python -m tests.endpoint.progress_worker` (env from the control plane).
"""

import asyncio

import runpod

from worker.progress import ProgressReporter


async def handler(job: dict) -> dict:
    inp = job["input"]
    progress = ProgressReporter(job, enabled=True, interval_s=0.0, quiet_s=0.3)
    step = 0
    for _ in range(int(inp.get("bursts", 1))):
        for _ in range(int(inp.get("size", 1))):
            step += 1
            progress.update(stage="sampling", step=step, steps=10_000)
        await asyncio.sleep(0.01)
    await progress.quiet()
    return {"last": step}


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
