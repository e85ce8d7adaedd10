"""RunPod's HTTP API for the studio and the CLI: `requests` only, typed answers parsed once.

This package imports neither the studio (app/studio) nor Gradio (app/ui); its errors are the
`app.errors.EndpointError` tree. The client lives in `app.endpoint.client`; its public names are
handed on here so callers write `from app.endpoint import EndpointClient`.
"""

from app.endpoint.client import (
    FINAL_STATES,
    RUN_LIMIT,
    RUNPOD_API_BASE,
    RUNSYNC_LIMIT,
    EndpointClient,
    Health,
    JobRef,
    JobStatus,
)

__all__ = [
    "FINAL_STATES",
    "RUNPOD_API_BASE",
    "RUNSYNC_LIMIT",
    "RUN_LIMIT",
    "EndpointClient",
    "Health",
    "JobRef",
    "JobStatus",
]
