"""When the tracker asks RunPod about a job next. Pure: the caller passes the time in.

Polling faster than needed spends `/status` calls (RunPod allows 2000 per 10 s per endpoint);
polling slower delays the result by up to one interval. The schedule:
- queued: back off from `poll_s` by x1.5 up to QUEUED_MAX_S;
- running: every `poll_s`, except near the end. A job is near its end when it is past sampling
  (decoding, saving, delivering), or when its own sampling pace (the progress fractions seen so
  far, and when the worker reached each, `Pace`) predicts that sampling ends within about one
  interval.
  Then it is polled every FINISHING_POLL_S, so COMPLETED is seen ~0.1 s after it happens on
  average instead of poll_s / 2;
- the fast polls of all jobs together stay under STATUS_BUDGET_PER_S (half RunPod's /status
  limit): a token bucket (`Budget`) lets one through at a time. The limit is the endpoint's, so
  replicas of the studio on one ledger split it: with n of them following jobs, each takes 1/n
  (`Budget.share`; the tracker counts them from the ledger's leases at each scan). Before, each
  took the whole budget, and three replicas ending bursts together could pass RunPod's 200 a
  second and be answered 429. Of the jobs whose fast poll is due, the one that finished
  sampling first (`Pace.end_at`) gets it: a burst of jobs ends about in that order, so the
  budget goes to the jobs about to end rather than round the whole burst. As each ends, its
  share goes to the others at once. (Before: every job near its end
  got a fixed n / budget interval, set at each poll; with 64 jobs decoding together each was
  polled every ~0.6 s, and the last ends of a burst were seen up to that much later.)
  The budget governs only the polls beyond the normal schedule: a job still waiting for a
  token when its normal poll (poll_s after its last) is due is polled then, so near its end it
  is never polled less often than before. (Without this, a job that left sampling after the
  others of a 64-job burst waited up to 2 s: tokens went to the earlier ones.)

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
from dataclasses import dataclass, field

QUEUED_MAX_S = 5.0  # slowest poll while queued
ERROR_MAX_S = 30.0  # slowest poll after endpoint errors
FINISHING_POLL_S = 0.2  # poll interval for a job near its end
STATUS_BUDGET_PER_S = 100.0  # all fast polls together
STATUS_BURST = 10.0  # fast polls let through at once after a quiet spell (0.1 s of the budget)
STATUS_ANSWER_S = 0.25  # a slow-ish /status answer from RunPod's API across the internet
STATUS_CALLS_AT_ONCE = math.ceil(STATUS_BUDGET_PER_S * STATUS_ANSWER_S)  # the tracker's pool
PAST_SAMPLING = ("decoding", "saving", "delivering")  # the worker's stages after sampling
SAMPLING_END = 0.90  # overall fraction where sampling ends (app/studio/progress.py's stage spans)


@dataclass
class Pace:
    """A job's sampling fractions over time: when each new fraction was reached.

    The worker says when: its progress carries `elapsed_s`, its own seconds since the job
    started at that update (worker/progress.py). Those times are exact, where the poll that
    first saw a fraction is up to one interval late: with the bench's 1.25 s steps polled every
    second, poll times put a job's sampling end ~1 s after it happened, so the job was still on
    the normal interval when it ended, and its end was seen up to a second late. The worker's
    clock is mapped onto the poll clock by `lag` (now - elapsed, the smallest seen: the poll
    nearest after an update). Without `elapsed`, the poll times are used (`lag` 0)."""

    first: tuple[float, float] | None = None  # (time, fraction) of the first sampling step seen
    last: tuple[float, float] | None = None  # (time, fraction) when the fraction last changed
    lag: float = 0.0  # poll clock - the points' clock
    polled: bool = True  # the points' times are poll times (no elapsed_s came)
    ended: float | None = None  # when sampling ended, on the poll clock (past_sampling)

    def observe(self, now: float, fraction: float, elapsed: float | None = None) -> None:
        """`fraction` seen at poll time `now`; `elapsed`: the worker's seconds at that update."""
        t = now if elapsed is None else elapsed
        if self.last is not None and (t < self.last[0] or self.polled != (elapsed is None)):
            self.first = self.last = self.ended = None  # another attempt: its clock restarted
        self._seen_at(now, t, polled=elapsed is None)
        if self.last is not None and fraction <= self.last[1]:
            return
        if self.first is None:
            self.first = (t, fraction)
        self.last = (t, fraction)

    def past_sampling(self, now: float, elapsed: float | None = None) -> None:
        """The job is past sampling at poll time `now`; `elapsed`: the worker's seconds at
        that update (when it left sampling), else `now` stands for that time."""
        if self.ended is not None:
            return
        if elapsed is None or (self.polled and self.first is not None):
            self.ended = now  # the poll clock throughout
            return
        self._seen_at(now, elapsed, polled=False)
        self.ended = self.lag + elapsed

    def _seen_at(self, now: float, t: float, polled: bool) -> None:
        """A point at `t` on its clock, seen at poll time `now`: the first sets the clock (and
        whether it is the poll clock), each narrows `lag`."""
        if self.first is None:
            self.lag, self.polled = now - t, polled
        self.lag = min(self.lag, now - t)

    def end_at(self, now: float) -> float:
        """When sampling ended or is predicted to, on the poll clock (`now` when unknown): the
        order in which jobs near their end get the fast polls' tokens, as the jobs of a burst
        end about in the order they finished sampling."""
        if self.ended is not None:
            return self.ended
        left = self.seconds_left(now)
        return now if left is None else now + left

    def seconds_left(self, now: float, end: float = SAMPLING_END) -> float | None:
        """Predicted seconds until the fraction reaches `end` (None: not enough seen yet)."""
        if self.first is None or self.last is None:
            return None
        (t0, f0), (t1, f1) = self.first, self.last
        if t1 <= t0 or f1 <= f0:
            return None
        rate = (f1 - f0) / (t1 - t0)
        return max((end - f1) / rate - (now - self.lag - t1), 0.0)


