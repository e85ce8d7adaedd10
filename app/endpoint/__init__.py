"""RunPod's HTTP API for the studio and the CLI: `requests` only, typed answers parsed once.

This package imports neither the studio (app/studio) nor Gradio (app/ui); its errors are the
`app.errors.EndpointError` tree. The client lives in `app.endpoint.client`; its public names are
handed on here so callers write `from app.endpoint import EndpointClient`.
"""

from app.endpoint.client import (
    EXECUTION_TIMEOUT_ABOVE_MS,
    EXECUTION_TIMEOUT_MAX_MS,
    FINAL_STATES,
    JOB_COUNTS,
    RUN_LIMIT,
    RUNPOD_API_BASE,
    RUNSYNC_LIMIT,
    WORKER_STATES,
    EndpointClient,
    Health,
    JobRef,
    JobStatus,
)

__all__ = [
    "EXECUTION_TIMEOUT_ABOVE_MS",
    "EXECUTION_TIMEOUT_MAX_MS",
    "FINAL_STATES",
    "JOB_COUNTS",
    "RUNPOD_API_BASE",
    "RUNSYNC_LIMIT",
    "RUN_LIMIT",
    "WORKER_STATES",
    "EndpointClient",
    "Health",
    "JobRef",
    "JobStatus",
]
