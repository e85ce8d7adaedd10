"""The history gallery's pure parts (app/studio/history.py) and the ledger's filtered query, on a
real SQLite ledger in a temporary folder and the real H.264 mp4 from the ComfyUI recordings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from app.studio import history as hist
from app.studio.cost import Actual, Quote
from app.studio.ledger import Ledger
from tests.helpers import COMFY_FIXTURES, png_bytes

MP4 = COMFY_FIXTURES / "recordings" / "files" / "video_success" / "acceptance_00001_.mp4"
TITLES = {"t2v_14b": "Text to video (Wan 2.2 14B)", "ti2v_5b": "Text (+ optional image) 5B"}


@pytest.fixture
def video(tmp_path) -> Path:
    path = tmp_path / "results" / "wp-1" / "wan_00001_.mp4"
    path.parent.mkdir(parents=True)
    shutil.copy(MP4, path)
    return path


def test_thumbnail_is_the_first_frame_cached_next_to_the_video(video):
    thumb = hist.thumbnail(video, width=128)
    assert thumb == video.with_name("wan_00001_.mp4.thumb.jpg")
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and im.size == (128, 96)  # the recording is 256x192
        first = im.convert("RGB").getpixel((64, 48))
    import av

    with av.open(str(video)) as c:
        frame = next(c.decode(video=0)).to_image().resize((128, 96))
    assert max(abs(a - b) for a, b in zip(first, frame.getpixel((64, 48)), strict=True)) < 40
    made = thumb.stat().st_mtime_ns
    assert hist.thumbnail(video, width=128) == thumb and thumb.stat().st_mtime_ns == made
    later = thumb.stat().st_mtime + 5  # a newer video (a rerun into the same folder): remade
    os.utime(video, (later, later))
    assert hist.thumbnail(video, width=128) == thumb and thumb.stat().st_mtime_ns != made


def test_no_thumbnail_for_a_file_that_is_not_a_video(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    assert hist.thumbnail(bad) is None
    assert not list(tmp_path.glob("*.jpg")) and not list(tmp_path.glob(".*tmp"))


def test_placeholders_one_png_per_state_group(tmp_path):
    failed = hist.placeholder(tmp_path, "FAILED")
    assert failed == tmp_path / "_placeholders" / "FAILED.png"
    with Image.open(failed) as im:
        assert im.format == "PNG" and im.size == (hist.THUMB_W, 180)
    assert hist.placeholder(tmp_path, "IN_QUEUE") == hist.placeholder(tmp_path, "SUBMITTING")
    assert hist.placeholder(tmp_path, "IN_QUEUE").name == "LIVE.png"
    assert hist.placeholder(tmp_path, "SOMETHING_NEW").name == "OTHER.png"
    assert len({hist.placeholder(tmp_path, s) for s in ("FAILED", "CANCELLED", "LOST")}) == 3


def add(ledger: Ledger, at: float, template="t2v_14b", prompt="", state="COMPLETED", **fields):
    params = {"prompt": prompt, "seed": 7, "width": 832, "height": 480, "frames": 81}
    rid = ledger.create(
        template=template,
        mode="turbo",
        params=params,
        workflow={"3": {"class_type": "KSampler", "inputs": {"seed": 7}}},
        quote=Quote(gpu="H100 PRO", per_s=0.00416, execution_s=60, dollars=0.25),
        gpu="H100 PRO",
        recipe={"template": template, "template_version": "abc123def456", "seed": 7},
    )
    ledger.update(rid, created_at=at, state=state, **fields)
    return rid


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite3")


@pytest.fixture
def rows(ledger):
    return {
        "fox": add(ledger, 1, prompt="A red FOX in snow"),
        "pct": add(ledger, 2, prompt="100% cotton_candy clouds", state="FAILED"),
        "koi": add(ledger, 3, "ti2v_5b", "koi in a pond", state="CANCELLED"),
        "live": add(ledger, 4, prompt="a fox cub running", state="IN_PROGRESS"),
        "lost": add(ledger, 5, "ti2v_5b", "fox and hound", state="LOST"),
    }


@pytest.mark.parametrize(
    ("text", "pipeline", "status", "expected"),
    [
        ("", "All", "All", ["lost", "live", "koi", "pct", "fox"]),  # newest first
        ("fox", None, None, ["lost", "live", "fox"]),  # case-insensitive, anywhere in the prompt
        ("FOX", "t2v_14b", "All", ["live", "fox"]),
        ("fox", "All", "Live (queued or running)", ["live"]),
        ("", "ti2v_5b", "Cancelled", ["koi"]),
        ("%", "", "", ["pct"]),  # % and _ are literal, not LIKE wildcards
        ("_", "", "", ["pct"]),
        ("cotton_candy", "", "Failed", ["pct"]),
        ("whale", "", "", []),
        ("", "", "Timed out", []),
    ],
)
def test_the_page_filters_become_one_ledger_query(ledger, rows, text, pipeline, status, expected):
    filt = hist.HistoryFilter.from_ui(text, pipeline, status)
    found = ledger.search(filt.text, filt.template, filt.states)
    assert [r.id for r in found] == [rows[k] for k in expected]


def test_search_by_job_id_and_limit(ledger, rows):
    assert [r.id for r in ledger.search(rows["koi"][-6:].upper())] == [rows["koi"]]
    assert [r.id for r in ledger.search(limit=2)] == [rows["lost"], rows["live"]]


def test_filter_fields(ledger):
    assert not hist.HistoryFilter.from_ui(" ", "All", "All").active
    assert hist.HistoryFilter.from_ui(" owl ", None, None) == hist.HistoryFilter("owl")
    with pytest.raises(ValueError, match=r"status: 'Sleeping' is not a filter; allowed: All, "):
        hist.HistoryFilter.from_ui("", "", "Sleeping")


def test_gallery_items_thumbnails_placeholders_and_captions(ledger, tmp_path, video):
    results = tmp_path / "results"
    done = add(ledger, 1, prompt="  a   kite\nat dusk ", result_path=str(video),
               cost=Actual(12, 0.0123))  # fmt: skip
    gone = add(ledger, 2, prompt="moved away", result_path=str(tmp_path / "missing.mp4"))
    failed = add(ledger, 3, "ti2v_5b", "x" * 200, state="FAILED")
    items = hist.gallery_items(ledger.search(), TITLES, results)
    assert [i.rid for i in items] == [failed, gone, done]
    by = {i.rid: i for i in items}
    assert by[done].has_video and by[done].image.endswith("wan_00001_.mp4.thumb.jpg")
    assert by[done].caption == (
        "COMPLETED · Text to video (Wan 2.2 14B) · turbo · 832×480 · seed 7 · $0.0123 — "
        "a kite at dusk"
    )
    assert not by[gone].has_video and by[gone].image.endswith("_placeholders/COMPLETED.png")
    assert by[failed].image.endswith("_placeholders/FAILED.png")
    cap = by[failed].caption
    assert cap.startswith("FAILED · Text (+ optional image) 5B · turbo · 832×480 · seed 7 · ")
    assert "≈$0.2500 quoted" in cap and cap.endswith("x" * 89 + "…")  # no actual cost: the quote
    for item in items:
        assert Path(item.image).is_file()


def test_form_seconds_lands_on_the_slider_and_keeps_the_frames():
    spec = (0.25, 10.0, 0.25, 5.0)
    assert hist.form_seconds(37 / 24, 37, spec, 24) == 1.5  # stored as frames / fps
    assert hist.form_seconds(81 / 16, 81, spec, 16) == 5.0
    assert hist.form_seconds(33 / 16, 33, spec, 16) == 2.0
    assert hist.form_seconds(3.3, None, spec, 16) == 3.25  # no frame count: nearest step
    assert hist.form_seconds(42.0, None, spec, 16) == 10.0  # clamped to the slider


def test_recipe_markdown(ledger):
    rid = add(ledger, 1, prompt="p", finished_at=31.5, submitted_at=1.5, user="ann")
    ledger.update(
        rid, recipe={"template": "t2v_14b", "template_version": "abc123def456", "seed": 7,
                     "comfyui_version": "0.3.66", "rerun_of": "wp-0123"},
    )  # fmt: skip
    text = hist.recipe_markdown(ledger.get(rid))
    for part in ("`t2v_14b`", "`abc123def456`", "seed **7**", "ComfyUI 0.3.66", "`wp-0123`"):
        assert part in text, text
    assert "(30.0 s after sending)" in text and "**User:** ann" in text


def test_restore_input_gives_back_the_image_as_sent(tmp_path):
    import base64

    png = png_bytes(64, 32, (10, 200, 30))
    kept = tmp_path / "inputs" / "wp-1" / "wanpod_x_start_image.png"
    kept.parent.mkdir(parents=True)
    kept.write_text(base64.b64encode(png).decode())
    out = tmp_path / "results" / "wp-1" / "inputs" / kept.name
    assert hist.restore_input(kept, out) == out and out.read_bytes() == png
    assert hist.restore_input(tmp_path / "nothing.png", tmp_path / "o1.png") is None
    (tmp_path / "bad.png").write_text("not base64 !!!")
    assert hist.restore_input(tmp_path / "bad.png", tmp_path / "o2.png") is None
    assert not (tmp_path / "o1.png").exists() and not (tmp_path / "o2.png").exists()
