"""How often a streamed job's status reaches the page (app/ui/callbacks.py, `Callbacks.watch`):
a new state and the end at once, changes within the same state at most every UPDATE_EVERY_S
(the page's clock counts in between), every yield whole (six values, no gr.skip() but for a
video already sent). Driven by a scripted job on a simulated clock: no waiting."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from app.endpoint.states import JobState
from app.studio.jobs import JobView
from app.studio.owners import Caller
from app.studio.progress import ProgressView
from app.ui import callbacks
from app.ui.callbacks import Callbacks
from app.ui.pace import UPDATE_EVERY_S


def view(state: str, head: str, fraction: float, video: str | None = None) -> JobView:
    final = JobState.parse(state).final
    pv = ProgressView(head, fraction, None, final, None if final else 1.0)
    return JobView("wp-job", JobState.parse(state), pv, video, f"**{head}**", final)


@dataclass
class ScriptedJob:
    """The tracker and studio of one job whose views change at scripted moments; `wait` moves
    the simulated clock to the next change (or by its timeout), as the real tracker's would."""

    changes: list[tuple[float, JobView]]
    now: float = 0.0
    version_: int = 0
    stopped: bool = False
    waits: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.current = self.changes.pop(0)[1]

    def version(self, rid: str) -> int:
        return self.version_

    def wait(self, rid: str, seen: int, timeout: float) -> int:
        self.waits.append(timeout)
        if self.changes and self.changes[0][0] <= self.now + timeout:
            self.now, self.current = self.changes.pop(0)
            self.version_ += 1
        else:
            self.now += timeout
        return self.version_

    def view(self, rid: str, caller: Caller) -> JobView:
        return self.current


def watch(job: ScriptedJob, page: bool = False) -> list[tuple[float, tuple[Any, ...]]]:
    studio = SimpleNamespace(
        tracker=job, view=job.view, ledger=SimpleNamespace(get=lambda *a, **k: None)
    )
    cb = Callbacks(studio, form=None)  # type: ignore[arg-type]
    cb = cb.live() if page else cb
    return [(job.now, out) for out in cb.watch("wp-job", Caller(None, False))]


@pytest.fixture
def clock(monkeypatch):
    holder: dict[str, ScriptedJob] = {}
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: holder["job"].now)
    return holder


def test_steps_within_a_second_are_shown_together_a_new_state_and_the_end_at_once(clock):
    job = clock["job"] = ScriptedJob([
        (0.0, view("IN_QUEUE", "Waiting for a worker", 0.0)),
        (0.2, view("IN_PROGRESS", "Sampling step 1/4", 0.2)),  # a new state: at once
        (0.4, view("IN_PROGRESS", "Sampling step 2/4", 0.4)),  # within a second: held...
        (0.6, view("IN_PROGRESS", "Sampling step 3/4", 0.6)),  # ...and shown at 1.2
        (2.5, view("IN_PROGRESS", "Decoding video (VAE)", 0.9)),  # a second on: at once
        (2.7, view("IN_PROGRESS", "Saving", 0.95)),  # flashes by: not drawn on its own
        (2.9, view("COMPLETED", "Done", 1.0, video="/results/wp-job/v.mp4")),  # the end: at once
    ])  # fmt: skip
    sent = watch(job)
    times = [round(t, 2) for t, _ in sent]
    assert times == [0.0, 0.2, 0.2 + UPDATE_EVERY_S, 2.5, 2.9]
    lines = [out[0] for _, out in sent]
    assert "Waiting for a worker" in lines[0] and "step 1/4" in lines[1]
    assert "step 3/4" in lines[2] and "Decoding" in lines[3] and "Done" in lines[4]
    assert not any("step 2/4" in line or "Saving" in line for line in lines)
    assert all(len(out) == 6 for _, out in sent)
    assert sent[-1][1][1] == "/results/wp-job/v.mp4" and sent[-1][1][3] == "wp-job"


def test_an_unchanged_job_is_resent_every_resync_and_a_sent_video_is_not_resent(clock):
    job = clock["job"] = ScriptedJob([
        (0.0, view("IN_PROGRESS", "Sampling step 1/4", 0.2, video="/results/a.mp4")),
        (5.0, view("IN_PROGRESS", "Sampling step 2/4", 0.4, video="/results/a.mp4")),
        (100.0, view("FAILED", "Failed", 0.4)),
    ])  # fmt: skip
    sent = watch(job)
    times = [round(t, 1) for t, _ in sent]
    assert times[:2] == [0.0, 5.0] and 35.0 in times and times[-1] == 100.0
    assert sent[0][1][1] == "/results/a.mp4"  # the first answer carries the video...
    assert sent[1][1][1] == {"__type__": "update"}  # ...later ones skip it (gr.skip())


def test_the_page_s_own_events_answer_the_first_view_only(clock):
    """The page follows the job on its live stream (app/ui/live_route.py) and asks for the end
    with an event of its own (`Callbacks.final`)."""
    job = clock["job"] = ScriptedJob([
        (0.0, view("IN_QUEUE", "Waiting for a worker", 0.0)),
        (0.2, view("IN_PROGRESS", "Sampling step 1/4", 0.2)),
        (90.0, view("COMPLETED", "Done", 1.0, video="/results/wp-job/v.mp4")),
    ])  # fmt: skip
    sent = watch(job, page=True)
    assert [round(t, 1) for t, _ in sent] == [0.0] and "Waiting" in sent[0][1][0]
    assert job.waits == []  # it did not wait for the job


def test_a_job_that_has_ended_is_answered_whole_at_once(clock):
    job = clock["job"] = ScriptedJob([
        (0.0, view("COMPLETED", "Done", 1.0, video="/results/wp-job/v.mp4")),
    ])  # fmt: skip
    (sent,) = watch(job, page=True)
    assert "Done" in sent[1][0] and sent[1][1] == "/results/wp-job/v.mp4"
