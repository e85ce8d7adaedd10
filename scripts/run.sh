#!/usr/bin/env bash
# The main job: the WanPod studio (`python -m app`). Called by `make run`, which builds .venvs/ first.
# With RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID set it talks to that RunPod endpoint; with neither it
# starts the local stack (ComfyUI emulator + RunPod control plane + real worker processes running
# in the worker's own environment) and says on the page that it is in demo mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export WANPOD_WORKER_PYTHON=${WANPOD_WORKER_PYTHON:-$PWD/.venvs/worker/bin/python}
exec .venvs/app/bin/python -m app "$@"
