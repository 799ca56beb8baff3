#!/usr/bin/env bash
# Property-based tests of the HTTP API against its own OpenAPI document: starts the
# sandbox (the upstreams) and `conveyor all` on a temporary SQLite database, both on
# free loopback ports, then lets schemathesis send generated requests to every
# operation with every check (enabled in the settings file, so that an operation's
# documented exception there holds): no server error; every answer (status,
# content type, headers, body) the one the document declares; requests the document
# calls valid accepted and those it calls invalid refused; an `Allow` on every 405;
# answers within 10 s. The exceptions, each with its reason, are in the settings file.
#
# Closing line: `schemathesis: N passed, M failed`, counted in operations; exits
# non-zero when any operation failed or the run could not be made.
#
# `ST_MAX_EXAMPLES` (default 100) sets the test cases per operation and phase,
# `ST_MAX_SECONDS` (default 480) bounds the run; extra arguments go to
# `schemathesis run` (e.g. `--include-path /rates/convert`). Settings per operation
# are in `.ci/schemathesis.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv=target/schemathesis-venv

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet --bin conveyor

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
api_port="$(free_port)"
sandbox_port="$(free_port)"
sandbox="http://127.0.0.1:$sandbox_port"
api="http://127.0.0.1:$api_port"

# Only what is set here: no Redis, no admin token, no real providers.
unset REDIS_URL ADMIN_TOKEN FIXER_KEY RATES_PROVIDER
export RUST_LOG="${RUST_LOG:-warn}"
# Every answer must come within the 10 s that the checks allow, on a debug build
# sharing two cores with schemathesis: the fan-out routes wait at most 5 s here (the
# sandbox's /work hangs on purpose), and the math bounds, which the document states, are
# lowered so that generated inputs do not queue minutes of big-integer work.

SANDBOX_BIND_ADDR="127.0.0.1:$sandbox_port" \
  target/debug/conveyor sandbox >"$tmp/sandbox.log" 2>&1 &
pids+=($!)

DATABASE_URL="sqlite://$tmp/st.db?mode=rwc" \
  BIND_ADDR="127.0.0.1:$api_port" \
  RATES_CRON=off \
  SHUTDOWN_GRACE_MS=2000 \
  WORK_URL="$sandbox/work" \
  ADS_VAST_URL="$sandbox/vast" \
  FRANKFURTER_URL="$sandbox/frankfurter" \
  FIXER_URL="$sandbox/fixer" \
  FANOUT_MAX_MS=5000 \
  FACTORIAL_MAX_N=20000 \
  FIBONACCI_MAX_N=200000 \
  ACKERMANN_MAX_BITS=200000 \
  target/debug/conveyor all >"$tmp/api.log" 2>&1 &
pids+=($!)

ready=no
for _ in $(seq 1 120); do
  if curl -fsS "$api/ready" >/dev/null 2>&1 && curl -fsS -o /dev/null "$sandbox/vast" 2>/dev/null; then
    ready=yes
    break
  fi
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || break 2; done
  sleep 0.5
done
if [ "$ready" != yes ]; then
  echo "the api or the sandbox did not become ready; their logs:"
  tail -n 50 "$tmp/api.log" "$tmp/sandbox.log"
  echo "schemathesis was not run; the servers count as one failure"
  echo "schemathesis: 0 passed, 1 failed"
  exit 1
fi

# One worker: with two, CPython 3.11's ast parser, which Hypothesis calls to describe
# its strategies, now and then failed across threads ("AST constructor recursion depth
# mismatch") and the run reported an error of its own, not of the API.
# A hung run must not hold CI: SIGINT makes schemathesis stop and report. Results are
# exact integers of any size: Python's 4 300-digit limit on reading them is lifted.
set +e
PYTHONINTMAXSTRDIGITS=0 timeout --signal=INT --kill-after=30 "${ST_MAX_SECONDS:-480}" \
  "$venv/bin/schemathesis" --config-file .ci/schemathesis.toml run "$api/openapi.json" \
  --max-examples "${ST_MAX_EXAMPLES:-100}" \
  --seed 20260101 \
  --generation-database none \
  --request-timeout 40 \
  --workers 1 \
  --no-color \
  --report junit --report-junit-path "$tmp/junit.xml" \
  "$@"
status=$?
set -e
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "schemathesis did not finish within ${ST_MAX_SECONDS:-480} s"
fi

# One <testcase> per operation, plus one for the stateful phase (sequences of calls
# along the document's links): a <failure> or an <error> fails it. The stateful phase
# is not an operation, so it is counted only when it fails.
counts="$(python3 - "$tmp/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

try:
    cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
except (OSError, ET.ParseError):
    cases = []
passed = failed = 0
for case in cases:
    bad = case.find("failure") is not None or case.find("error") is not None
    if bad:
        failed += 1
    elif case.get("name") != "Stateful tests":
        passed += 1
print(passed, failed)
EOF
)"
read -r passed failed <<<"$counts"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
  echo "schemathesis exited with $status; the api log ends with:"
  tail -n 30 "$tmp/api.log"
fi
echo "schemathesis: ${passed} passed, ${failed} failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
