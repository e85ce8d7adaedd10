"""Clean-up after every job, whatever its end (CLEANUP_JOB_FILES on, folders shared as in the
image): nothing the job wrote stays in ComfyUI's output folder or history, and nothing it did not
write is touched."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.worker.conftest import Comfy, get_json, load_workflow, post_json, run, with_seed
from worker import cleanup
from worker.handler import make_handler

T2V = load_workflow("wan22_t2v_14B_lightx2v")


def left_in(emu: Comfy) -> list[str]:
    return sorted(str(p.relative_to(emu.output)) for p in emu.output.rglob("*") if p.is_file())


def history(emu: Comfy) -> dict:
    return get_json(emu.url + "/history")


@pytest.fixture
def clean(emu: Comfy) -> Comfy:
    """The shared emulator with empty output folder and history (other tests keep theirs)."""
    post_json(emu.url + "/history", {"clear": True})
    for f in left_in(emu):
        (emu.output / f).unlink()
    return emu


def webp_job(color: int, with_video: bool) -> dict:
    wf = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 4, "color": color}},
        "2": {"class_type": "SaveAnimatedWEBP",
              "inputs": {"images": ["1", 0], "filename_prefix": "anim", "fps": 6.0,
                         "lossless": False, "quality": 80, "method": "default"}},
    }  # fmt: skip
    if with_video:
        wf["3"] = {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}}
        wf["4"] = {"class_type": "SaveVideo",
                   "inputs": {"video": ["3", 0], "filename_prefix": "video/clip",
                              "format": "auto", "codec": "auto"}}  # fmt: skip
    return wf


def wait_until_queue_empty(emu: Comfy) -> None:
    for _ in range(200):
        if get_json(emu.url + "/queue") == {"queue_running": [], "queue_pending": []}:
            return
        time.sleep(0.05)
    raise AssertionError("ComfyUI's queue never emptied")


def test_cached_rerun_fallback_removes_the_first_attempts_files(clean: Comfy):
    """Job B re-uses job A's cached animation (whose file A's clean-up removed) and adds a video:
    B's first attempt writes an mp4 before the worker re-queues B under its own names. Both
    attempts' files and history entries go."""
    emu = clean
    emu.knobs(cache=True)
    h = make_handler(emu.settings())
    a = run(h, {"id": "job-a", "input": {"workflow": webp_job(7, with_video=False)}})
    assert "error" not in a, a
    b = run(h, {"id": "job-b", "input": {"workflow": webp_job(7, with_video=True)}})
    assert "error" not in b, b
    assert sorted(i["kind"] for i in b["images"]) == ["animation", "video"]
    assert left_in(emu) == [] and history(emu) == {}


def test_failed_job_leaves_no_files_or_history(clean: Comfy):
    """A node fails after a save node has written its file: the file and the entry go."""
    emu = clean
    wf = webp_job(3, with_video=True)
    emu.knobs(error_at_node="4")  # SaveVideo fails; the animation (node 2) was saved before
    out = run(make_handler(emu.settings()), {"id": "f", "input": {"workflow": wf}})
    assert out["error"].startswith("workflow execution failed: node 4 (SaveVideo)")
    wait_until_queue_empty(emu)
    assert left_in(emu) == [] and history(emu) == {}


@pytest.mark.parametrize("end", ["cancelled", "timed out"])
def test_cancel_or_timeout_during_the_uninterruptible_encode(clean: Comfy, end):
    """The job ends while SaveVideo encodes: ComfyUI finishes the encode and reports success.
    The worker waits for the prompt to really end, then removes the mp4 and the entry."""
    emu = clean
    emu.knobs(encode_delay=1.0)
    env = {"JOB_TIMEOUT_S": "1.0"} if end == "timed out" else {}
    h = make_handler(emu.settings(**env))

    async def scenario() -> dict | None:
        task = asyncio.create_task(h({"id": "enc", "input": {"workflow": with_seed(T2V, 70)}}))
        while not list(emu.output.rglob("*.mp4")):  # the encode has started
            assert not task.done(), task.result()
            await asyncio.sleep(0.02)
        if end == "timed out":
            return await task
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return None

    out = asyncio.run(scenario())
    if end == "timed out":
        assert out["error"].startswith("job timed out")
    wait_until_queue_empty(emu)
    assert left_in(emu) == [] and history(emu) == {}


def test_a_prompt_still_running_is_swept_by_the_next_job(clean: Comfy, monkeypatch):
    """When the prompt outlasts the job's wait, the next job removes what it wrote once it ends,
    and only that: the next job's own result is delivered."""
    emu = clean
    monkeypatch.setattr(cleanup, "END_WAIT_S", 0.1)
    emu.knobs(encode_delay=1.0)
    h = make_handler(emu.settings())

    async def scenario() -> dict:
        task = asyncio.create_task(h({"id": "slow", "input": {"workflow": with_seed(T2V, 71)}}))
        while not list(emu.output.rglob("*.mp4")):
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert get_json(emu.url + "/queue")["queue_running"], "the encode should still run"
        emu.knobs(encode_delay=0.0)
        return await h({"id": "next", "input": {"workflow": with_seed(T2V, 72)}})

    out = asyncio.run(scenario())
    assert "error" not in out, out
    assert out["images"][0]["kind"] == "video"
    assert left_in(emu) == [] and history(emu) == {}


def test_files_the_job_did_not_write_are_left_alone(clean: Comfy):
    """Outputs served from ComfyUI's cache were written by an earlier prompt (here one that did
    not use clean-up): a later job does not delete them."""
    emu = clean
    emu.knobs(cache=True)
    keep = make_handler(emu.settings(CLEANUP_JOB_FILES="false"))
    first = run(keep, {"id": "keep", "input": {"workflow": webp_job(9, with_video=False)}})
    kept = left_in(emu)
    assert kept and "error" not in first
    again = run(
        make_handler(emu.settings()), {"id": "again", "input": {"workflow": webp_job(9, False)}}
    )
    assert "error" not in again and again["images"][0]["filename"] == kept[0]
    assert left_in(emu) == kept


def test_cancel_mid_sampling_removes_the_interrupted_prompts_entry(clean: Comfy):
    """The interrupt lands at the next sampler step and ComfyUI writes the prompt's history entry
    only then, after the worker's cancel: the worker waits for it and removes it."""
    emu = clean
    emu.knobs(step_delay=0.5)
    h = make_handler(emu.settings())

    async def scenario() -> None:
        task = asyncio.create_task(h({"id": "mid", "input": {"workflow": with_seed(T2V, 73)}}))
        while not get_json(emu.url + "/queue")["queue_running"]:
            assert not task.done(), task.result()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # into the first 0.5 s sampler step
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert get_json(emu.url + "/queue") == {"queue_running": [], "queue_pending": []}
    assert history(emu) == {} and left_in(emu) == []
