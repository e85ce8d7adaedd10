"""Extend and Storyboard against the local stack (emulated ComfyUI, local RunPod control plane,
real workers): one stitched video, seams that match, restarts, cancel, budgets, length."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest

from app.endpoint import EndpointClient
from app.errors import GuardrailError, InputError, SegmentSent
from app.settings import PRICES_PATH, Settings
from app.studio import cost, stitch
from app.studio.chains import Chains
from app.studio.checks.gate import Gate
from app.studio.forms import FormValues
from app.studio.forms_catalog import load_forms
from app.studio.jobs import Studio
from app.studio.ledger import Ledger
from app.studio.owners import ANYONE
from app.studio.tracker import Tracker
from tests.helpers import wait_for

PROMPTS = "a heron lands on the lake\nthe heron folds its wings\nthe heron looks at the camera"


def services(stack, folder: Path, lease_s: float = 30.0, **env: str) -> Chains:
    """The studio's services as `python -m app` assembles them, on the ledger in `folder`."""
    from workflows.fill import fill

    settings = Settings.from_env({"WANPOD_DATA_DIR": str(folder), "WANPOD_PREFLIGHT": "off", **env})
    prices = cost.load_prices(PRICES_PATH)
    ledger = Ledger(folder / "ledger.sqlite3")
    endpoint = EndpointClient(stack.base_url, stack.api_key)
    tracker = Tracker(ledger, endpoint, folder, prices, poll_s=0.1, lease_s=lease_s)
    forms, byo_fill = load_forms()
    gate = Gate.from_settings(settings, endpoint=endpoint, ledger=ledger, endpoint_key="t")
    studio = Studio(
        settings=settings, forms=forms, fill=fill, byo_fill=byo_fill, endpoint=endpoint,
        ledger=ledger, tracker=tracker, prices=prices, ops=gate,
    )  # fmt: skip
    tracker.on_final = studio.forget_calibration  # the quotes learn from every job's end
    chains = Chains(studio)
    chains.attach(tracker)
    tracker.start()
    chains.resume()
    return chains


def values(seconds: float = 1.0) -> FormValues:
    return FormValues(
        pipeline="t2v_14b", prompt="a heron", resolution="480p landscape", seconds=seconds,
        seed=7, randomize=False,
    )  # fmt: skip


def finished(chains: Chains, cid: str, timeout: float = 90) -> None:
    wait_for(
        lambda: chains.chain(cid, ANYONE).finished_at is not None, timeout, f"chain {cid} ended"
    )


def diff(a, b) -> float:
    """Mean absolute difference of the pictures' middle (the emulator pastes each segment's own
    caption and size tag over the top and bottom of every frame)."""
    w, h = a.size
    box = (0, int(h * 0.3), w, int(h * 0.65))
    x = np.asarray(a.convert("RGB").crop(box), dtype=np.int16)
    y = np.asarray(b.convert("RGB").resize(a.size).crop(box), dtype=np.int16)
    return float(np.abs(x - y).mean())


