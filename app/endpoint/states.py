"""A job's state: the one `JobState` the endpoint client, the ledger, the tracker, the checks and
the page share (a `StrEnum`, so it is stored and compared as its RunPod name).

RunPod reports IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED and TIMED_OUT (RUNNING is
read as a running state too). The studio adds two of its own for its ledger: SUBMITTING (the
row is written, /run has not answered yet) and LOST (no answer to /run, or the endpoint no longer
knows the job). UNKNOWN stands for an answer without a state the studio knows.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    SUBMITTING = "SUBMITTING"
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    LOST = "LOST"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, text: object) -> JobState:
        """RunPod's `status` text as a JobState (UNKNOWN for anything else)."""
        try:
            return cls(str(text))
        except ValueError:
            return cls.UNKNOWN

    @property
    def live(self) -> bool:
        """Still queued or running: the tracker follows it."""
        return self in LIVE

    @property
    def running(self) -> bool:
        """A worker has it (its progress is in /status)."""
        return self in RUNNING

    @property
    def final(self) -> bool:
        """It ended: nothing about it changes any more."""
        return self in FINAL


RUNNING = frozenset({JobState.IN_PROGRESS, JobState.RUNNING})
LIVE = frozenset({JobState.SUBMITTING, JobState.IN_QUEUE, *RUNNING})
ENDED_ON_RUNPOD = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT}
)
FINAL = ENDED_ON_RUNPOD | {JobState.LOST}
