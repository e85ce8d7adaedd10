#!/usr/bin/env bash
# Every test, in the environment each part ships with. Called by `make test` (and so by .ci/run).
set -uo pipefail
cd "$(dirname "$0")/.."
export WANPOD_WORKER_PYTHON="$PWD/.venvs/worker/bin/python"
export PYTHONDONTWRITEBYTECODE=1
reports=$(mktemp -d)  # the junit files: read by the summary below, then gone
# Every temporary file of the tests (theirs, their children's, pytest's tmp_path, what libraries
# leave behind such as gradio_client's download folders) goes to one folder: removed when every
# test passed, kept and named when one did not.
TMPDIR=$(mktemp -d -t wanpod-tests-XXXXXX)
chmod 755 "$TMPDIR"  # the PostgreSQL tests' server runs as the postgres user: it must reach in
export TMPDIR
status=0
cleanup() {
  rm -rf "$reports"
  if [ $status -eq 0 ]; then
    rm -rf "$TMPDIR"
  else
    echo "== the tests' temporary files are kept in $TMPDIR"
  fi
}
trap cleanup EXIT

echo "== ruff"
if ! { .venvs/worker/bin/ruff check . && .venvs/worker/bin/ruff format --check .; }; then
  echo "== ruff FAILED (see above): make format fixes most of it"
  status=1
fi

run_suite() {  # name, venv, test folders...
  local name=$1 venv=$2; shift 2
  local dirs=()
  for d in "$@"; do [ -d "$d" ] && dirs+=("$d"); done
  [ ${#dirs[@]} -gt 0 ] || return 0
  echo "== tests ($name environment): ${dirs[*]}"
  "$venv/bin/python" -m pytest "${dirs[@]}" --junitxml="$reports/$name.xml" \
    -n "$TEST_PROCESSES" --dist loadfile "${PYTEST_ARGS[@]}"
  local rc=$?
  [ $rc -eq 0 ] || [ $rc -eq 5 ] || status=1
}

PYTEST_ARGS=("$@")
# Two test processes (pytest-xdist), each taking whole files so a file's module fixtures start
# once: most tests wait on emulated jobs, browsers and child processes, so two of them share a
# 2-core machine well (the suites' time on one: 2:02 + 10:58 in one process, 1:29 + 6:57 in two).
# One per core, at least 2 and at most 4. `-n 0` in the arguments runs them in this process.
TEST_PROCESSES=$(nproc 2>/dev/null || echo 2)
[ "$TEST_PROCESSES" -lt 2 ] && TEST_PROCESSES=2
[ "$TEST_PROCESSES" -gt 4 ] && TEST_PROCESSES=4
# the suites run against the emulator; the real-ComfyUI tier (COMFYUI_DIR) runs after them
COMFYUI_DIR= run_suite worker .venvs/worker tests/emulators tests/worker tests/workflows
# The browser tests drive Debian's Chromium (installed once, idempotently).
bash scripts/ensure-chromium.sh || status=1
# The ledger tests run on SQLite and on a real PostgreSQL (installed once, idempotently).
bash scripts/ensure-postgresql.sh || status=1
run_suite app .venvs/app tests/endpoint tests/app

# the optional real-ComfyUI tier: one line saying it was skipped when COMFYUI_DIR is unset
bash scripts/test_comfyui.sh --junitxml="$reports/real-comfyui.xml" || status=1

.venvs/worker/bin/python scripts/summarize_junit.py "$reports"/*.xml || status=1
exit $status
