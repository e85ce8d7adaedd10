"""The emulator's videos show the job's inputs: filled Wan templates run on the shared emulator
(video_max_side 320) and the mp4 is decoded with PyAV.

- the size is the requested aspect ratio scaled down to 320 px on the long side (even sides), the
  frame count and fps are the job's, and a tag on the video says the size asked for;
- the seed draws the motion: two seeds, other frames; the same seed, the same frames;
- image-to-video starts on the start image and then zooms into it; first-last-frame starts on
  the start image and ends on the end image;
- the prompt is a caption: its text changes the pixels of the caption band and nothing else;
- libx264 encodes with one thread (its settings, which it writes into the file, say so): 64
  emulators share the bench's two cores, and a pool of encoder threads each only costs CPU."""

from __future__ import annotations

import re
from typing import Any

import pytest
from PIL import Image

from emulators.comfyui import scene
from emulators.comfyui.values import Look
from tests.emulators.comfy_client import Comfy
from tests.emulators.conftest import DEFAULT_KNOBS
from tests.emulators.video_checks import END, START, Video, distance, grid, middle, seen
from workflows.fill import FilledWorkflow, fill

MAX_SIDE = DEFAULT_KNOBS["video_max_side"]


def run_job(
    comfy: Comfy,
    tid: str,
    params: dict[str, Any],
    images: dict[str, bytes] | None = None,
    text: str | None = None,
) -> tuple[Video, FilledWorkflow]:
    """Fill `tid`, upload its images (role -> PNG), run it; `text` overrides the prompt as sent."""
    f = fill(tid, {"prompt": "a paper boat", "frames": 17, **params})
    for name, role in f.images.items():
        assert comfy.upload(name, (images or {})[role], overwrite="true").ok
    if text is not None:
        f.workflow["8"]["inputs"]["text"] = text
    with comfy.connect() as ws:
        queued = comfy.queue_prompt(f.workflow, ws.client_id)
        done = ws.until_done(queued["prompt_id"])
    assert "execution_success" in [m["type"] for m in done]
    output = next(m for m in done if m["type"] == "executed")["data"]["output"]
    return Video(comfy.get("/view", params=output["images"][0]).content), f


@pytest.mark.parametrize(
    ("tid", "params", "size"),
    [
        ("t2v_14b", {"width": 832, "height": 480}, (320, 184)),
        ("t2v_14b", {"width": 480, "height": 832, "fps": 12}, (184, 320)),
        ("ti2v_5b", {"width": 1280, "height": 704, "frames": 25}, (320, 176)),
    ],
    ids=["landscape", "portrait-12fps", "5b-24fps"],
)
def test_size_follows_the_aspect_ratio_within_the_max_side_with_the_jobs_frames_and_fps(
    comfy: Comfy, tid: str, params: dict[str, Any], size: tuple[int, int]
) -> None:
    video, f = run_job(comfy, tid, params)
    assert video.size == size
    w, h = video.size
    assert max(w, h) == MAX_SIDE and w % 2 == h % 2 == 0
    assert abs(w / h - params["width"] / params["height"]) < 0.02
    assert (len(video.frames), video.fps) == (f.output.frames, f.output.fps)


def test_the_video_is_encoded_by_one_libx264_thread(comfy: Comfy) -> None:
    video, _ = run_job(comfy, "t2v_14b", {"width": 832, "height": 480})
    settings = re.search(rb"x264 - core \d+ .*? - options: ([^\x00]*)", video.data)
    assert settings, "no libx264 settings string in the mp4"
    options = dict(o.split("=", 1) for o in settings.group(1).decode().split() if "=" in o)
    assert (options["threads"], options["lookahead_threads"]) == ("1", "1")


def test_the_seed_draws_the_motion(comfy: Comfy) -> None:
    one, _ = run_job(comfy, "t2v_14b", {"seed": 1})
    again, _ = run_job(comfy, "t2v_14b", {"seed": 1})
    other, _ = run_job(comfy, "t2v_14b", {"seed": 2})
    assert [f.tobytes() for f in one.frames] == [f.tobytes() for f in again.frames]
    assert distance(middle(one.frames[0]), middle(one.frames[-1])) > 2  # it moves
    pairs = zip(one.frames, other.frames, strict=True)  # the middle: the tag names the seed
    assert all(middle(a).tobytes() != middle(b).tobytes() for a, b in pairs)
    assert distance(middle(one.frames[-1]), middle(other.frames[-1])) > 2


def test_image_to_video_starts_on_the_start_image_then_zooms_into_it(comfy: Comfy) -> None:
    start = grid(START)
    video, _ = run_job(comfy, "i2v_14b", {"seed": 3}, {"start_image": start})
    other_seed, _ = run_job(comfy, "i2v_14b", {"seed": 4}, {"start_image": start})
    expected = seen(start, video.size)
    first, last = video.frames[0], video.frames[-1]
    assert distance(middle(first), middle(expected)) < 8
    assert distance(middle(last), middle(expected)) > 20  # zoomed: the checker moved
    assert distance(middle(other_seed.frames[0]), middle(first)) < 2
    assert distance(middle(other_seed.frames[-1]), middle(last)) > 8  # elsewhere for that seed


def test_first_last_frame_blends_from_the_start_to_the_end_image(comfy: Comfy) -> None:
    start, end = grid(START), grid(END, (640, 640))  # the end image is cropped to fit
    video, _ = run_job(comfy, "flf2v_14b", {}, {"start_image": start, "end_image": end})
    size = video.size
    first, half, last = video.frames[0], video.frames[len(video.frames) // 2], video.frames[-1]
    assert distance(middle(first), middle(seen(start, size))) < 8
    assert distance(middle(last), middle(seen(end, size))) < 8
    assert distance(middle(last), middle(seen(start, size))) > 30
    halfway = Image.blend(seen(start, size), seen(end, size), 0.5)
    assert distance(middle(half), middle(halfway)) < distance(middle(first), middle(halfway))


def test_the_prompt_is_a_caption_drawn_on_the_frames(comfy: Comfy) -> None:
    start = {"start_image": grid(START)}
    prompt = "a paper boat drifting down a calm river at sunset, slow dolly shot, golden light"
    shown, _ = run_job(comfy, "i2v_14b", {"seed": 5}, start, text=prompt)
    blank, _ = run_job(comfy, "i2v_14b", {"seed": 5}, start, text="")
    w, h = shown.size
    band = (0, h * 3 // 4, w, h)  # two lines of caption at the bottom
    for a, b in zip(shown.frames, blank.frames, strict=True):
        assert distance(a.crop(band), b.crop(band)) > 8
        assert distance(middle(a), middle(b)) < 1
    assert scene.caption_text(prompt) == prompt[:59].rstrip() + "…"


def test_caption_and_tag_texts() -> None:
    assert scene.caption_text("  a  boat\n on a river ") == "a boat on a river"
    assert len(scene.caption_text("x" * 200)) == scene.CAPTION_CHARS
    look = Look(seed=42)
    assert (
        scene.size_tag(look, (640, 640), (320, 320)) == "640x640 scaled down to 320x320 · seed 42"
    )
    assert scene.size_tag(look, (192, 112), (192, 112)) == "192x112 · seed 42"
