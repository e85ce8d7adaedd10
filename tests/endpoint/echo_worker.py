"""A tiny test worker for the control-plane tests: the real runpod SDK production loop
(`runpod.serverless.start`) around a handler driven by the job input.

input: {"sleep": s, "progress": n (posts n progress dicts, 0.2 s apart), "fail": "text",
        "raise": "text", "echo": any, "stop_pod": bool}
Run with the worker venv: `python -m tests.endpoint.echo_worker` (env from the control plane).
"""

import asyncio
import os

import runpod


async def handler(job: dict) -> dict:
    inp = job["input"]
    try:
        for i in range(int(inp.get("progress", 0))):
            runpod.serverless.progress_update(job, {"stage": "sampling", "step": i + 1})
            await asyncio.sleep(0.2)
        await asyncio.sleep(float(inp.get("sleep", 0)))
    except asyncio.CancelledError:
        marker = inp.get("cancel_marker")
        if marker:
            with open(marker, "w") as f:
                f.write(job["id"])
        raise
    if "raise" in inp:
        raise RuntimeError(inp["raise"])
    if "fail" in inp:
        return {"error": inp["fail"], "details": ["from the test worker"]}
    out = {"echo": inp.get("echo"), "worker": os.environ.get("RUNPOD_POD_ID")}
    if inp.get("stop_pod"):
        out["refresh_worker"] = True
    return out


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
