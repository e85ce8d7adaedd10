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


def test_a_job_near_its_end_is_polled_at_the_finishing_interval():
    assert polling.fast_interval(1.0) == polling.FINISHING_POLL_S
    assert polling.fast_interval(0.05) == 0.05  # never slower than a faster configured one


def test_fast_polls_share_the_status_budget():
    budget = polling.Budget(rate=100.0, burst=10.0)
    assert sum(budget.take(0.0) for _ in range(50)) == 10  # a burst, then the rate
    assert budget.ready_at(0.0) == pytest.approx(0.01)
    assert not budget.take(0.005)
    assert budget.take(0.01)
    assert sum(budget.take(1.01) for _ in range(500)) == 10  # refilled up to the burst only
    small = polling.Budget(rate=4.0, burst=1.0)
    assert [small.take(0.0) for _ in range(3)] == [True, False, False]  # starts with its burst
    # over any stretch, at most rate x seconds + burst polls go through
    budget, taken, t = polling.Budget(rate=100.0, burst=10.0), 0, 0.0
    while t < 3.0:
        taken += budget.take(t)
        t += 0.001
    assert 300 <= taken <= 310


def test_replicas_split_the_budget_and_each_keeps_at_least_one_token():
    budget = polling.Budget(rate=100.0, burst=10.0)
    budget.share(2, 0.0)  # another replica follows jobs on the endpoint too
    assert budget.mine() == (50.0, 5.0)
    assert sum(budget.take(0.0) for _ in range(50)) == 5  # its half of the burst
    taken, t = 0, 0.0
    while t < 3.0:
        taken += budget.take(t)
        t += 0.001
    assert 145 <= taken <= 155  # half the rate
    budget.share(1, 3.0)  # the other one's jobs ended
    assert sum(budget.take(4.0) for _ in range(50)) == 10  # the whole burst again
    assert budget.ready_at(4.0) == pytest.approx(4.01)  # and the whole rate
    budget.share(40, 3.0)
    assert budget.mine() == (2.5, 1.0)  # a token at least, or no fast poll would ever pass
    assert polling.Budget(rate=100.0, burst=10.0, replicas=4).tokens == 2.5  # starts with its share


def test_backoffs():
    assert polling.queued_interval(1.0, 1.0) == 1.5
    assert polling.queued_interval(4.0, 1.0) == polling.QUEUED_MAX_S
    assert polling.error_interval(1.0) == 2.0
    assert polling.error_interval(20.0) == polling.ERROR_MAX_S


# A job of the 64-user bench, as the tracker saw it (one poll a second, the machine busy): poll
# time, the worker's elapsed_s in that answer, and the step's fraction. Its sampling ended at the
# worker's 5.0 s, ~6.1 s on the poll clock, and the job was COMPLETED at 6.9 s.
BENCH_POLLS = [(1.14, 0.02, 0.1), (2.16, 0.02, 0.1), (3.16, 1.26, 0.3), (4.16, 2.51, 0.5),
               (5.16, 2.51, 0.5), (6.52, 3.76, 0.7)]  # fmt: skip


def test_the_workers_own_times_show_a_job_near_its_end_that_poll_times_miss():
    by_poll, by_worker = polling.Pace(), polling.Pace()
    for now, elapsed, fraction in BENCH_POLLS:
        by_poll.observe(now, fraction)
        by_worker.observe(now, fraction, elapsed)
    # the polls saw 0.7 a second late: sampling seemed to end 1.8 s after the last poll
    assert by_poll.seconds_left(6.52) == pytest.approx(1.79, abs=0.01)
    assert not polling.near_end(by_poll, 6.52, "sampling", 1.0)
    # the worker's times: 0.16 a second from its 0.02 s on, so 0.9 at its 5.01 s = 6.13 s here
    assert by_worker.lag == pytest.approx(1.12)
    assert by_worker.seconds_left(6.0) == pytest.approx(0.127, abs=0.001)
    assert polling.near_end(by_worker, 6.52, "sampling", 1.0)


def test_a_new_attempt_restarts_the_pace():
    pace = polling.Pace()
    pace.observe(10.0, 0.1, 0.5)
    pace.observe(11.0, 0.5, 1.5)
    pace.observe(30.0, 0.7, 0.4)  # retried elsewhere: the worker's clock started again
    assert pace.first == pace.last == (0.4, 0.7)
    assert pace.lag == pytest.approx(29.6)
    assert pace.seconds_left(30.0) is None


@pytest.mark.parametrize(
    ("progress", "seconds"),
    [
        ({"elapsed_s": 3.5}, 3.5),
        ({"elapsed_s": 2}, 2.0),
        ({}, None),
        ({"elapsed_s": None}, None),
        ({"elapsed_s": True}, None),
        ({"elapsed_s": -1}, None),
        ({"elapsed_s": "3"}, None),
        ({"elapsed_s": float("nan")}, None),
    ],
)
def test_the_workers_elapsed_is_read_only_when_it_is_a_number(progress, seconds):
    assert polling.elapsed(progress) == seconds


def test_a_job_past_sampling_ranks_by_when_the_worker_left_sampling():
    pace = polling.Pace()
    pace.observe(10.0, 0.5, 4.0)  # seen at once: the worker started at 6.0 on the poll clock
    pace.past_sampling(12.3, 5.9)  # seen 0.4 s late: it left sampling at 11.9
    assert pace.end_at(12.3) == pytest.approx(11.9)
    pace.past_sampling(12.5, 6.1)  # a later stage of the same end changes nothing
    assert pace.end_at(12.5) == pytest.approx(11.9)


def test_without_worker_times_the_poll_that_saw_the_end_of_sampling_stands_for_it():
    pace = polling.Pace()
    pace.observe(10.0, 0.5)
    pace.past_sampling(12.3)
    assert pace.end_at(13.0) == 12.3


def test_a_job_still_sampling_ranks_by_its_predicted_end():
    pace = polling.Pace()
    assert pace.end_at(5.0) == 5.0  # nothing known: now
    for now, elapsed, fraction in BENCH_POLLS:
        pace.observe(now, fraction, elapsed)
    assert pace.end_at(6.0) == pytest.approx(6.127, abs=0.001)
