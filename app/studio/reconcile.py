"""A job the studio lost track of, reconciled with the endpoint while it still knows the job.

When the studio is killed while `/run` is answering, the row has no RunPod id: at the next start
the tracker marks it LOST, saying the job may have run and may cost (its quote counts against
today's budget, app/studio/checks/guardrails.py). RunPod has no API that lists an endpoint's
jobs, but its console shows them; `reconcile(studio, rid, job_id)` attaches that id to the row
after asking `/status` (RunPod keeps it for a while after the job ends), and the tracker follows
the job from there: its result, billed seconds and cost are recorded as for any job.
"""

from __future__ import annotations

import re
from typing import Any

from app.endpoint.states import JobState
from app.errors import InputError, JobNotFound
from app.studio.owners import ANYONE

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def reconcile(studio: Any, rid: str, job_id: str) -> str:
    """Attach RunPod's `job_id` to the LOST row `rid` and follow it; a line for the operator."""
    row = studio.row(rid, ANYONE)  # the operator's tool (no page or API route): any job
    job_id = (job_id or "").strip()
    if row.state is not JobState.LOST or row.job_id:
        raise InputError("job", f"{rid} is {row.state} with RunPod id {row.job_id or '-'}; only "
                         "a LOST job without an id can be reconciled")  # fmt: skip
    if not _JOB_ID.match(job_id):
        raise InputError("RunPod job id", f"{job_id!r} is not a job id (letters, digits, - and _)")
    taken = [r.id for r in studio.ledger.recent(1000) if r.job_id == job_id]
    if taken:
        raise InputError("RunPod job id", f"{job_id} already belongs to {taken[0]}")
    try:
        st = studio.endpoint.status(job_id)
    except JobNotFound:
        raise InputError(
            "RunPod job id",
            f"the endpoint does not know {job_id} (any more); the row stays LOST with its quote "
            "counted",
        ) from None
    state = JobState.parse(st.state)
    live = JobState.IN_PROGRESS if state.final else state  # the tracker records the end itself
    studio.ledger.update(  # free for whichever replica's tracker follows it now
        rid,
        job_id=job_id,
        state=live,
        error=None,
        finished_at=None,
        lease_owner=None,
        lease_until=None,
    )
    studio.tracker.watch(rid)
    return f"Job {rid} is RunPod job {job_id} ({st.state}); following it."
