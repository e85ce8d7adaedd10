"""The tracker's poll schedule (app/studio/polling.py): a job is polled fast only when its own pace
says it is about to end, and all fast polls together stay inside the /status budget."""

from __future__ import annotations

import pytest

from app.studio import polling
from app.studio.progress import describe, experts
from workflows.fill import fill

WORKFLOW = fill("t2v_14b", {"prompt": "pace", "mode": "turbo"}).workflow
BY_EXPERT = {expert: nid for nid, expert in experts(WORKFLOW).items()}
HIGH, LOW = BY_EXPERT.get("high-noise", ""), BY_EXPERT.get("low-noise", "")


def fraction(node: str, step: int) -> float:
    progress = {"stage": "sampling", "node": node, "step": step, "steps": 2}
    return describe("IN_PROGRESS", progress, 1.0, None, WORKFLOW).fraction


def test_turbo_steps_map_to_the_fractions_the_pace_reads():
    assert HIGH and LOW and HIGH != LOW
    assert [round(fraction(n, s), 2) for n, s in ((HIGH, 1), (HIGH, 2), (LOW, 1), (LOW, 2))] == [
        0.3,
        0.5,
        0.7,
        0.9,
    ]


def test_a_job_is_near_its_end_about_one_interval_before_sampling_ends():
    # four steps 1.25 s apart (the bench's 5 s job), polled every 1.0 s
    pace = polling.Pace()
    pace.observe(1.25, fraction(HIGH, 1))
    assert pace.seconds_left(1.3) is None  # one point gives no pace
    assert not polling.near_end(pace, 1.3, "sampling", 1.0)
    pace.observe(2.5, fraction(HIGH, 2))
    assert pace.seconds_left(2.5) == pytest.approx(2.5)  # sampling ends at 5.0 s
    assert not polling.near_end(pace, 3.4, "sampling", 1.0)
    assert polling.near_end(pace, 3.6, "sampling", 1.0)
    pace.observe(3.75, fraction(LOW, 1))
    pace.observe(3.9, fraction(LOW, 1))  # the same fraction again keeps its first-seen time
    assert pace.last == (3.75, pytest.approx(0.7))
    assert pace.seconds_left(4.0) == pytest.approx(1.0)


def test_a_slow_real_job_stays_on_the_normal_interval_until_its_last_seconds():
    pace = polling.Pace()  # 8 steps of 30 s each on a real GPU
    for i in range(1, 5):
        pace.observe(30.0 * i, 0.1 + 0.1 * i)
    assert pace.seconds_left(120.0) == pytest.approx(120.0)
    assert not polling.near_end(pace, 200.0, "sampling", 1.0)
    assert polling.near_end(pace, 239.0, "sampling", 1.0)


@pytest.mark.parametrize("stage", ["decoding", "saving", "delivering"])
def test_past_sampling_is_always_near_the_end(stage):
    assert polling.near_end(polling.Pace(), 0.0, stage, 1.0)


def test_fast_polls_share_the_status_budget():
    assert polling.fast_interval(1.0, 1) == polling.FINISHING_POLL_S
    assert polling.fast_interval(1.0, 20) == polling.FINISHING_POLL_S
    assert polling.fast_interval(1.0, 50) == pytest.approx(50 / polling.STATUS_BUDGET_PER_S)
    assert polling.fast_interval(1.0, 1000) == 1.0  # never slower than the normal interval
    assert polling.fast_interval(0.05, 1) == 0.05  # nor slower than a faster configured one


def test_backoffs():
    assert polling.queued_interval(1.0, 1.0) == 1.5
    assert polling.queued_interval(4.0, 1.0) == polling.QUEUED_MAX_S
    assert polling.error_interval(1.0) == 2.0
    assert polling.error_interval(20.0) == polling.ERROR_MAX_S