def test_a_three_segment_storyboard_is_one_video_without_repeated_seam_frames(stack, tmp_path):
    chains = services(stack, tmp_path)
    try:
        cid = chains.storyboard(values(), PROMPTS)
        finished(chains, cid)
        chain = chains.chain(cid, ANYONE)
        assert chain.state == "COMPLETED", chains.view(cid, ANYONE).line
        segs = chains.segments(chain)
        assert [s.chain["index"] for s in segs] == [0, 1, 2]
        assert [s.template for s in segs] == ["t2v_14b", "i2v_14b", "i2v_14b"]
        assert [s.params["prompt"] for s in segs] == PROMPTS.splitlines()
        assert segs[1].chain["parent"] == segs[0].id and segs[2].chain["parent"] == segs[1].id
        videos = [Path(s.result_path) for s in segs]
        counts = [stitch.frame_count(v) for v in videos]
        assert counts == [17, 17, 17]
        assert stitch.frame_count(Path(chain.result_path)) == sum(counts) - 2 == chain.frames
        assert not chain.remuxed  # H.264 segments: re-encoded once
        with av.open(chain.result_path) as c:  # it plays at its segments' 16 fps
            seconds = c.duration / av.time_base
        assert abs(seconds - chain.frames / 16) < 0.1, seconds
        for k in (1, 2):  # each seam: the previous last frame is the next first frame
            before, after = stitch.last_frame(videos[k - 1]), stitch.first_frame(videos[k])
            seam = diff(before, after)
            assert seam < 6  # H.264 both ways; the previous FIRST frame is far from it:
            assert diff(stitch.first_frame(videos[k - 1]), after) > 3 * seam
            start = Path(segs[k].chain["start_frame"])
            assert diff(stitch.last_frame(videos[k - 1]), _image(start)) < 1
        joined = _frames(Path(chain.result_path))
        assert diff(joined[16], stitch.last_frame(videos[0])) < 4
        assert diff(joined[17], _frames(videos[1])[1]) < 4  # segment 2's frame 0 left out
        assert diff(joined[-1], stitch.last_frame(videos[2])) < 4
    finally:
        chains.studio.tracker.stop()


def test_a_restarted_studio_carries_the_chain_on(stack, tmp_path):
    first = services(stack, tmp_path)
    cid = first.storyboard(values(2.0), PROMPTS)
    wait_for(lambda: len(first.store.segment_ids(cid)) >= 2, 60, "segment 2 sent")
    first.studio.tracker.stop()  # the studio stops; the control plane runs on
    assert first.chain(cid, ANYONE).finished_at is None
    again = services(stack, tmp_path)  # a new studio on the same ledger
    try:
        finished(again, cid)
        chain = again.chain(cid, ANYONE)
        assert chain.state == "COMPLETED", again.view(cid, ANYONE).line
        assert len(again.segments(chain)) == 3
        assert stitch.frame_count(Path(chain.result_path)) == 3 * 33 - 2
    finally:
        again.studio.tracker.stop()


def test_a_storyboard_other_than_the_one_its_quote_line_priced_is_refused(stack, tmp_path):
    """The page keeps what the chain's quote line priced; a storyboard (or an extension) sent
    from a form changed meanwhile is refused, naming the difference, with no chain and no job
    made. An API client passes nothing and is checked as it is."""
    import dataclasses

    chains = services(stack, tmp_path)
    try:
        shown = chains.storyboard_check(values(), PROMPTS).shown()
        assert len(shown.requests) == 3 and shown.dollars > 0
        larger = dataclasses.replace(values(), resolution="720p landscape")
        with pytest.raises(InputError) as refused:
            chains.storyboard(larger, PROMPTS, shown=shown)
        assert str(refused.value).startswith(
            "storyboard quote: the form sent a different storyboard (job 1: width 1280 instead "
            "of 832, height 720 instead of 480) than its quote line priced ($"
        ), refused.value
        with pytest.raises(InputError, match=r"\(2 jobs instead of 3\)"):
            chains.storyboard(values(), "one\ntwo", shown=shown)
        assert chains.store.unfinished() == [] and chains.studio.ledger.recent() == []
    finally:
        chains.studio.tracker.stop()


class StaleFirstRead(Chains):
    """Another replica's chain service: its own locks, the same ledger, and a first read of
    the chain's segments taken before the last one's row was written."""

    stale: list | None = None

    def segments(self, chain):
        if self.stale is not None:
            segs, self.stale = self.stale, None
            return segs
        return super().segments(chain)


