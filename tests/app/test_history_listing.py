"""History's gallery and opened job through its callbacks (app/ui/history.py's HistoryCallbacks)
on a real ledger, SQLite and PostgreSQL: a chain is ONE item, found by its own id and listed by
its own state and pipeline (not its segments'); the note says that older jobs match too exactly
when they do, however many rows the chains fold; an opened live job names its state and offers
to follow it; a COMPLETED job whose video file is gone says so, in its tile and its panel.

The studio is a stand-in with what the callbacks read of it (ledger, forms, settings, the result
store); the chains are the real app/studio/chains.py on the same ledger."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.studio import history as hist
from app.studio.chain_store import CANCELLED, COMPLETED
from app.studio.chains import Chains
from app.studio.ledger import Ledger
from app.studio.owners import ANYONE
from app.studio.store import LocalStore
from app.ui import history as ui_history
from tests.helpers import COMFY_FIXTURES

MP4 = COMFY_FIXTURES / "recordings" / "files" / "video_success" / "acceptance_00001_.mp4"
T2V, I2V = "Text to video (Wan 2.2 14B)", "Image to video (Wan 2.2 14B)"
TITLES = {"t2v_14b": T2V, "i2v_14b": I2V}
LIMIT = 4  # the gallery's GALLERY_LIMIT, small here


class Studio:
    """What HistoryCallbacks reads of app.studio.jobs.Studio (no login: the caller sees all)."""

    def __init__(self, ledger: Ledger, data_dir: Path) -> None:
        self.ledger = ledger
        self.settings = SimpleNamespace(data_dir=str(data_dir))
        self.forms = {k: SimpleNamespace(title=t) for k, t in TITLES.items()}
        self.tracker = SimpleNamespace(store=LocalStore(data_dir / "results"))

    def caller(self, username):
        return ANYONE

    def row(self, rid, caller, workflow=True):
        return self.ledger.get(rid, workflow)

    def view(self, rid, caller):  # a chain's live segment's progress line: none here
        return None


@pytest.fixture
def studio(ledger_url, tmp_path) -> Studio:
    return Studio(Ledger(ledger_url), tmp_path)


@pytest.fixture
def history(studio, monkeypatch) -> ui_history.HistoryCallbacks:
    monkeypatch.setattr(ui_history, "GALLERY_LIMIT", LIMIT)
    return ui_history.HistoryCallbacks(SimpleNamespace(studio=studio, chains=Chains(studio)))


def job(studio, at: float, prompt="a job", template="t2v_14b", state="COMPLETED", **fields) -> str:
    rid = studio.ledger.create(
        template=template, mode="turbo", params={"prompt": prompt, "seed": 7},
        workflow={"3": {}}, quote=None, gpu="H100 PRO", chain=fields.pop("chain", None),
    )  # fmt: skip
    studio.ledger.update(rid, created_at=at, state=state, **fields)
    return rid


def storyboard(studio, at: float, states: list[str], end: str | None = COMPLETED) -> str:
    """A storyboard begun as text to video, its segments sent at `at`, `at` + 1, ...; `end`:
    its end as written (None: still running)."""
    store = Chains(studio).store
    prompts = [f"storyboard shot {k}" for k in range(len(states))]
    cid = store.create("storyboard", {"values": {}, "prompts": prompts}, None, None)
    for k, state in enumerate(states):
        template = "t2v_14b" if k == 0 else "i2v_14b"  # later segments continue from a frame
        job(studio, at + k, prompts[k], template, state, chain={"id": cid, "index": k})
    if end is not None:
        store.finish(cid, state=end)
    return cid


def listed(history, text="", pipeline="All", status="All") -> tuple[list[str], str]:
    _, rids, note = history.refresh(None, text, pipeline, status)
    return rids, note


def test_a_storyboard_among_the_newest_rows_is_one_item_and_older_jobs_are_still_said(
    history, studio
):
    jobs = [job(studio, at) for at in range(1, 6)]  # five jobs, then a storyboard of three
    cid = storyboard(studio, 10, ["COMPLETED"] * 3)
    for status in ("All", "Completed"):
        rids, note = listed(history, status=status)
        assert rids == [cid, jobs[4], jobs[3], jobs[2]], status  # LIMIT items, not rows
        assert note == "4 jobs shown, newest first (the newest; narrow the filters for older ones)."


def test_exactly_a_gallery_of_jobs_says_no_older_ones(history, studio):
    jobs = [job(studio, at) for at in range(1, LIMIT + 1)]
    assert listed(history) == (jobs[::-1], "4 jobs shown, newest first.")
    job(studio, 0)  # one older: now said
    assert listed(history)[1].endswith("(the newest; narrow the filters for older ones).")


def test_a_chain_is_listed_by_its_own_state_and_pipeline(history, studio):
    """A storyboard cancelled while its second segment ran: its first segment COMPLETED (text
    to video), its second CANCELLED (image to video, from the first's last frame)."""
    cancelled = storyboard(studio, 1, ["COMPLETED", "CANCELLED"], end=CANCELLED)
    running = storyboard(studio, 5, ["COMPLETED", "IN_PROGRESS"], end=None)
    assert listed(history, status="Completed")[0] == []
    assert listed(history, status="Cancelled")[0] == [cancelled]
    assert listed(history, status="Live (queued or running)")[0] == [running]
    assert listed(history, pipeline="i2v_14b")[0] == []
    assert listed(history, pipeline="t2v_14b")[0] == [running, cancelled]


def test_a_chain_is_found_by_its_own_id(history, studio):
    other = job(studio, 1, "a lone kite")
    cid = storyboard(studio, 2, ["COMPLETED"] * 3)
    for text in (cid, cid[3:].upper(), "storyboard shot 2"):  # its id, or a segment's prompt
        assert listed(history, text) == ([cid], "1 job shown, newest first."), text
    assert listed(history, "kite")[0] == [other]


def opened(history, rid: str) -> tuple[str | None, str, bool]:
    """What opening `rid` shows: its video, its panel's text, whether Follow live shows (the
    last of its buttons)."""
    _rid, video, text, *_, follow, _workflow_box = history.open_job(rid, ANYONE)
    return video, text, bool(follow.get("visible"))


def test_a_chain_opened_shows_no_filled_workflow_a_job_does(history, studio):
    """A chain has one workflow per segment (its panel lists them, each opened by its id): its
    filled workflow's accordion is hidden, not shown empty; a job's shows."""
    cid = storyboard(studio, 2, ["COMPLETED"] * 2)
    *_, box = history.open_job(cid, ANYONE)
    assert box.get("visible") is False
    *_, box = history.open_job(job(studio, 1, "a lone kite"), ANYONE)
    assert box.get("visible") is True


def test_a_live_job_opened_names_its_state_and_offers_to_follow_it(history, studio):
    live = job(studio, 1, state="IN_PROGRESS")
    video, text, follow = opened(history, live)
    assert f"`{live}`" in text and "**IN_PROGRESS**" in text, text
    assert "press Follow live to watch it in the status panel" in text and follow
    assert video is None
    ended = job(studio, 2, state="FAILED")
    assert not opened(history, ended)[2]  # nothing to follow


def test_a_completed_job_whose_video_is_gone_says_so(history, studio):
    video = studio.tracker.store.results_dir / "wp-fox" / "fox_00001_.mp4"
    video.parent.mkdir(parents=True)
    shutil.copy(MP4, video)
    rid = job(studio, 1, result_path=str(video))
    (item,) = history.refresh(None, "", "All", "All")[0]["value"]
    assert item[0].endswith(".mp4.thumb.jpg")  # its first frame, kept beside it
    assert opened(history, rid)[0] == str(video)
    video.unlink()  # the thumbnail stays behind
    (item,) = history.refresh(None, "", "All", "All")[0]["value"]
    assert item[0].endswith("_placeholders/COMPLETED.png")  # drawn "no video file"
    shown, text, _ = opened(history, rid)
    assert shown is None
    assert "**Video:** none to play: its file is gone from the results folder." in text, text


def test_a_video_in_object_storage_is_not_called_gone(tmp_path):
    """Another replica's gallery finds the thumbnail in the bucket: the video is not local and
    not looked for (the S3 store itself: tests/app/test_store.py)."""
    thumb = tmp_path / "kept.thumb.jpg"
    thumb.write_bytes(b"\xff\xd8 a jpeg")
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
                        gpu="H100 PRO")  # fmt: skip
    ledger.update(rid, state="COMPLETED", result_path=f"s3://bucket/studio/{rid}/v.mp4")
    fetched = {f"s3://bucket/studio/{rid}/v.mp4{hist.THUMB_SUFFIX}": thumb}  # the thumbnail only
    (item,) = hist.gallery_items([ledger.get(rid)], {}, tmp_path, fetched.get)
    assert item.image == str(thumb) and item.has_video
