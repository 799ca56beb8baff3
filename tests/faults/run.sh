#!/usr/bin/env bash
# Fault report: under a steady mixed load on Redis + Postgres with two
# worker processes, inject faults and prove that nothing is lost, nothing is counted
# twice and nothing crashes.
#
#   bash tests/faults/run.sh                       # all five scenarios, ~3-4 minutes
#   FAULTS_SCENARIOS=2,3 bash tests/faults/run.sh  # a subset
#
# Scenarios (each ~24 s of load, then a settle phase of at most 60 s, then checks):
#   1. SIGKILL a worker every 4 s, restarting it each time (2 stay up).
#   2. Redis restart mid-load: SIGTERM, 3 s down, started again on the same port and
#      append-only dir (its data survives).
#   3. Postgres restart mid-load: pg_ctl stop -m fast, 3 s down, start.
#   4. SIGTERM a worker under load: exit 0 within SHUTDOWN_GRACE_MS, in-flight jobs
#      finished by it, nothing started after the signal.
#   5. Upstreams that hang (accept, never answer) or refuse (closed port): GET /ad on
#      two extra apis must answer 504 within ADS_TIMEOUT_MS + 0.5 s and still count the
#      ad request; POST /rates/refresh with frankfurter closed, then hanging, must end
#      `dead` (JOB_MAX_ATTEMPTS=2) with its error in GET /jobs/{id}, nothing stored.
# Load (tests/faults/faults.py, Python standard library only): 64 threads, 1 000 req/s
# on a fixed schedule (a request held up by a fault is followed by those due meanwhile) of
# POST /process_report, GET /impression, POST /jobs/math (small factorials) and
# POST /jobs/noop (sleep 0.8 s; 3 s in scenario 4, so that workers hold tasks), 5 s
# client timeout. /ready is sampled every 200 ms.
# Checks after each settle phase: every accepted job `succeeded`; /process_statistics
# counts (total and per server) grew by the accepted reports; /statistics impressions
# per user and per SDK grew by the accepted impressions; 5xx only 503 naming the
# backend that is down (none at all when no backend is down); no request over 5 s
# (the processes run with DATABASE_ACQUIRE_TIMEOUT_MS=3000, below that client timeout);
# every process still alive; no panic in any log.
#
# Output: a Markdown table and notes on stdout and in target/faults-report.md; logs of
# every process under the temporary directory printed at the start (kept after the
# run; FAULTS_KEEP=0 removes it). Exit status 1 when anything was lost or duplicated,
# or a 500, a hang, a crash or another failed check was seen.
#
# Everything runs on 127.0.0.1 against servers this script starts itself: its own
# redis-server and its own Postgres cluster (initdb in the temporary directory, run as
# the `postgres` user when started as root), on free ports; the machine's shared
# Postgres and Redis are never touched. A trap ends every process it started (by pid)
# and stops its cluster, whatever happens.
#
# Settings (environment): CONVEYOR_BIN (default: target/release/conveyor, built with
# `cargo build --release --bin conveyor` unless FAULTS_NO_BUILD=1), FAULTS_SCENARIOS,
# FAULTS_LOAD_SECONDS (24), FAULTS_RATE (1000 req/s), FAULTS_THREADS (64),
# FAULTS_MAX_REQUESTS (30000 per scenario), FAULTS_SETTLE_SECONDS (60),
# FAULTS_OUTAGE_SECONDS (3: how long Redis / Postgres stay down; 8 makes every
# in-flight job's recording fail, which reproduces the lost-redelivery defect at once),
# FAULTS_REPORT (target/faults-report.md). Needs redis-server, Postgres server binaries
# (/usr/lib/postgresql/*/bin) and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

started=$(date +%s)
bin=${CONVEYOR_BIN:-target/release/conveyor}
if [[ ${FAULTS_NO_BUILD:-0} != 1 && -z ${CONVEYOR_BIN:-} ]]; then
  echo "building conveyor (release)" >&2
  cargo build --release --bin conveyor >&2
fi
[[ -x $bin ]] || { echo "no executable at $bin" >&2; exit 2; }
bin=$(realpath "$bin")

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -x $pg_bin/initdb ]] || { echo "no Postgres server binaries under /usr/lib/postgresql" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "no redis-server" >&2; exit 2; }

dir=$(mktemp -d /tmp/conveyor-faults.XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir/logs" "$dir/pg" "$dir/pgsock"
echo "faults: logs and data under $dir (logs in $dir/logs)" >&2

run_as=""
if [[ $(id -u) == 0 ]]; then
  run_as=postgres
  chown postgres: "$dir/pg" "$dir/pgsock"
  touch "$dir/logs/postgres.log"
  chown postgres: "$dir/logs/postgres.log"
fi
as_pg() { if [[ -n $run_as ]]; then runuser -u "$run_as" -- "$@"; else "$@"; fi; }

# A pid from the driver's list that is still one of ours: the conveyor executable, or
# a redis-server working in our directory (redis rewrites its command line).
ours() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$bin" && return 0
  [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$dir"* ]]
}

cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [[ -f $dir/pids ]]; then
    while read -r pid; do
      if ours "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done <"$dir/pids"
    sleep 1
    while read -r pid; do
      if ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done <"$dir/pids"
  fi
  if [[ -f $dir/pg/postmaster.pid ]]; then
    as_pg "$pg_bin/pg_ctl" -D "$dir/pg" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [[ ${FAULTS_KEEP:-1} == 0 ]]; then
    rm -rf "$dir"
  fi
  echo "faults: total run time $(($(date +%s) - started)) s; logs in $dir/logs" >&2
  exit "$code"
}
trap cleanup EXIT INT TERM

as_pg "$pg_bin/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 --no-sync \
  >"$dir/logs/initdb.log" 2>&1 || { cat "$dir/logs/initdb.log" >&2; exit 2; }

CONVEYOR_BIN=$bin FAULTS_DIR=$dir PG_BIN=$pg_bin PG_DATA=$dir/pg PG_RUN_AS=$run_as \
  FAULTS_REPORT=${FAULTS_REPORT:-target/faults-report.md} \
  python3 tests/faults/faults.py