def test_a_segment_another_replica_sent_meanwhile_is_not_sent_again(stack, tmp_path):
    """Two replicas advance the same chain (a rolling restart's resume, both ends of a job):
    the segment's row is written only if the chain has none for its index, in the budget
    check's atomic step, so the one that comes second sends nothing and leaves the chain
    running."""
    chains = services(stack, tmp_path)
    try:
        cid = chains.storyboard(values(), PROMPTS)  # segment 1 sent
        other = StaleFirstRead(chains.studio)
        other.stale = []  # it saw no segment yet
        other.advance(cid)
        assert chains.chain(cid, ANYONE).state != "FAILED"
        assert [s.chain["index"] for s in chains.segments(chains.chain(cid, ANYONE))][:1] == [0]
        with pytest.raises(SegmentSent, match=r"segment 1 of ch-\w+ was sent already"):
            chains.studio.submit(values(), chain={"id": cid, "index": 0, "parent": None})
        finished(chains, cid)
        chain = chains.chain(cid, ANYONE)
        assert chain.state == "COMPLETED", chains.view(cid, ANYONE).line
        assert [s.chain["index"] for s in chains.segments(chain)] == [0, 1, 2]
        assert len(chains.store.segment_ids(cid)) == 3  # no row, nothing sent, for a repeat
    finally:
        chains.studio.tracker.stop()


def test_a_cancel_keeps_the_finished_segments_and_their_video(stack, tmp_path):
    chains = services(stack, tmp_path)
    try:
        cid = chains.storyboard(values(2.0), PROMPTS)
        wait_for(lambda: len(chains.store.segment_ids(cid)) >= 2, 60, "segment 2 sent")
        assert "cancelled" in chains.cancel(cid, ANYONE)
        finished(chains, cid)
        chain = chains.chain(cid, ANYONE)
        segs = chains.segments(chain)
        assert chain.state == "CANCELLED" and len(segs) == 2
        assert segs[0].state == "COMPLETED"
        assert segs[1].state in ("CANCELLED", "COMPLETED")
        kept = sum(1 for s in segs if s.state == "COMPLETED")
        assert stitch.frame_count(Path(chain.result_path)) == kept * 33 - (kept - 1)
        assert Path(segs[0].result_path).is_file()
    finally:
        chains.studio.tracker.stop()


class Announcing:
    """A chain's lock that says when someone starts waiting for it (then waits as it does)."""

    def __init__(self, lock) -> None:
        self.lock, self.waiting = lock, threading.Event()

    def __enter__(self):
        self.waiting.set()
        return self.lock.__enter__()

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)


def test_a_cancel_while_the_chain_is_stitched_leaves_it_completed(stack, tmp_path, monkeypatch):
    """Cancel pressed while the last segment's end stitches the chain's video (the page still
    shows it running): the cancel waits for the stitch and says the chain ended; the chain
    stays COMPLETED, and can be extended, where it was rewritten CANCELLED."""
    chains = services(stack, tmp_path)
    stitched, go = threading.Event(), threading.Event()
    real = stitch.stitch

    def held(videos, out):  # a long chain's one re-encode, held until the cancel waits
        stitched.set()
        go.wait(60)
        return real(videos, out)

    monkeypatch.setattr(stitch, "stitch", held)
    try:
        cid = chains.storyboard(values(), "a heron\nthe heron flies")
        assert stitched.wait(90), "the chain's video was never stitched"
        lock = chains._locks[cid] = Announcing(chains._locks[cid])
        said: list[str] = []
        cancel = threading.Thread(target=lambda: said.append(chains.cancel(cid, ANYONE)))
        cancel.start()
        assert lock.waiting.wait(30)  # the cancel waits for the stitch
        go.set()
        cancel.join(60)
        chain = chains.chain(cid, ANYONE)
        assert said == [f"Chain {cid} already ended COMPLETED."]
        assert chain.state == "COMPLETED" and chain.error is None
    finally:
        go.set()
        chains.studio.tracker.stop()