def elapsed(progress: dict) -> float | None:
    """The worker's `elapsed_s` in a progress update, when it is a usable number."""
    value = progress.get("elapsed_s")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf:
        return float(value)
    return None


def near_end(pace: Pace, now: float, stage: str | None, poll_s: float) -> bool:
    """Past sampling, or sampling predicted to end within about one poll interval."""
    if stage in PAST_SAMPLING:
        return True
    left = pace.seconds_left(now)
    return left is not None and left <= 1.5 * poll_s


def fast_interval(poll_s: float) -> float:
    """The interval for a job near its end, when the budget lets its poll through."""
    return min(poll_s, FINISHING_POLL_S)


@dataclass
class Budget:
    """The fast polls' share of RunPod's /status limit: a token bucket filling at `rate` a
    second up to `burst` tokens; each fast poll takes one. `rate` and `burst` are the whole
    endpoint's: with `replicas` studios following jobs on it, this one fills at 1/replicas of
    them (its bucket holds at least one token)."""

    rate: float = STATUS_BUDGET_PER_S
    burst: float = STATUS_BURST
    replicas: int = 1
    tokens: float = field(init=False)  # full at the start
    at: float | None = field(default=None, init=False)  # when `tokens` was counted

    def __post_init__(self) -> None:
        self.tokens = self.mine()[1]

    def mine(self) -> tuple[float, float]:
        """This replica's (rate, burst)."""
        n = max(1, self.replicas)
        return self.rate / n, max(1.0, self.burst / n)

    def share(self, replicas: int, now: float) -> None:
        """`replicas` studios (this one included) now follow jobs on the endpoint."""
        self._fill(now)
        self.replicas = max(1, replicas)
        self.tokens = min(self.tokens, self.mine()[1])

    def _fill(self, now: float) -> None:
        rate, burst = self.mine()
        if self.at is not None:
            self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now

    def take(self, now: float) -> bool:
        """One poll's token, when there is one."""
        self._fill(now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def ready_at(self, now: float) -> float:
        """When the next token is there (`now` when one is)."""
        self._fill(now)
        return now + max(0.0, 1.0 - self.tokens) / self.mine()[0]


def queued_interval(current: float, poll_s: float) -> float:
    return min(max(current, poll_s) * 1.5, QUEUED_MAX_S)


def error_interval(current: float) -> float:
    return min(current * 2, ERROR_MAX_S)
