"""Chains: Extend a finished job, or run a Storyboard of N segments, into ONE stitched video.

Each segment after the first is an image-to-video job whose start image is the last frame of the
segment before (decoded at full size with PyAV, kept as a PNG in `<data>/results/chains/<id>/`),
with the same size, fps, mode and seed; its prompt is the segment's own. A text-to-video first
segment continues with image-to-video (`CONTINUES_WITH`). The chain's video is the segments
stitched without the repeated frame at each seam (app/studio/stitch.py).

- `check(...)` (through `storyboard_check` / `extend_check`): every segment filled and quoted,
  the combined quote, the length the video will have, and every limit broken: the per-job limits
  for each segment and the daily / per-user budgets against the WHOLE chain's dollars
  (app/studio/batch.py's arithmetic), and the longest chain (WANPOD_CHAIN_MAX_S) as an InputError.
  `storyboard()` / `extend()` refuse up front, before anything is written or sent, as they do
  a chain any segment of which `Studio.submit` would refuse (`sendable`: the first segment's
  missing image, which its quote priced with a stand-in; a /run body over RunPod's limit).
- The chain lives in the ledger (app/studio/chain_store.py; each segment's job row names its
  chain, index, parent and start frame). Nothing here is a queue: RunPod queues the one live
  segment; the tracker's end-of-job hook (`on_final`) sends the next one the moment the
  previous one is stored, and a starting studio (`resume()`) carries every unfinished chain on.
  Closing the tab or restarting the studio therefore does not break a chain. A chain left with
  nothing under way for a lease's time (the replica advancing it died between a segment's end
  and the next segment's row, or while stitching; its hook failed) is carried on by any
  replica's lease scan (`carry_on`); its end is written once (`ChainStore.finish`), and a
  segment whose /run answered after its chain had ended (its replica frozen past its lease
  meanwhile) is cancelled.
- `cancel(cid)`: no further segment is sent, the live one is cancelled; the finished segments
  and their stitched video are kept. A failed segment ends the chain FAILED the same way.
- Colour match (off by default): each new start frame's histogram is matched to the previous
  segment's first frame (stitch.colour_match), pulling a drifting exposure or tint back.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from app.endpoint.states import JobState
from app.errors import GuardrailError, InputError, SegmentSent, SubmitError, user_message
from app.studio import stitch
from app.studio.batch import BatchPlan, BatchQuote, BatchService, held, parse_prompts
from app.studio.chain_history import ChainView, describe, is_chain
from app.studio.chain_store import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    ChainRow,
    ChainStore,
)
from app.studio.checks.guardrails import Refusal
from app.studio.cost import CostRequest, Quote
from app.studio.forms import FormValues, resolve_seed
from app.studio.ledger import JobRow
from app.studio.owners import ANYONE, Caller
from app.studio.shown import BatchShown, Shown, check_batch_shown

log = logging.getLogger("wanpod.chains")

CONTINUES_WITH = {"t2v_14b": "i2v_14b", "flf2v_14b": "i2v_14b"}  # same size and fps (16)
VIDEO_NAME = "chain.mp4"


@dataclass(frozen=True)
class ChainCheck:
    kind: str
    plan: dict[str, Any]
    quote: BatchQuote  # of the segments still to send
    frames: int  # of the stitched video (seams counted once)
    seconds: float
    refusals: tuple[Refusal, ...]
    requests: tuple[CostRequest, ...] = ()  # the segments' cost inputs, in order

    def shown(self) -> BatchShown:
        """What a quote line showing this check prices (app/studio/shown.py): each segment's
        cost inputs and quote."""
        return BatchShown((), self.requests, self.quote.dollars, self.quote.per_job)

    def held(self, shown: BatchShown | None) -> ChainCheck:
        """This check at the prices its quote line showed (batch.held, as a batch's jobs)."""
        return dataclasses.replace(self, quote=held(shown, self.quote))

    def summary(self) -> str:
        n = len(self.plan["prompts"])
        what = "Storyboard" if self.kind == "storyboard" else "Extend"
        return (
            f"**{what}:** {n} new segment{'s' if n != 1 else ''} → one video of {self.frames} "
            f"frames ≈ {self.seconds:.1f} s · {self.quote.summary('the chain', 'segment')}"
        )


class Chains:
    """Extend / Storyboard through the studio's public methods (their checks all apply)."""

    def __init__(self, studio: Any) -> None:
        self.studio = studio
        self.store = ChainStore(studio.ledger)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._carrying = threading.Lock()  # held while stalled chains are carried on
        self._cond = threading.Condition()

    def folder(self, cid: str) -> Path:
        """The chain's start frames and video, inside the results folder the page may serve."""
        return Path(self.studio.settings.data_dir) / "results" / "chains" / cid

    # -- planning ----------------------------------------------------------------------------
    def _plan(self, values: FormValues, prompts: list[str], colour_match: bool) -> dict[str, Any]:
        if not prompts:
            raise InputError("storyboard prompts", "are empty; write one prompt per line")
        base = dataclasses.replace(values, seed=resolve_seed(values), randomize=False)
        return {
            "values": dataclasses.asdict(base),
            "prompts": prompts,
            "colour_match": colour_match,
        }

    def segment_values(self, plan: dict[str, Any], index: int, start: str | None) -> FormValues:
        """The form values segment `index` is sent with (`start`: its start image)."""
        base = FormValues(**plan["values"])
        offset = len(plan.get("done", ()))  # an Extend's parent is segment 0
        prompt = plan["prompts"][index - offset]
        if index == 0:
            return dataclasses.replace(base, prompt=prompt)
        pipeline = CONTINUES_WITH.get(base.pipeline, base.pipeline)
        form = self.studio.form(pipeline)
        if not form.needs_start or form.byo:
            raise InputError("pipeline", f"{base.pipeline!r} cannot continue from a frame")
        return dataclasses.replace(
            base, pipeline=pipeline, prompt=prompt, start_image=start, end_image=None
        )

    def check(self, kind: str, plan: dict[str, Any], user: str | None = None) -> ChainCheck:
        offset = len(plan.get("done", ()))
        jobs = [
            self.segment_values(plan, offset + i, "start.png") for i in range(len(plan["prompts"]))
        ]
        what = "storyboard" if kind == "storyboard" else "extension"
        checked = BatchService(self.studio).check(
            BatchPlan(tuple(jobs), tuple(plan["prompts"]), (jobs[0].seed or 0,)),
            user,
            what,
            part="segment",
            done=offset,
        )
        # each segment's video as its workflow writes it (Smooth motion doubles the frames
        # and the fps), else as its form makes it
        outputs = checked.outputs or (None,) * len(jobs)
        made = [(out.frames, out.fps) if out is not None else
                (self.studio.form(v.pipeline).frames(v.seconds), self.studio.form(v.pipeline).fps)
                for out, v in zip(outputs, jobs, strict=True)]  # fmt: skip
        fps = made[-1][1]
        frames = sum(n for n, _ in made)
        frames += sum(plan.get("done_frames", ()))
        frames -= offset + len(jobs) - 1  # each seam's repeated frame is dropped
        seconds = frames / fps
        most = float(self.studio.settings.chain_max_s)
        if seconds > most:
            raise InputError(
                what,
                f"{offset + len(jobs)} segments make {seconds:.1f} s ({frames} frames at {fps:g} "
                f"fps); allowed: at most {most:g} s per chain (set by WANPOD_CHAIN_MAX_S)",
            )
        return ChainCheck(
            kind, plan, checked.quote, frames, seconds, checked.refusals, checked.requests
        )

    def storyboard_check(
        self, values: FormValues, prompts_text: str, colour_match: bool = False, user=None
    ) -> ChainCheck:
        prompts = list(parse_prompts(prompts_text))  # none: refused, as its line prices none
        return self.check("storyboard", self._plan(values, prompts, colour_match), user)

    def extend_check(
        self, rid: str, prompt: str = "", colour_match: bool = False, user=None
    ) -> ChainCheck:
        if is_chain(rid):
            return self._extend_chain_check(rid, prompt, colour_match, user)
        parent = self.studio.row(rid, self.studio.caller(user))  # the user's own job only
        if parent.state is not JobState.COMPLETED or not parent.result_path:
            raise InputError("job", f"{rid} has no finished video to extend ({parent.state})")
        if parent.form is None:
            raise InputError("job", f"{rid} was not sent from the form; it cannot be extended")
        plan = self._plan(parent.form, [prompt.strip() or parent.form.prompt], colour_match)
        plan["done"] = [parent.id]
        plan["done_frames"] = [self._frames_of(parent, "job")]
        plan["extends"] = parent.id
        return self.check("extend", plan, user)

    def _extend_chain_check(self, cid: str, prompt: str, colour_match: bool, user) -> ChainCheck:
        """A finished chain extended: its segments are the new chain's first ones."""
        chain = self.chain(cid, self.studio.caller(user))
        if chain.finished_at is None or chain.state != COMPLETED:
            state = chain.state if chain.finished_at is not None else RUNNING
            raise InputError("chain", f"{cid} has no finished video to extend ({state})")
        segs = self.segments(chain)
        last = str((segs[-1].params or {}).get("prompt") or "")
        base = FormValues(**chain.plan["values"])  # the first segment's, seed included
        plan = self._plan(base, [prompt.strip() or last], colour_match)
        plan["done"] = [s.id for s in segs]
        plan["done_frames"] = [self._frames_of(s, "chain") for s in segs]
        plan["extends"] = cid
        return self.check("extend", plan, user)

    # -- starting ----------------------------------------------------------------------------
    def storyboard(
        self,
        values: FormValues,
        prompts_text: str,
        colour_match: bool = False,
        user=None,
        shown: BatchShown | None = None,
    ) -> str:
        """`shown`: what the page's quote line priced (None for an API client): another
        storyboard is refused, nothing sent (app/studio/shown.py); this one is charged the
        prices it showed."""
        checked = self.storyboard_check(values, prompts_text, colour_match, user)
        return self._start(checked, user, shown, "storyboard")

    def extend(
        self,
        rid: str,
        prompt: str = "",
        colour_match: bool = False,
        user=None,
        shown: BatchShown | None = None,
    ) -> str:
        """`shown`: what the extension's quote line priced (None: no line, an API client or
        History's Extend): another extension is refused, this one charged at its prices."""
        checked = self.extend_check(rid, prompt, colour_match, user)
        return self._start(checked, user, shown, "extension")

    def rerun_check(self, cid: str, user: str | None = None) -> ChainCheck:
        """What rerunning the chain would send and cost, priced now (the page shows it and asks
        before Confirm rerun chain)."""
        chain = self.chain(cid, self.studio.caller(user))
        plan = dict(chain.plan)
        if chain.kind == "storyboard" and plan["values"].get("start_image"):
            plan["values"] = {**plan["values"], "start_image": str(self._kept_start(chain))}
        return self.check(chain.kind, plan, user)

    def rerun(self, cid: str, user: str | None = None, shown: BatchShown | None = None) -> str:
        """The chain's plan again (same prompts, same seed) as a new chain; limits apply.
        `shown`: what the page's rerun question priced (None for an API client): held to it,
        as a storyboard is to its line."""
        return self._start(self.rerun_check(cid, user), user, shown, "chain rerun")

    def reuse(self, cid: str, caller: Caller) -> tuple[FormValues, str]:
        """The chain's base form values (its first segment's, its prompt included) and every
        segment's prompt in order, one per line (an Extend's earlier segments first): run as
        a storyboard, they make the same shot again."""
        chain = self.chain(cid, caller)
        prompts = self.prompts(chain)
        # the first segment's prompt: a storyboard's form prompt was none of its segments'
        values = dataclasses.replace(FormValues(**chain.plan["values"]), prompt=prompts[0])
        if chain.kind == "storyboard" and values.start_image:
            values = dataclasses.replace(values, start_image=str(self._kept_start(chain)))
        return values, "\n".join(prompts)

    def prompts(self, chain: ChainRow) -> list[str]:
        """Every segment's prompt in order: the segments it continues (an Extend's, as they
        ran), then its own (its plan's)."""
        done = [self.studio.ledger.get(r, workflow=False) for r in chain.plan.get("done", ())]
        ran = [str((r.params or {}).get("prompt") or "") for r in done if r is not None]
        return ran + list(chain.plan["prompts"])

    def _kept_start(self, chain: ChainRow) -> Path:
        """The storyboard's kept start image (`start_0.<ext>`, the plan's), this replica's or
        the result store's (`Studio.kept_input`)."""
        name = Path(str(chain.plan["values"].get("start_image") or "")).name
        kept = self.studio.kept_input(chain.id, name, self.folder(chain.id))
        if kept is None:
            raise InputError("chain", f"{chain.id}'s start image was not kept; upload it again")
        return kept

    def sendable(self, plan: dict[str, Any], user: str | None) -> None:
        """Refuse the chain whole, before any row is written or job sent, for what
        `Studio.submit` would refuse of any segment (`Studio.sendable`): the first one's
        images (the form's: its quote priced a stand-in) and every one's /run body (a later
        one's start frame, made when it is sent, not counted)."""
        offset = len(plan.get("done", ()))
        n = offset + len(plan["prompts"])
        for k in range(offset, n):
            start = plan["values"].get("start_image") if k == 0 else None
            try:
                self.studio.sendable(self.segment_values(plan, k, start), user, frame=k > 0)
            except InputError as exc:
                if n == 1:
                    raise
                raise type(exc)(exc.field, f"{exc.reason} (segment {k + 1} of {n})") from None

    def _start(
        self, checked: ChainCheck, user: str | None, shown: BatchShown | None, what: str
    ) -> str:
        """Start the chain `checked` priced: refused when it is not the `what` its quote line
        (`shown`; None: no line) priced, else held to that line's prices; then every limit and
        what `Studio.submit` would refuse, before anything is written or sent."""
        check_batch_shown(shown, checked.requests, checked.quote.dollars, what)
        checked = checked.held(shown)
        if checked.refusals:
            raise GuardrailError(list(checked.refusals))
        self.sendable(checked.plan, user)
        q = checked.quote
        quote = {"dollars": q.dollars, "gpu_s": q.gpu_s, "gpu": q.gpu, "summary": checked.summary()}
        quote |= {"frames": checked.frames, "seconds": checked.seconds}
        plan = dict(checked.plan)
        plan["priced"] = [  # each segment still to send, at the price the chain was quoted
            {"request": dataclasses.asdict(r), "quote": dataclasses.asdict(p)}
            for r, p in zip(checked.requests, q.per_job, strict=True)
        ]
        cid = self.store.create(checked.kind, plan, quote, user, plan.get("extends"))
        start = plan["values"].get("start_image")
        if checked.kind == "storyboard" and start:  # kept for the chain's rerun
            kept = self.folder(cid) / f"start_0{Path(start).suffix or '.png'}"
            try:
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(start, kept)
            except OSError as exc:  # nothing sent: the chain ends now (no restart sends it)
                where = self.folder(cid).parent
                error = (
                    f"its start image could not be kept in {where} "
                    f"({exc.strerror or type(exc).__name__}); nothing was sent"
                )
                self.store.update(cid, state=FAILED, error=error, finished_at=time.time())
                raise SubmitError(f"the storyboard was not started: {error}") from None
            plan["values"] = {**plan["values"], "start_image": str(kept)}
            self.store.update(cid, plan=plan)
        self.advance(cid)
        if checked.kind == "storyboard" and start:  # for the other replicas (Studio.share_inputs)
            self.studio.share_inputs(cid, [Path(plan["values"]["start_image"])])
        chain = self.chain(cid, ANYONE)  # the chain just made
        if chain.state == FAILED and not self.store.segment_ids(cid):
            raise SubmitError(str(chain.error))  # "segment 1 was not sent: …"
        return cid

    # -- running -----------------------------------------------------------------------------
    def chain(self, cid: str | None, caller: Caller) -> ChainRow:
        """The chain `cid` when `caller` may see it (app/studio/owners.py: its user's, or an
        admin's), else an InputError like an unknown chain's; an empty id is said to be empty."""
        cid = (cid or "").strip()
        if not cid:
            raise InputError("chain", "is empty; give the id of a chain of this studio (ch-...)")
        chain = self.store.get(cid)
        if chain is None or not caller.sees(chain.user):
            raise InputError("chain", f"{cid!r} is not a chain of this studio")
        return chain

    def segments(self, chain: ChainRow) -> list[JobRow]:
        """The chain's segments in order (an Extend's parent job first)."""
        rids = list(chain.plan.get("done", ())) + self.store.segment_ids(chain.id)
        rows = [self.studio.ledger.get(r, workflow=False) for r in rids]
        return [r for r in rows if r is not None]

    def attach(self, tracker: Any) -> None:
        """Chain this service's end-of-job hook after the tracker's existing one; the lease
        scan carries stalled chains on (`carry_on`)."""
        before = tracker.on_final

        def on_final(rid: str) -> None:
            if before is not None:
                before(rid)
            self.on_final(rid)

        tracker.on_final = on_final
        tracker.on_scan = self.carry_on

    def on_final(self, rid: str) -> None:
        """The tracker's end-of-job hook: a segment ended, so its chain moves on."""
        row = self.studio.ledger.get(rid, workflow=False)
        if row is not None and row.chain:
            self.advance(str(row.chain["id"]))

    def resume(self) -> None:
        """Carry on every unfinished chain (a studio starting again after a stop)."""
        for chain in self.store.unfinished():
            try:
                self.advance(chain.id)
            except Exception:
                log.exception("chains: resuming %s failed", chain.id)

    def stalled(self, idle_s: float) -> list[str]:
        """The unfinished chains with no live segment whose last change (the chain's row, its
        last segment's) is `idle_s` or more ago: no replica is moving them on."""
        now, out = time.time(), []
        for chain in self.store.unfinished():
            segs = self.segments(chain)
            if any(s.live for s in segs):
                continue
            changed = [chain.updated_at] + [s.finished_at or s.updated_at for s in segs[-1:]]
            if now - max(changed) >= idle_s:
                out.append(chain.id)
        return out

    def carry_on(self) -> None:
        """The lease scan's hook (every lease/3 s, app/studio/tracker.py): the chains stalled
        for a lease's time are advanced on a thread of their own (sending a segment or
        stitching takes a while; the scan runs on a status-call thread), one batch at a time."""
        idle_s = self.studio.tracker.lease_s
        stalled = self.stalled(idle_s)
        if not stalled or not self._carrying.acquire(blocking=False):
            return

        def run() -> None:
            try:
                for cid in stalled:
                    log.warning(
                        "chains: %s had nothing under way for %.0f s (the replica moving it on "
                        "stopped?): carried on here",
                        cid,
                        idle_s,
                    )
                    try:
                        self.advance(cid)
                    except Exception:
                        log.exception("chains: carrying %s on failed", cid)
            finally:
                self._carrying.release()

        threading.Thread(target=run, name="wanpod-chains", daemon=True).start()

    def _lock(self, cid: str) -> threading.Lock:
        """The chain's lock: one advance (or cancel) of a chain at a time in this studio.
        Across replicas a segment is sent once: its ledger row is written only if the chain
        has none for that index, in the same atomic step as the budget check (`SegmentSent`
        otherwise, Ledger.has_segment)."""
        with self._guard:
            return self._locks[cid]

    def advance(self, cid: str) -> None:
        """Send the next segment, or end the chain; nothing while a segment is live."""
        with self._lock(cid):
            chain = self.store.get(cid)
            if chain is None or chain.finished_at is not None:
                return
            segs = self.segments(chain)
            if any(s.live for s in segs):
                return
            if chain.state != RUNNING:
                return self._end(chain, segs, chain.state, chain.error)
            last = segs[-1] if segs else None
            if last is not None and last.state is not JobState.COMPLETED:
                error = f"segment {len(segs)} ended {last.state}: {last.error or ''}".rstrip(": ")
                return self._end(chain, segs, FAILED, error)
            if len(segs) >= chain.total:
                return self._end(chain, segs, COMPLETED, None)
            try:
                rid = self._send_next(chain, segs)
            except SegmentSent:  # by another replica meanwhile: its end advances the chain
                log.info("chains: %s: segment %d sent by another replica", cid, len(segs) + 1)
            except Exception as exc:
                msg = user_message(exc, self.studio.settings.secret_values())
                self._end(chain, segs, FAILED, f"segment {len(segs) + 1} was not sent: {msg}")
            else:
                self._unwanted(cid, rid)
            self._changed()

    def _unwanted(self, cid: str, rid: str) -> None:
        """Cancel segment `rid` when its chain stopped while it was sent: ended by another
        replica (which took the segment's row for abandoned while this replica was frozen
        past its lease) or cancelled through another replica. It is not part of the chain's
        video any more and would only cost."""
        now = self.store.get(cid)
        if now is None or (now.state == RUNNING and now.finished_at is None):
            return
        log.warning("chains: %s ended %s while its segment %s was sent: cancelled", cid,
                    now.state, rid)  # fmt: skip
        try:
            self.studio.cancel(rid, ANYONE)
        except SubmitError as exc:  # no job id recorded yet, or RunPod refused: said
            log.warning("chains: cancelling %s failed: %s", rid, exc)

    def _send_next(self, chain: ChainRow, segs: list[JobRow]) -> str:
        k = len(segs)
        start: str | None = chain.plan["values"].get("start_image") if k == 0 else None
        parent = segs[-1] if segs else None
        if parent is not None:
            video = self._video(parent)
            frame = stitch.last_frame(video)
            if chain.plan.get("colour_match"):
                frame = stitch.colour_match(frame, stitch.first_frame(video))
            path = self.folder(chain.id) / f"start_{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.save(path, format="PNG")
            start = str(path)
        values = self.segment_values(chain.plan, k, start)
        info = {"id": chain.id, "index": k, "parent": parent.id if parent else None}
        info["start_frame"] = start
        return self.studio.submit(values, user=chain.user, chain=info, keep=self._priced(chain, k))

    def _priced(self, chain: ChainRow, k: int) -> Shown | None:
        """Segment `k`'s cost inputs and price when the chain was quoted (None: a chain
        started before they were kept)."""
        priced = chain.plan.get("priced") or []
        at = k - len(chain.plan.get("done", ()))
        if not 0 <= at < len(priced):
            return None
        return Shown(CostRequest(**priced[at]["request"]), Quote(**priced[at]["quote"]))

    def _frames_of(self, row: JobRow, field: str) -> int:
        """How many frames a finished segment's video has, read from it; an InputError on
        `field` when it can no longer be read (removed from the results folder)."""
        try:
            return stitch.frame_count(self._video(row))
        except (OSError, av.error.FFmpegError) as exc:
            raise InputError(
                field,
                f"{row.id}'s video cannot be read any more ({type(exc).__name__}: it was "
                "removed or damaged); it cannot be extended",
            ) from None

    def _video(self, row: JobRow) -> Path:
        """A segment's video as a local file (fetched once from object storage when the results
        live there, app/studio/store.py)."""
        return self.studio.tracker.store.local(row.result_path) or Path(row.result_path or "")

    def _end(self, chain: ChainRow, segs: list[JobRow], state: str, error: str | None) -> None:
        """Stitch the finished segments (in order, up to the first that did not finish)."""
        done: list[Path] = []
        for seg in segs:
            if seg.state is not JobState.COMPLETED or not seg.result_path:
                break
            done.append(self._video(seg))
        fields: dict[str, Any] = {"state": state, "error": error}
        if done:
            try:
                made = stitch.stitch(done, self.folder(chain.id) / VIDEO_NAME)
                fields |= {"result_path": str(made.path), "frames": made.frames}
                fields["remuxed"] = int(made.remuxed)
            except Exception as exc:
                log.exception("chains: stitching %s failed", chain.id)
                fields["error"] = (error + "; " if error else "") + (
                    f"the segments could not be stitched ({type(exc).__name__})"
                )
        if not self.store.finish(chain.id, **fields):
            log.info("chains: %s was ended meanwhile by another replica; its end is kept", chain.id)
        self._changed()

    def cancel(self, cid: str, caller: Caller) -> str:
        """No further segment; the live one is cancelled; finished segments are kept."""
        chain = self.chain(cid, caller)
        with self._lock(cid):  # a segment being sent (or the video stitched) comes first
            if not self.store.stop(cid, CANCELLED, "cancelled by the operator"):
                ended = self.store.get(cid) or chain
                return f"Chain {cid} already ended {ended.state}."
            live = [s for s in self.segments(chain) if s.live and s.job_id]
        for seg in live:
            self.studio.cancel(seg.id, ANYONE)  # the chain's own segments
        self.advance(cid)
        return f"Chain {cid} cancelled: no further segment is sent; finished ones are kept."

    # -- pages -------------------------------------------------------------------------------
    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait(self, cid: str, timeout: float) -> None:
        """Until the chain or its live segment changed (or `timeout`)."""
        chain = self.store.get(cid)
        live = [s for s in self.segments(chain) if s.live] if chain else []
        tracker = self.studio.tracker
        if live and tracker is not None:
            tracker.wait(live[0].id, tracker.version(live[0].id), timeout)
        else:
            with self._cond:
                self._cond.wait(timeout)

    def view(self, cid: str, caller: Caller) -> ChainView:
        """What a page shows for the chain (app/studio/chain_history.py's `describe`)."""
        return describe(self, self.chain(cid, caller))