def test_a_segment_marked_lost_by_the_lease_scan_ends_its_chain(stack, tmp_path):
    """A replica died while its segment's /run was under way: another replica's lease scan
    marks the segment LOST, and the chain ends FAILED then, not left running with nothing
    live until a studio restarts."""
    chains = services(stack, tmp_path)
    studio = chains.studio
    try:
        checked = chains.storyboard_check(values(), "a heron\nthe heron flies")
        cid = chains.store.create("storyboard", checked.plan, None, None)
        # what the replica that died leaves: the segment's row, no job id, its lease run out
        first = studio.ledger.create(
            template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
            gpu="H100 PRO", chain={"id": cid, "index": 0, "parent": None},
            owner="gone-replica", lease_s=-1,
        )  # fmt: skip
        studio.tracker._scan()  # another replica's lease scan (every lease/3 s)
        finished(chains, cid, 30)
        chain = chains.chain(cid, ANYONE)
        assert studio.ledger.get(first).state == "LOST"
        assert chain.state == "FAILED" and "segment 1 ended LOST" in chain.error
    finally:
        studio.tracker.stop()


def test_a_chain_its_replica_stopped_moving_on_is_carried_on_by_the_lease_scan(stack, tmp_path):
    """The replica moving a chain on died between a segment's end and the next segment's row
    (or while stitching, or its hook failed): the chain has nothing under way, and any
    replica's lease scan carries it on after a lease's time, not only a restart of that
    replica on its own data folder."""
    chains = services(stack, tmp_path, lease_s=2.0)  # scans every 2/3 s
    dropped: list[str] = []

    def dies_once(rid: str) -> None:  # the replica stops where its end-of-job hook ran
        if not dropped:
            dropped.append(rid)
            raise RuntimeError("the replica stopped here")
        Chains.on_final(chains, rid)

    chains.on_final = dies_once
    try:
        cid = chains.storyboard(values(), "a heron\nthe heron flies")
        finished(chains, cid, 60)
        chain = chains.chain(cid, ANYONE)
        assert chain.state == "COMPLETED", chains.view(cid, ANYONE).line
        assert [s.state for s in chains.segments(chain)] == ["COMPLETED", "COMPLETED"]
        assert dropped == [chains.store.segment_ids(cid)[0]]  # segment 1's end was lost
        assert not chains.store.finish(cid, state="FAILED")  # its end is written once
        assert chains.chain(cid, ANYONE).state == "COMPLETED"
    finally:
        chains.studio.tracker.stop()


def test_a_segment_sent_after_its_chain_ended_elsewhere_is_cancelled(stack, tmp_path):
    """This replica was frozen past its lease while segment 2's /run was answering: another
    replica took the row for abandoned (LOST) and ended the chain FAILED on it. When the
    answer comes the row is live again (the job exists), but the chain no longer wants it:
    the segment is cancelled, not run and billed outside the chain, and the chain keeps the
    end the other replica wrote."""
    import requests

    from app.studio.tracker import UNANSWERED

    chains = services(stack, tmp_path, lease_s=300.0)  # no scan of its own renews it here
    studio = chains.studio
    try:
        cid = chains.storyboard(values(2.0), "a heron\nthe heron flies")
        first = chains.store.segment_ids(cid)[0]
        wait_for(lambda: studio.ledger.get(first).job_id, 30, "segment 1 sent")
        slow = {"delay_s": 4, "count": 1, "ops": ["run"]}  # segment 2's /run answers late
        auth = {"Authorization": stack.api_key}
        requests.post(
            f"{stack.plane_url}/emulator/faults", json=slow, headers=auth
        ).raise_for_status()
        wait_for(lambda: len(chains.store.segment_ids(cid)) == 2, 60, "segment 2's row")
        second = chains.store.segment_ids(cid)[1]
        assert studio.ledger.get(second).job_id is None  # its /run is being answered
        # the other replica: the lease ran out, its scan marks the row LOST, its hook ends
        # the chain
        studio.ledger.db.execute("UPDATE jobs SET lease_until=0 WHERE id=?", (second,))
        assert studio.ledger.abandon(second, UNANSWERED)
        Chains(studio).advance(cid)
        ended = chains.chain(cid, ANYONE)
        assert ended.state == "FAILED" and "segment 2 ended LOST" in ended.error
        row = wait_for(lambda: (r := studio.ledger.get(second)).final and r.job_id and r, 60,
                       "segment 2 sent and ended")  # fmt: skip
        assert row.state == "CANCELLED", (row.state, row.error)
        assert row.result_path is None
        after = chains.chain(cid, ANYONE)
        assert (after.state, after.error, after.finished_at) == (
            "FAILED", ended.error, ended.finished_at)  # fmt: skip
        assert stitch.frame_count(Path(after.result_path)) == 33  # segment 1 alone
    finally:
        studio.tracker.stop()


