"""RunPod's timings of a job, judged before they become money. Pure.

`executionTime` and `delayTime` come from the endpoint's answer; a hostile or broken answer can
say anything (a negative executionTime once recorded -$1160 and refilled the budget). A timing is
plausible when it is a whole number of milliseconds, not negative, and (executionTime) not beyond
the longest a job may run: its `policy.executionTimeout` ceiling plus a margin for RunPod's
rounding. `plausible_ms` returns the value or None with the reason; the tracker logs the reason
and bills the job at its quote instead (costs are never negative).
"""

from __future__ import annotations

import math

from app.endpoint import EXECUTION_TIMEOUT_MAX_MS

MARGIN_MS = 60_000  # RunPod's own bookkeeping around the executionTimeout


def plausible_ms(
    value: object, name: str, ceiling_ms: float = EXECUTION_TIMEOUT_MAX_MS
) -> tuple[int | None, str]:
    """(value, "") when `value` is a plausible timing in ms, else (None, why)."""
    if value is None:
        return None, ""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None, f"{name}={value!r} is not a number of milliseconds"
    if value < 0:
        return None, f"{name}={value!r} is negative"
    if value > ceiling_ms + MARGIN_MS:
        return None, f"{name}={value!r} ms is beyond the job's limit of {ceiling_ms / 1000:.0f} s"
    return int(value), ""
