#!/usr/bin/env bash
# WanPod worker entry point (the image's CMD): report the network volume, start ComfyUI with the
# extra model paths, wait until it answers, start the RunPod handler, and stop with a clear
# message and a non-zero code if ComfyUI dies. Arguments are passed on to the handler
# (e.g. --test_input '{...}' or --rp_serve_api).
#
# Environment (defaults fit the image; tests point them at the emulator):
#   COMFY_CMD                  ComfyUI command           (python -u /comfyui/main.py)
#   COMFY_EXTRA_ARGS           extra ComfyUI arguments   (empty)
#   COMFY_HOST                 host:port ComfyUI listens on and the handler uses (127.0.0.1:8188)
#   COMFY_PID_FILE             where ComfyUI's pid goes  (/tmp/comfyui.pid)
#   COMFY_START_TIMEOUT_S      seconds to wait for ComfyUI (600)
#   COMFY_LOG_LEVEL            passed as --verbose LEVEL to ComfyUI when set
#   EXTRA_MODEL_PATHS_CONFIG   ComfyUI's extra_model_paths.yaml (worker/extra_model_paths.yaml;
#                              generated for WANPOD_VOLUME_PATHS when that is set)
#   WANPOD_VOLUME_PATHS        volume roots to look for, ':'-separated (/runpod-volume:/workspace)
#   NETWORK_VOLUME_DEBUG       true: list every model file found on the volume
#   WORKER_CMD                 the handler command       (python -u -m worker.handler)
#   SERVE_API_LOCALLY          true: serve the SDK's local test API on 0.0.0.0:8000
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT"
PY=${WANPOD_PYTHON:-python}

COMFY_CMD=${COMFY_CMD:-"$PY -u /comfyui/main.py"}
COMFY_HOST=${COMFY_HOST:-127.0.0.1:8188}
export COMFY_HOST
export COMFY_PID_FILE=${COMFY_PID_FILE:-/tmp/comfyui.pid}
START_TIMEOUT=${COMFY_START_TIMEOUT_S:-600}
WORKER_CMD=${WORKER_CMD:-"$PY -u -m worker.handler"}
YAML=${EXTRA_MODEL_PATHS_CONFIG:-$HERE/extra_model_paths.yaml}

log() { echo "wanpod-start: $*"; }

if [ -n "${WANPOD_VOLUME_PATHS:-}" ] && [ -z "${EXTRA_MODEL_PATHS_CONFIG:-}" ]; then
  YAML=$(mktemp -t extra_model_paths-XXXXXX.yaml)
  $PY -m worker.volume --roots "$WANPOD_VOLUME_PATHS" --write-yaml "$YAML"
else
  $PY -m worker.volume
fi

host=${COMFY_HOST%:*}
port=${COMFY_HOST##*:}
comfy_args=(--listen "$host" --port "$port" --disable-auto-launch --extra-model-paths-config "$YAML")
[ -n "${COMFY_LOG_LEVEL:-}" ] && comfy_args+=(--verbose "$COMFY_LOG_LEVEL")
# shellcheck disable=SC2086  # COMFY_CMD and COMFY_EXTRA_ARGS are word lists by design
$COMFY_CMD "${comfy_args[@]}" ${COMFY_EXTRA_ARGS:-} &
comfy_pid=$!
echo "$comfy_pid" >"$COMFY_PID_FILE"
log "ComfyUI starting (pid $comfy_pid) on $COMFY_HOST with $YAML"

stop_all() {
  [ -n "${worker_pid:-}" ] && kill "$worker_pid" 2>/dev/null
  kill "$comfy_pid" 2>/dev/null
  wait 2>/dev/null
}
trap 'stop_all; exit 143' TERM INT

deadline=$((SECONDS + ${START_TIMEOUT%.*}))
until $PY -c "import sys,urllib.request; urllib.request.urlopen('http://$COMFY_HOST/system_stats', timeout=2)" 2>/dev/null; do
  if ! kill -0 "$comfy_pid" 2>/dev/null; then
    wait "$comfy_pid"; code=$?
    log "ERROR: ComfyUI exited with code $code before it was ready; see its output above" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "ERROR: ComfyUI did not answer on $COMFY_HOST within ${START_TIMEOUT}s (COMFY_START_TIMEOUT_S)" >&2
    stop_all
    exit 1
  fi
  sleep 0.2
done
log "ComfyUI is ready on $COMFY_HOST"

worker_args=("$@")
if [ "${SERVE_API_LOCALLY:-false}" = "true" ]; then
  worker_args+=(--rp_serve_api --rp_api_host=0.0.0.0)
fi
# shellcheck disable=SC2086
$WORKER_CMD "${worker_args[@]}" &
worker_pid=$!

wait -n "$comfy_pid" "$worker_pid"
if ! kill -0 "$comfy_pid" 2>/dev/null; then
  wait "$comfy_pid"; code=$?
  log "ERROR: ComfyUI (pid $comfy_pid) exited with code $code while the worker ran; stopping the worker" >&2
  kill "$worker_pid" 2>/dev/null
  wait "$worker_pid" 2>/dev/null
  exit 1
fi
wait "$worker_pid"; code=$?
log "worker exited with code $code; stopping ComfyUI"
kill "$comfy_pid" 2>/dev/null
wait "$comfy_pid" 2>/dev/null
exit "$code"