def test_a_storyboard_whose_start_image_cannot_be_kept_is_not_started(stack, tmp_path):
    """The chain's start image is kept for its rerun before anything is sent; when it cannot
    be (here the chains folder is a file), the storyboard is refused saying why, and its chain
    is ended: a restarted studio does not send it later."""
    from app.errors import SubmitError
    from tests.helpers import png_bytes

    image = tmp_path / "start.png"
    image.write_bytes(png_bytes(832, 480))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "chains").write_text("not a folder")
    chains = services(stack, tmp_path)
    try:
        i2v = FormValues(pipeline="i2v_14b", prompt="a lake", resolution="480p landscape",
                         seconds=1.0, start_image=str(image), seed=3, randomize=False)  # fmt: skip
        with pytest.raises(SubmitError) as refused:
            chains.storyboard(i2v, "a lake\nthe lake at dusk")
        assert "start image could not be kept" in str(refused.value)
        assert "nothing was sent" in str(refused.value)
        [chain] = chains.store.recent()
        assert chain.state == "FAILED" and chain.finished_at is not None
        assert chains.store.unfinished() == [] and chains.store.segment_ids(chain.id) == []
    finally:
        chains.studio.tracker.stop()


def test_an_image_to_video_storyboard_without_its_image_is_refused_before_any_row(stack, tmp_path):
    """Its quote prices it (its start image a stand-in) and says the image is missing; the
    storyboard itself is refused whole in those words, no chain row written, no job sent."""
    chains = services(stack, tmp_path)
    try:
        i2v = FormValues(pipeline="i2v_14b", prompt="a lake", resolution="480p landscape",
                         seconds=1.0, seed=3, randomize=False)  # fmt: skip
        assert chains.storyboard_check(i2v, "a lake\nthe lake at dusk").quote.dollars > 0
        with pytest.raises(InputError) as refused:
            chains.storyboard(i2v, "a lake\nthe lake at dusk")
        assert str(refused.value) == (
            "start image: Image to video (Wan 2.2 14B) needs a start image; allowed: a PNG, "
            "JPEG or WebP (segment 1 of 2)"
        )
        assert chains.store.recent() == [] and chains.studio.ledger.recent() == []
    finally:
        chains.studio.tracker.stop()


def test_a_prompt_too_large_for_run_on_a_later_line_refuses_the_storyboard_whole(stack, tmp_path):
    """RunPod's /run takes 10 MB: a storyboard whose second prompt makes its segment's request
    larger is refused before its first segment is sent (and billed), naming the field and the
    segment."""
    chains = services(stack, tmp_path)
    try:
        huge = "a heron " * 1_400_000  # 11.2 MB
        with pytest.raises(InputError) as refused:
            chains.storyboard(values(), f"a heron\n{huge}")
        said = str(refused.value)
        assert said.startswith("prompt: the request is 11.2 MB, 11.2 MB of it this field's; "), said
        assert said.endswith("RunPod's /run takes at most 10 MB (segment 2 of 2)"), said[-200:]
        assert chains.store.recent() == [] and chains.studio.ledger.recent() == []
    finally:
        chains.studio.tracker.stop()


