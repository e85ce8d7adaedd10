"""What the worker asks ComfyUI per job does not depend on how much history (or queue) ComfyUI
holds: the same requests, answers of the same size, whether the history is empty or holds dozens
of earlier prompts (CLEANUP_JOB_FILES=false lets it grow). Read from the emulator's request log,
not from timings."""

from __future__ import annotations

import re
import time

import pytest

from tests.worker.conftest import Comfy, get_json, load_workflow, post_json, run, with_seed
from worker.handler import make_handler

T2V = load_workflow("wan22_t2v_14B_lightx2v")
SMALL = {
    "1": {"class_type": "EmptyImage",
          "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "fill"}},
}  # fmt: skip
ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def job_requests(emu: Comfy, handler, seed: int) -> list[tuple[str, str, int | None]]:
    post_json(emu.url + "/emulator/requests", {})
    out = run(handler, {"id": f"req-{seed}", "input": {"workflow": with_seed(T2V, seed)}})
    assert "error" not in out, out
    log = get_json(emu.url + "/emulator/requests")
    return [(r["method"], ID.sub("{id}", r["path"]), r["bytes"]) for r in log]


def grow_history(emu: Comfy, n: int) -> None:
    for i in range(n):
        wf = {**SMALL, "1": {**SMALL["1"], "inputs": {**SMALL["1"]["inputs"], "color": i}}}
        post_json(emu.url + "/prompt", {"prompt": wf})
    while (
        get_json(emu.url + "/queue")["queue_pending"]
        or get_json(emu.url + "/queue")["queue_running"]
    ):
        time.sleep(0.05)


@pytest.mark.emulator_only("reads the emulator's request log; its Wan job must finish")
@pytest.mark.parametrize("cleanup", ["false", "true"])
def test_per_job_requests_do_not_depend_on_history_size(emu: Comfy, cleanup):
    post_json(emu.url + "/history", {"clear": True})
    h = make_handler(emu.settings(CLEANUP_JOB_FILES=cleanup))
    before = job_requests(emu, h, 90)
    grow_history(emu, 40)
    assert len(get_json(emu.url + "/history")) >= 40
    after = job_requests(emu, h, 91)
    assert [r[:2] for r in after] == [r[:2] for r in before]
    for (method, path, a), (_, _, b) in zip(before, after, strict=True):
        if a is not None and b is not None:  # numbers and timestamps may differ by a few digits
            assert abs(a - b) <= 16, (method, path, a, b)
    asked = {r[:2] for r in after}
    # nothing whose answer lists every prompt: not the whole history, not the queue
    assert ("GET", "/history") not in asked and ("GET", "/queue") not in asked, asked
