"""The tracker's second half: what happens once the endpoint says a job is COMPLETED or FAILED.

Its outputs are saved by the one rule (app/studio/results.py) into the result store, the job is
billed from plausible timings (app/studio/timings.py; at its quote when refused), a full data
disk keeps the job live and retries, and the final state is written only while this replica
holds the job's lease. `Keeping` is a mixin of `Tracker` (app/studio/tracker.py), which owns the
state it reads: the ledger, store, fetcher, prices, owner, secrets, the thumbnail thread
(`_thumbs`) and the condition guarding `_notes`, `_storing` and `_implausible`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

from app.endpoint.states import JobState
from app.errors import FetchRefused, scrub
from app.studio import cost, disk, history, results, store, timings
from app.studio.db import unavailable

log = logging.getLogger("wanpod.tracker")


class Keeping:
    def _timings(self, rid: str, st: Any) -> dict[str, Any]:
        """The answer's delay and execution times when plausible (app/studio/timings.py); an
        implausible one is logged and not recorded (the job is then billed at its quote)."""
        out: dict[str, Any] = {}
        for name, attr, ceiling in (
            ("delayTime", "delay_ms", timings.EXECUTION_TIMEOUT_MAX_MS),
            ("executionTime", "execution_ms", self.max_execution_s * 1000),
        ):
            value, why = timings.plausible_ms(getattr(st, attr, None), name, ceiling)
            if why:
                log.warning("tracker: %s: implausible timing refused: %s", rid, why)
                if attr == "execution_ms":  # what bills: a bad delay leaves a good run billed
                    self._implausible.add(rid)
            elif value is not None:
                out[attr] = value
        return out

    def _bill(self, rid: str, execution_ms: int | None, delay_ms: int | None, gpu: str):
        """What the job cost; at its quote when the endpoint's timing was refused."""
        if rid in self._implausible:
            row = self.ledger.get(rid, workflow=False)
            if row is not None and row.quote is not None:
                billed = math.ceil(row.quote.execution_s)
                return cost.Actual(billed, billed * row.quote.per_s, (delay_ms or 0) / 1000)
        return cost.actual(execution_ms, delay_ms, gpu, self.prices)

    def _store(self, rid: str, st: Any, execution_ms: int | None = None) -> None:
        try:
            self._store_outputs(rid, st, execution_ms)
        finally:
            with self._cond:
                self._storing.discard(rid)

    def _store_outputs(self, rid: str, st: Any, execution_ms: int | None) -> None:
        def failed(error: str) -> None:  # the endpoint ran it: billed all the same
            row = self.ledger.get(rid, workflow=False)
            bill = self._bill(rid, execution_ms, None, row.gpu if row else "")
            self._finish(rid, JobState.FAILED, error=error,
                         cost=dataclasses.replace(bill, partial=True))  # fmt: skip

        try:
            output = st.output if isinstance(st.output, dict) else {}
            if output.get("error"):
                failed(self._scrub(str(output["error"])))
                return
            saved = results.save_outputs(output, self.store.folder(rid), self.fetcher)
            if not saved:
                failed("the job completed without any output file")
                return
            video = results.main_video(saved)
            kept = self.store.keep(rid, saved)  # lasting locations (uploaded when S3)
            row = self.ledger.get(rid, workflow=False)  # its gpu and recipe
            comfy = output.get("comfyui") if isinstance(output.get("comfyui"), dict) else {}
            comfy_version = comfy.get("version")
            bill = self._bill(rid, execution_ms, None, row.gpu if row else "")
            owned = self._finish(  # the outputs and the final state: one write
                rid,
                JobState.COMPLETED,
                outputs=kept,
                result_path=kept[saved.index(video)]["path"],
                result_mime=video.mime or "video/mp4",
                cost=bill,
                stored_at=time.time(),
                recipe={**((row.recipe or {}) if row else {}), "comfyui_version": comfy_version},
            )
            if not owned:  # our lease ran out while storing: the replica holding it stores it
                log.warning("tracker: %s was taken over by another replica while storing", rid)
                return
            with contextlib.suppress(RuntimeError):  # stopping: the gallery makes it
                self._thumbs.submit(self._keep_thumbnail, rid, video.path)
        except FetchRefused as exc:
            log.warning("tracker: result of %s refused: %s", rid, exc)
            failed(self._scrub(str(exc)))
        except Exception as exc:
            if disk.full(exc):
                self._wait_for_space(rid, exc)
                return
            if unavailable(exc):  # the ledger away for a moment (PostgreSQL restarting): the
                log.warning(  # job stays live and is stored again, not FAILED with its video
                    "tracker: %s: the ledger is unavailable (%s); storing again in %g s",
                    rid,
                    type(exc).__name__,
                    self.retry_s,
                )
                self._again_later(rid)
                return
            if store.unavailable(exc):  # the object store out of reach or answering 5xx: as
                self._store_away(rid, exc)  # for a full disk, the job stays live and is
                return  # stored again (RunPod keeps its result until its retention ends)
            log.warning("tracker: storing results of %s failed: %s", rid, type(exc).__name__)
            failed(f"the result could not be stored ({type(exc).__name__})")

    def _keep_thumbnail(self, rid: str, video: Path) -> None:
        """The video's first frame beside it in the store (the history gallery's picture, so
        another replica need not fetch the video), made on the tracker's one thumbnail thread
        once the job is COMPLETED. Off the path from a job's end to its page: 64 jobs ending
        together spent ~1.4 ms each on it (decoding the first frame, a JPEG) before their rows
        said COMPLETED, while the rest of the burst waited to be stored. A gallery that shows
        the job before it is made makes it from the video (app/studio/history.py); a failure
        (a full disk included) is logged and leaves the job as it is."""
        try:
            thumb = history.thumbnail(video)
            if thumb is not None:
                self.store.put(rid, thumb, "image/jpeg")
        except Exception as exc:
            log.warning("tracker: thumbnail of %s not kept (%s)", rid, type(exc).__name__)

    def _wait_for_space(self, rid: str, exc: BaseException) -> None:
        """The data disk is full: the job stays live (COMPLETED at the endpoint until its
        retention ends) and the store is tried again every disk.RETRY_S; its page says so."""
        self._disk_full(rid, exc)
        self._again_later(rid)

    def _again_later(self, rid: str) -> None:
        """Poll the job (and so store it) again in retry_s."""
        if not self._stop.is_set():
            timer = threading.Timer(self.retry_s, self.watch, (rid,))
            timer.daemon = True
            timer.start()

    def _store_away(self, rid: str, exc: BaseException) -> None:
        """The result store cannot take the files now: the page says so (no key, bucket or
        address: the error's kind only) and the job is stored again in retry_s."""
        text = (
            f"the result store is unavailable ({type(exc).__name__}); the video is stored "
            f"as soon as it answers (trying every {self.retry_s:g} s)"
        )
        self._cannot_store(rid, text, "store unavailable")
        self._again_later(rid)

    def _disk_full(self, rid: str, exc: BaseException) -> None:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        self._cannot_store(rid, disk.message(self.results_dir.parent, why), "disk full")

    def _cannot_store(self, rid: str, text: str, stage: str) -> None:
        """A live job that cannot be stored now: `text` on its page (and in its row, while
        this replica holds it), `stage` as its progress."""
        with self._cond:
            if self._notes.get(rid) != text:
                log.warning("tracker: %s: %s", rid, text)
            self._notes[rid] = text
        # the ledger is on the same disk: when it cannot be written, the note in memory shows
        with contextlib.suppress(Exception):  # while this replica holds the live row
            self.ledger.update_owned(rid, self.owner, progress={"stage": stage}, error=text)
        self._changed(rid)

    def note(self, rid: str) -> str | None:
        """A problem the page must show for a live job (e.g. disk full), None when none."""
        with self._cond:
            return self._notes.get(rid)

    def _finish(self, rid: str, state: JobState, error: str | None = None, **more: Any) -> bool:
        """Write the job's final state (and `more` of its columns, in the same write) while
        this replica holds it; False when another replica does (that one records the end)."""
        with self._cond:
            self._notes.pop(rid, None)
        fields = {"state": state, "error": error, "finished_at": time.time(), **more}
        if not self.ledger.update_owned(rid, self.owner, **fields):
            return False
        self._ended(rid)
        return True

    def _ended(self, rid: str) -> None:
        """Row `rid` was made final here: its pages are told, and the end-of-job hook runs (the
        calibration learns, a chain moves on)."""
        self._changed(rid)
        if self.on_final:
            try:
                self.on_final(rid)
            except Exception:
                log.exception("tracker: on_final hook failed")

    def _scrub(self, text: str) -> str:
        return scrub(text, self.secrets)
