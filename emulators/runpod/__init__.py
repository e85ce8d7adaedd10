"""A local RunPod serverless endpoint: RunPod's public REST API and the worker protocol the
runpod SDK's production loop speaks, driving real worker processes.

Command line: `python -m emulators.runpod --port PORT [options]` (see `cli.py`).
Modules: `jobs` (the job state machine and queue, no I/O), `workers` (the worker processes:
launch, heartbeats, stop signals, scaling), `app` (the aiohttp routes that tie them together),
`cli` (options and serving).
"""

from .app import ControlPlane, RunpodConfig
from .workers import WorkerSpec, default_worker_python

__all__ = ["ControlPlane", "RunpodConfig", "WorkerSpec", "default_worker_python"]
