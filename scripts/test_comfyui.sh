#!/usr/bin/env bash
# The optional real-ComfyUI tier: the worker's end-to-end tests (tests/worker, the ones that use the
# ComfyUI under test) and tests/real_comfyui, against a real ComfyUI checkout started with --cpu and
# 0-byte placeholder model files (tests/real_comfyui/server.py). Called by `make test-comfyui` and
# by scripts/test.sh when COMFYUI_DIR is set.
#   COMFYUI_DIR=/path/to/ComfyUI            the checkout (its main.py)
#   COMFYUI_PYTHON=/path/to/python          optional; else COMFYUI_DIR/venv or COMFYUI_DIR/.venv
# Extra arguments go to pytest (e.g. -k cancel).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${COMFYUI_DIR:-}" ]; then
  echo "== real ComfyUI tier: SKIPPED (COMFYUI_DIR is unset; make test-comfyui COMFYUI_DIR=/path/to/ComfyUI runs it)"
  exit 0
fi
if [ ! -f "$COMFYUI_DIR/main.py" ]; then
  echo "== real ComfyUI tier: COMFYUI_DIR=$COMFYUI_DIR has no main.py (not a ComfyUI checkout)" >&2
  exit 2
fi
export COMFYUI_DIR
export PYTHONDONTWRITEBYTECODE=1
echo "== real ComfyUI tier: $COMFYUI_DIR"
.venvs/worker/bin/python -m pytest tests/worker tests/real_comfyui "$@"
