#!/usr/bin/env bash
# WanPod worker entry point (the image's CMD). It replaces the base image's /start.sh
# (runpod-workers/worker-comfyui 5.8.5, src/start.sh) and keeps what that one does:
#   - tcmalloc: LD_PRELOAD the first libtcmalloc.so.N ldconfig knows (less memory fragmentation
#     when ComfyUI loads and frees large models); skipped with a note when there is none;
#   - GPU check: before ComfyUI starts, torch must initialise CUDA and name device 0, else exit 1
#     at once with the error (a worker on a broken GPU would otherwise take jobs and fail each);
#     WANPOD_GPU_CHECK=false skips it (CPU-only runs), WANPOD_GPU_CHECK_CMD replaces the check;
#   - ComfyUI-Manager offline: `comfy-manager-set-mode offline`, so no start-up registry fetches;
#   - ComfyUI logs to stdout (--log-stdout, so RunPod's log view has them) and does not embed the
#     workflow in output files (--disable-metadata, the base's choice: prompts stay out of the
#     files delivered to clients); COMFY_LOG_LEVEL sets --verbose (ComfyUI's default INFO when
#     unset, where the base defaults to DEBUG).
# Then: report the network volume and RunPod cached models, start ComfyUI with the generated
# extra model paths, wait until it answers, start the RunPod handler, and stop with a clear
# message and a non-zero code if ComfyUI dies. Arguments are passed on to the handler
# (e.g. --test_input '{...}' or --rp_serve_api). Not kept: the base's SSH server (PUBLIC_KEY).
#
# Environment (defaults fit the image; tests point them at the emulator):
#   COMFY_CMD                  ComfyUI command           (python -u /comfyui/main.py)
#   COMFY_EXTRA_ARGS           extra ComfyUI arguments   (empty)
#   COMFY_HOST                 host:port ComfyUI listens on and the handler uses (127.0.0.1:8188)
#   COMFY_PID_FILE             where ComfyUI's pid goes  (/tmp/comfyui.pid)
#   COMFY_START_TIMEOUT_S      seconds to wait for ComfyUI (600)
#   COMFY_LOG_LEVEL            passed as --verbose LEVEL to ComfyUI when set
#   EXTRA_MODEL_PATHS_CONFIG   ComfyUI's extra_model_paths.yaml (default: generated for the
#                              volume roots and the cached models found, see worker/volume.py)
#   WANPOD_VOLUME_PATHS        volume roots to look for, ':'-separated (/runpod-volume:/workspace)
#   WANPOD_GPU_CHECK           true: fail fast when the GPU does not initialise (true)
#   WANPOD_GPU_CHECK_CMD       the check (python -c: torch.cuda.init(), name of device 0)
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
export COMFY_PID_FILE=${COMFY_PID_FILE-/tmp/comfyui.pid}  # set empty: no pid file, no check
START_TIMEOUT=${COMFY_START_TIMEOUT_S:-600}
WORKER_CMD=${WORKER_CMD:-"$PY -u -m worker.handler"}
YAML=${EXTRA_MODEL_PATHS_CONFIG:-}

log() { echo "wanpod-start: $*"; }
is_true() { case "${1,,}" in 1 | true | yes | on) return 0 ;; *) return 1 ;; esac; }  # as settings.py

# tcmalloc, as the base image does
tcmalloc=""
if command -v ldconfig >/dev/null 2>&1; then
  tcmalloc=$(ldconfig -p 2>/dev/null | grep -Po "libtcmalloc.so.\d" | head -n 1)
fi
if [ -n "$tcmalloc" ]; then
  export LD_PRELOAD="${tcmalloc}${LD_PRELOAD:+:$LD_PRELOAD}"
  log "tcmalloc: $tcmalloc preloaded"
else
  log "tcmalloc: not found; using the default allocator"
fi

# GPU check: fail fast with the reason
GPU_CHECK_PY='
import torch
try:
    torch.cuda.init()
    print(f"OK: {torch.cuda.get_device_name(0)}")
except Exception as e:
    print(f"FAIL: {e}")
    raise SystemExit(1)
'
if is_true "${WANPOD_GPU_CHECK:-true}"; then
  if [ -n "${WANPOD_GPU_CHECK_CMD:-}" ]; then
    # shellcheck disable=SC2086  # a command line by design
    gpu=$($WANPOD_GPU_CHECK_CMD 2>&1); gpu_code=$?
  else
    gpu=$($PY -c "$GPU_CHECK_PY" 2>&1); gpu_code=$?
  fi
  if [ "$gpu_code" -ne 0 ]; then
    log "ERROR: GPU is not available (check exited with code $gpu_code):" >&2
    printf '%s\n' "$gpu" | tail -n 5 | sed 's/^/wanpod-start:   /' >&2
    if [ "$gpu_code" -eq 127 ]; then
      log "ERROR: the GPU check could not run (command not found); on a CPU-only machine set WANPOD_GPU_CHECK=false" >&2
    else
      log "ERROR: this usually means the GPU on this machine is not properly initialised; report the machine to RunPod support" >&2
    fi
    exit 1
  fi
  log "GPU available: ${gpu##*OK: }"
else
  log "GPU check skipped (WANPOD_GPU_CHECK=${WANPOD_GPU_CHECK})"
fi

# ComfyUI-Manager offline, as the base image does
if command -v comfy-manager-set-mode >/dev/null 2>&1; then
  comfy-manager-set-mode offline || log "WARNING: could not set ComfyUI-Manager network_mode offline" >&2
else
  log "ComfyUI-Manager: comfy-manager-set-mode not installed; nothing to set"
fi

if [ -z "${EXTRA_MODEL_PATHS_CONFIG:-}" ]; then
  YAML=$(mktemp -t extra_model_paths-XXXXXX.yaml)
  if ! $PY -m worker.volume --write-yaml "$YAML" || [ ! -s "$YAML" ]; then
    # never an empty yaml for ComfyUI (it stops on one): the shipped one, for the default roots
    log "WARNING: the volume scan failed; ComfyUI gets worker/extra_model_paths.yaml" >&2
    cp "$ROOT/worker/extra_model_paths.yaml" "$YAML"
  fi
else
  $PY -m worker.volume
fi

host=${COMFY_HOST%:*}
port=${COMFY_HOST##*:}
comfy_args=(--listen "$host" --port "$port" --disable-auto-launch --disable-metadata --log-stdout
            --extra-model-paths-config "$YAML")
[ -n "${COMFY_LOG_LEVEL:-}" ] && comfy_args+=(--verbose "$COMFY_LOG_LEVEL")
# shellcheck disable=SC2086  # COMFY_CMD and COMFY_EXTRA_ARGS are word lists by design
$COMFY_CMD "${comfy_args[@]}" ${COMFY_EXTRA_ARGS:-} &
comfy_pid=$!
[ -n "$COMFY_PID_FILE" ] && echo "$comfy_pid" >"$COMFY_PID_FILE"
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
if is_true "${SERVE_API_LOCALLY:-false}"; then
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
