#!/usr/bin/env bash
# Browser test of the operator dashboard (/ui): builds the debug binary, starts
# `conveyor all` on a free loopback port with its own SQLite database (and the sandbox
# as rates provider and VAST server), then drives the page with headless Chromium
# (tests/ui/dashboard_test.py). Installs Chromium and chromedriver (apt) and a pinned
# selenium (in target/ui-venv) when missing. Always stops what it started.
#
#   bash tests/ui/run.sh
#
# Screenshots: target/ui-dashboard.png (1280 wide), target/ui-dashboard-phone.png (390),
# target/ui-dashboard-dark.png (the dark palette, one screen).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

# 4.52.0 needs a certifi newer than the registry has; 4.51.0 drives Chromium 1xx alike.
SELENIUM_VERSION=4.51.0
VENV=$ROOT/target/ui-venv
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
READY_WITHIN_SECS=60

log() { printf 'ui: %s\n' "$*" >&2; }

if [[ ! -x $CHROMIUM || ! -x $CHROMEDRIVER ]]; then
  log "installing chromium and chromium-driver (apt)"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if ! "$VENV/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
  log "installing selenium $SELENIUM_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION"
fi

cargo build --quiet --bin conveyor
BIN=$ROOT/target/debug/conveyor

free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

WORK=$(mktemp -d)
SERVER_PID=""
SANDBOX_PID=""

stop() {
  local pid=$1
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  stop "$SERVER_PID"
  stop "$SANDBOX_PID"
  if [[ $status -ne 0 && -s $WORK/server.log ]]; then
    log "last lines of the server's log:"
    tail -n 30 "$WORK/server.log" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT INT TERM

PORT=$(free_port)
SANDBOX_PORT=$(free_port)
ADMIN_TOKEN="ui-test-$RANDOM$RANDOM"
READ_TOKEN="ui-read-$RANDOM$RANDOM"
SANDBOX="http://127.0.0.1:$SANDBOX_PORT"

# A clean environment: only what is set here reaches the processes (no REDIS_URL, no
# FIXER_KEY, no ADMIN_TOKEN or DATABASE_URL from the caller's shell).
env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG=warn \
  SANDBOX_BIND_ADDR="127.0.0.1:$SANDBOX_PORT" \
  "$BIN" sandbox >"$WORK/sandbox.log" 2>&1 &
SANDBOX_PID=$!

# RATES_CRON=off: no timetable and no start-up backfill; rates come from the sandbox
# only when the test asks (POST /rates/refresh), never from the internet.
# OUTLIER_SIGMAS=1 so that four reports of one server can make an outlier.
env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG=warn \
  DATABASE_URL="sqlite://$WORK/ui.db?mode=rwc" \
  BIND_ADDR="127.0.0.1:$PORT" \
  ADMIN_TOKEN="$ADMIN_TOKEN" \
  READ_TOKEN="$READ_TOKEN" \
  JOB_MAX_ATTEMPTS=2 \
  JOB_BACKOFF_BASE_MS=50 \
  JOB_BACKOFF_MAX_MS=200 \
  JOB_BACKOFF_JITTER=0 \
  QUEUE_POLL_MS=200 \
  SHUTDOWN_GRACE_MS=2000 \
  RATES_CRON=off \
  RATES_PROVIDER=frankfurter \
  FRANKFURTER_URL="$SANDBOX/frankfurter" \
  FIXER_URL="$SANDBOX/fixer" \
  RATES_TIMEOUT_MS=5000 \
  ADS_VAST_URL="$SANDBOX/vast" \
  WORK_URL="$SANDBOX/work" \
  OUTLIER_SIGMAS=1 \
  "$BIN" all >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

URL="http://127.0.0.1:$PORT"
deadline=$((SECONDS + READY_WITHIN_SECS))
answers() {
  "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
}
until answers "$URL/ready" && answers "$SANDBOX/vast"; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null || ! kill -0 "$SANDBOX_PID" 2>/dev/null; then
    log "the server or the sandbox exited before it was ready"
    cat "$WORK/sandbox.log" >&2 || true
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    log "not ready within ${READY_WITHIN_SECS} s"
    exit 1
  fi
  sleep 0.2
done
log "conveyor at $URL (sandbox $SANDBOX)"

CONVEYOR_URL="$URL" ADMIN_TOKEN="$ADMIN_TOKEN" READ_TOKEN="$READ_TOKEN" \
  SCREENSHOT="$ROOT/target/ui-dashboard.png" \
  SCREENSHOT_PHONE="$ROOT/target/ui-dashboard-phone.png" \
  SCREENSHOT_DARK="$ROOT/target/ui-dashboard-dark.png" \
  CHROMIUM="$CHROMIUM" CHROMEDRIVER="$CHROMEDRIVER" \
  SE_OFFLINE=true PYTHONDONTWRITEBYTECODE=1 \
  timeout 300 "$VENV/bin/python" "$ROOT/tests/ui/dashboard_test.py"