def test_a_budget_for_two_segments_refuses_three_before_anything_is_sent(stack, tmp_path):
    probe = services(stack, tmp_path / "probe")
    probe.studio.tracker.stop()
    one = probe.storyboard_check(values(), "one").quote.dollars
    chains = services(stack, tmp_path / "studio", WANPOD_BUDGET_DAILY_USD=f"{one * 2.5:.6f}")
    try:
        assert not chains.storyboard_check(values(), "one\ntwo").refusals
        with pytest.raises(GuardrailError) as refused:
            chains.storyboard(values(), PROMPTS)
        assert "this storyboard's (3 jobs)" in str(refused.value)
        assert chains.studio.ledger.recent() == [] and chains.store.recent() == []
    finally:
        chains.studio.tracker.stop()


def test_the_longest_chain_is_refused_up_front_with_the_reason(stack, tmp_path):
    chains = services(stack, tmp_path, WANPOD_CHAIN_MAX_S="12")
    try:
        with pytest.raises(InputError) as refused:
            chains.storyboard(values(5.0), PROMPTS)
        assert "3 segments make 15.1 s" in str(refused.value)
        assert "at most 12 s per chain (set by WANPOD_CHAIN_MAX_S)" in str(refused.value)
        assert chains.studio.ledger.recent() == []
    finally:
        chains.studio.tracker.stop()


def test_a_storyboard_with_smooth_motion_is_as_long_as_its_interpolated_video(stack, tmp_path):
    """Smooth motion ×2 doubles each segment's frames (2N - 1) and its fps: the chain's length
    (and WANPOD_CHAIN_MAX_S) counts the video its segments write, not the frames sampled."""
    import dataclasses

    chains = services(stack, tmp_path)
    try:
        plain = chains.storyboard_check(values(), PROMPTS)
        assert (plain.frames, plain.seconds) == (3 * 17 - 2, (3 * 17 - 2) / 16)
        smooth = chains.storyboard_check(dataclasses.replace(values(), interpolate=True), PROMPTS)
        assert (smooth.frames, smooth.seconds) == (3 * 33 - 2, (3 * 33 - 2) / 32)
    finally:
        chains.studio.tracker.stop()


def test_each_segment_is_charged_the_price_the_storyboard_was_quoted(stack, tmp_path):
    """The storyboard is quoted whole before anything is sent; each segment sent later (after
    earlier segments moved the calibration: the emulator runs far faster than quoted) keeps
    the price it had on that quote, as a job keeps its quote line's."""
    chains = services(stack, tmp_path)
    try:
        checked = chains.storyboard_check(values(), PROMPTS)
        cid = chains.storyboard(values(), PROMPTS)
        finished(chains, cid)
        chain = chains.chain(cid, ANYONE)
        segs = chains.segments(chain)
        assert chain.state == "COMPLETED" and len(segs) == 3
        assert [s.quote for s in segs] == list(checked.quote.per_job)
        assert sum(s.quote.dollars for s in segs) == pytest.approx(chain.quote["dollars"])
        now = chains.studio.prepare(chains.segment_values(chain.plan, 2, "start.png")).quote
        assert now.dollars != segs[2].quote.dollars  # quoted now, it would cost otherwise
    finally:
        chains.studio.tracker.stop()


def ended_slow(studio, prep) -> None:
    """A job like `prep` finished in 90 s, recorded as the tracker records one: the studio's
    calibration, and so its next quotes, move."""
    import time

    rid = studio.ledger.create(
        template=prep.template_id, mode="turbo", params={}, workflow=prep.filled.workflow,
        quote=prep.quote, gpu=studio.settings.gpu_type,
    )  # fmt: skip
    studio.ledger.update(rid, state="COMPLETED", execution_ms=90_000, finished_at=time.time())
    studio.forget_calibration(rid)


