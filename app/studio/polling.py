"""When the tracker asks RunPod about a job next. Pure: the caller passes the time in.

Polling faster than needed spends `/status` calls (RunPod allows 2000 per 10 s per endpoint);
polling slower delays the result by up to one interval. The schedule:
- queued: back off from `poll_s` by x1.5 up to QUEUED_MAX_S;
- running: every `poll_s`, except near the end. A job is near its end when it is past sampling
  (decoding, saving, delivering), or when its own sampling pace (the progress fractions seen so
  far, and when each was first seen) predicts that sampling ends within about one interval.
  Then it is polled every FINISHING_POLL_S, so COMPLETED is seen ~0.1 s after it happens on
  average instead of poll_s / 2;
- the fast polls of all jobs together stay under STATUS_BUDGET_PER_S (half RunPod's /status
  limit): with many jobs finishing at once, each is polled every n / budget seconds.

The calls themselves: each waits for RunPod's answer, so the tracker can make at most
(calls in flight) / (answer time) a second. `STATUS_CALLS_AT_ONCE` is enough in flight to reach
the budget at STATUS_ANSWER_S. With 8 (the earlier pool) and RunPod's API ~150 ms away, 64 jobs
ending together could be polled only ~53 times a second, and their ends were seen later: the
64-user bench with `--api-latency-ms 150` took 1.44 / 1.34 / 1.32 x the median executionTime with
8, 1.30 / 1.28 / 1.25 with 24, next to the 25 here (same 2-core machine, runs alternated). The
tracker's pool starts a thread only when none is idle, so a quiet studio holds few.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

QUEUED_MAX_S = 5.0  # slowest poll while queued
ERROR_MAX_S = 30.0  # slowest poll after endpoint errors
FINISHING_POLL_S = 0.2  # poll interval for a job near its end
STATUS_BUDGET_PER_S = 100.0  # all fast polls together
STATUS_ANSWER_S = 0.25  # a slow-ish /status answer from RunPod's API across the internet
STATUS_CALLS_AT_ONCE = math.ceil(STATUS_BUDGET_PER_S * STATUS_ANSWER_S)  # the tracker's pool
SAMPLING_END = 0.90  # overall fraction where sampling ends (app/studio/progress.py's stage spans)


@dataclass
class Pace:
    """A job's progress fractions over time: when each new fraction was first seen."""

    first: tuple[float, float] | None = None  # (time, fraction) of the first sampling step seen
    last: tuple[float, float] | None = None  # (time, fraction) when the fraction last changed

    def observe(self, now: float, fraction: float) -> None:
        if self.last is not None and fraction <= self.last[1]:
            return
        if self.first is None:
            self.first = (now, fraction)
        self.last = (now, fraction)

    def seconds_left(self, now: float, end: float = SAMPLING_END) -> float | None:
        """Predicted seconds until the fraction reaches `end` (None: not enough seen yet)."""
        if self.first is None or self.last is None:
            return None
        (t0, f0), (t1, f1) = self.first, self.last
        if t1 <= t0 or f1 <= f0:
            return None
        rate = (f1 - f0) / (t1 - t0)
        return max((end - f1) / rate - (now - t1), 0.0)


def near_end(pace: Pace, now: float, stage: str | None, poll_s: float) -> bool:
    """Past sampling, or sampling predicted to end within about one poll interval."""
    if stage in ("decoding", "saving", "delivering"):
        return True
    left = pace.seconds_left(now)
    return left is not None and left <= 1.5 * poll_s


def fast_interval(poll_s: float, jobs_near_end: int) -> float:
    """The interval for a job near its end, `jobs_near_end` jobs (itself included) being so."""
    shared = max(jobs_near_end, 1) / STATUS_BUDGET_PER_S
    return min(poll_s, max(FINISHING_POLL_S, shared))


def queued_interval(current: float, poll_s: float) -> float:
    return min(max(current, poll_s) * 1.5, QUEUED_MAX_S)


def error_interval(current: float) -> float:
    return min(current * 2, ERROR_MAX_S)
