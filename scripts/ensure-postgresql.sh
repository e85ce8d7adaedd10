#!/usr/bin/env bash
# Make sure Debian's PostgreSQL server is present for the ledger's PostgreSQL tests (each test
# session starts its own throwaway cluster with initdb/pg_ctl, tests/postgres.py). Idempotent:
# does nothing when it is already installed.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y postgresql