def test_a_storyboard_is_charged_the_prices_its_line_showed(stack, tmp_path):
    """A job ends between the storyboard's quote line and Run storyboard, and the studio learns
    from it (its calibration moves): the storyboard is charged what its line showed, each
    segment at its price there, as a batch's jobs are."""
    import dataclasses

    chains = services(stack, tmp_path)
    studio = chains.studio
    try:
        shown = chains.storyboard_check(values(), PROMPTS).shown()
        # a finished job, recorded as the tracker records one
        ended_slow(studio, studio.prepare(values()))
        now = chains.storyboard_check(values(), PROMPTS)
        assert now.quote.dollars != pytest.approx(shown.dollars)  # the calibration moved
        cid = chains.storyboard(values(), PROMPTS, shown=shown)
        chain = chains.chain(cid, ANYONE)
        assert chain.quote["dollars"] == pytest.approx(shown.dollars)
        priced = [p["quote"] for p in chain.plan["priced"]]
        assert priced == [dataclasses.asdict(q) for q in shown.quotes]
        first = chains.segments(chain)[0]
        assert first.quote == shown.quotes[0]  # sent at its price on the line
        chains.cancel(cid, ANYONE)
    finally:
        studio.tracker.stop()


def test_a_reused_storyboard_fills_the_form_with_its_first_segments_prompt(stack, tmp_path):
    """A storyboard's form prompt is none of its segments' (each line is one): reused, the form
    gets the first segment's (an empty one was refused by Generate), the lines all of them."""
    import dataclasses

    chains = services(stack, tmp_path)
    chains.studio.tracker.stop()
    blank = dataclasses.replace(values(), prompt="")
    cid = chains.store.create(
        "storyboard", chains.storyboard_check(blank, PROMPTS).plan, None, None
    )
    reused, prompts = chains.reuse(cid, ANYONE)
    assert reused.prompt == "a heron lands on the lake" and prompts == PROMPTS
    assert (reused.pipeline, reused.seed, reused.seconds) == ("t2v_14b", 7, 1.0)


def test_an_extension_is_held_to_its_quote_line(stack, tmp_path):
    """Extend the shown job keeps what its line priced: another job's extension is refused,
    naming both prices, and one whose quote moved meanwhile is charged the line's."""
    import dataclasses

    chains = services(stack, tmp_path)
    studio = chains.studio
    try:
        small = studio.submit(values())
        large = studio.submit(dataclasses.replace(values(), resolution="720p landscape"))
        for rid in (small, large):
            wait_for(lambda r=rid: studio.ledger.get(r).final, 60, "the job ended")
        check = chains.extend_check(small, "the heron dives")
        shown = check.shown()
        assert shown.quotes and shown.dollars > 0
        with pytest.raises(InputError) as refused:
            chains.extend(large, "the heron dives", shown=shown)
        assert str(refused.value).startswith("extension quote: the form sent a different ")
        assert f"(${shown.dollars:.4f}); this one is $" in str(refused.value)
        # an image-to-video job (as the extension is) ends slow: the calibration moves
        ended_slow(studio, studio.prepare(chains.segment_values(check.plan, 1, "start.png")))
        assert chains.extend_check(small, "the heron dives").quote.dollars != shown.dollars
        cid = chains.extend(small, "the heron dives", shown=shown)
        chain = chains.chain(cid, ANYONE)
        assert chain.quote["dollars"] == pytest.approx(shown.dollars)
        assert chains.segments(chain)[1].quote == shown.quotes[0]
        chains.cancel(cid, ANYONE)
    finally:
        studio.tracker.stop()


def test_a_refused_segment_is_named_as_a_segment(stack, tmp_path):
    chains = services(stack, tmp_path)
    chains.studio.tracker.stop()
    with pytest.raises(InputError) as refused:
        chains.storyboard_check(values(11.0), PROMPTS)
    said = "duration: 11.0 is not allowed; allowed: 0.25 to 10 in steps of 0.25 (segment 1 of 3)"
    assert str(refused.value) == said
    assert chains.studio.ledger.recent() == []


