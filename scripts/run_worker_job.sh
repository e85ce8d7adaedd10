#!/usr/bin/env bash
# One job through the worker alone: start the local ComfyUI emulator, run one real Wan 2.2 text-to-video job
# (test_input.json) end to end through the worker's handler, and print where the video went.
# Run it with `bash scripts/run_worker_job.sh` after `make venvs`. Options: WANPOD_OUT (default ./out),
# WANPOD_COMFY_PORT (default: a free port), WANPOD_STEP_DELAY (default 0.05 s per sampler step).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venvs/worker/bin/python
OUT=${WANPOD_OUT:-out}
PORT=${WANPOD_COMFY_PORT:-$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
WORK=$(mktemp -d -t wanpod-run-XXXXXX)
mkdir -p "$WORK/input" "$WORK/output" "$WORK/temp"

$PY -m emulators.comfyui --host 127.0.0.1 --port "$PORT" --step-delay "${WANPOD_STEP_DELAY:-0.05}" \
  --input-directory "$WORK/input" --output-directory "$WORK/output" --temp-directory "$WORK/temp" \
  >"$WORK/comfyui.log" 2>&1 &
COMFY_PID=$!
echo "$COMFY_PID" >"$WORK/comfyui.pid"
cleanup() {
  local rc=$?
  kill "$COMFY_PID" 2>/dev/null || true
  wait "$COMFY_PID" 2>/dev/null || true
  if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else echo "ComfyUI emulator log: $WORK/comfyui.log" >&2; fi
}
trap cleanup EXIT
echo "ComfyUI emulator on 127.0.0.1:$PORT (log: $WORK/comfyui.log)"

COMFY_HOST="127.0.0.1:$PORT" COMFY_PID_FILE="$WORK/comfyui.pid" \
COMFY_INPUT_DIR="$WORK/input" COMFY_OUTPUT_DIR="$WORK/output" COMFY_READY_TIMEOUT_S=60 \
  $PY -m worker.local_run test_input.json --out "$OUT"
echo "done: the video is in $OUT/"
