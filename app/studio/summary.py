"""A job as structured data, for API clients: what the page shows as HTML/Markdown (the status
panel, the details), as one JSON object beside them.

`job_result(row, video)` -> {"job_id", "state", "final", "seed", "parameters", "quote",
"actual_cost", "video", "error"}; `unknown_job(rid)` is the answer for an id the studio does not
know (state "UNKNOWN", with the reason).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from app.studio.ledger import JobRow

UNKNOWN = "UNKNOWN"  # not a JobState: the studio has no such job


def unknown_reason(rid: str) -> str:
    return f"unknown job {rid!r}: not a job of this studio (ids look like wp-...)"


def job_result(row: JobRow, video: str | None) -> dict[str, Any]:
    params = {k: v for k, v in (row.params or {}).items() if not isinstance(v, dict | list)}
    return {
        "job_id": row.id,
        "runpod_id": row.job_id,
        "state": str(row.state),
        "final": row.final,
        "seed": params.get("seed"),
        "parameters": {"pipeline": row.template, "mode": row.mode, **params},
        "quote": dataclasses.asdict(row.quote) if row.quote else None,
        "actual_cost": dataclasses.asdict(row.cost) if row.cost else None,
        "video": video,
        "error": row.error,
    }


def unknown_job(rid: str) -> dict[str, Any]:
    return {"job_id": rid, "state": UNKNOWN, "final": True, "error": unknown_reason(rid)}