def test_an_empty_or_unknown_id_is_refused_naming_what_was_wanted(stack, tmp_path):
    chains = services(stack, tmp_path)
    try:
        for cid, said in (
            (" ", "chain: is empty; give the id of a chain of this studio (ch-...)"),
            ("ch-nope", "chain: 'ch-nope' is not a chain of this studio"),
        ):
            with pytest.raises(InputError) as refused:
                chains.rerun(cid)
            assert str(refused.value) == said
        with pytest.raises(InputError) as refused:
            chains.extend("")
        assert str(refused.value) == "job: is empty; give the id of a job of this studio (wp-...)"
        for blank in ("", " \n\t\n"):  # its quote line prices nothing: nothing is sent
            with pytest.raises(InputError) as refused:
                chains.storyboard(values(), blank)
            assert str(refused.value).startswith("storyboard prompts: are empty; write one")
        assert chains.store.recent() == []
    finally:
        chains.studio.tracker.stop()


def test_extend_continues_a_finished_job_from_its_last_frame(stack, tmp_path, png_file):
    chains = services(stack, tmp_path)
    studio = chains.studio
    try:
        first = FormValues(
            pipeline="i2v_14b", prompt="a lake", resolution="480p landscape", seconds=1.0,
            start_image=str(png_file), seed=3, randomize=False,
        )  # fmt: skip
        rid = studio.submit(first)
        wait_for(lambda: studio.ledger.get(rid).final, 60, "the job ended")
        cid = chains.extend(rid, "the lake at dusk", colour_match=True)
        finished(chains, cid)
        chain = chains.chain(cid, ANYONE)
        segs = chains.segments(chain)
        assert chain.state == "COMPLETED" and chain.parent == rid
        assert segs[0].id == rid and segs[1].chain["parent"] == rid
        assert segs[1].params["prompt"] == "the lake at dusk"
        assert segs[1].params.get("width") == segs[0].params.get("width")
        assert stitch.frame_count(Path(chain.result_path)) == 17 + 17 - 1
        longer = chains.extend(cid)  # the chain itself extended: its segments come first
        finished(chains, longer)
        again = chains.chain(longer, ANYONE)
        assert again.state == "COMPLETED" and again.parent == cid
        assert [s.id for s in chains.segments(again)][:2] == [s.id for s in segs]
        assert chains.segments(again)[2].params["prompt"] == "the lake at dusk"
        assert stitch.frame_count(Path(again.result_path)) == 3 * 17 - 2
        rerun = chains.rerun(cid)
        finished(chains, rerun)
        assert chains.chain(rerun, ANYONE).state == "COMPLETED"
        reused, prompts = chains.reuse(cid, ANYONE)  # every segment's prompt: the same shot
        assert prompts == "a lake\nthe lake at dusk" and reused.seed == 3
        assert (reused.pipeline, reused.prompt) == ("i2v_14b", "a lake")  # the first segment's
        assert chains.reuse(longer, ANYONE)[1] == "a lake\nthe lake at dusk\nthe lake at dusk"
        again = chains.storyboard_check(reused, prompts)  # remade as a storyboard: as long
        assert again.frames == chain.frames and len(again.requests) == 2
        Path(segs[0].result_path).unlink()  # the first job's video removed from the results
        for target, field in ((rid, "job"), (cid, "chain")):
            with pytest.raises(InputError) as refused:
                chains.extend(target)
            assert str(refused.value).startswith(f"{field}: {rid}'s video cannot be read any")
    finally:
        studio.tracker.stop()


def _frames(video: Path) -> list:
    import av

    with av.open(str(video)) as c:
        return [f.to_image() for f in c.decode(video=0)]


def _image(path: Path):
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")
