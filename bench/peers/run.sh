#!/usr/bin/env bash
# Run a peer benchmark and print its one JSON line on stdout (logs on stderr).
#
#   bench/peers/run.sh <bullmq|celery> [N]
#
# Needs only node + npm, python3 and a Redis on 127.0.0.1:6379 (REDIS_URL for BullMQ,
# CELERY_REDIS_URL for Celery, default DB 14). Dependencies are installed once, and
# again only when the lock file changes, under target/peers/ (git-ignored) or
# $PEERS_CACHE: node_modules and the venv never land in the source tree.
set -euo pipefail

usage() { echo "usage: $0 <bullmq|celery> [N]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
system=$1
n=${2:-100000}
[[ $n =~ ^[0-9]+$ ]] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${PEERS_CACHE:-$root/target/peers}
mkdir -p "$cache"

case $system in
bullmq)
  dir=$cache/bullmq
  mkdir -p "$dir"
  # bench.mjs is copied next to node_modules so that `import 'bullmq'` resolves there.
  cp "$here/bullmq/package.json" "$here/bullmq/package-lock.json" "$here/bullmq/bench.mjs" "$dir/"
  if [[ ! -d $dir/node_modules ]] || ! cmp -s "$dir/package-lock.json" "$dir/.installed-lock"; then
    echo "[run.sh] npm install (from package-lock.json) into $dir" >&2
    # Not `npm ci`: the registry reached here lacks some platform builds of the
    # optional msgpackr-extract-* packages, which npm then leaves out of the lock,
    # and `npm ci` refuses such a lock. `npm install` with the lock present installs
    # the locked versions all the same; --no-save leaves the lock as committed.
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error >&2
    cp "$here/bullmq/package-lock.json" "$dir/.installed-lock"
  fi
  node "$dir/bench.mjs" "$n"
  ;;
celery)
  venv=$cache/venv
  req=$here/celery/requirements.txt
  if [[ ! -x $venv/bin/python ]]; then
    echo "[run.sh] creating venv $venv" >&2
    python3 -m venv "$venv"
  fi
  if ! cmp -s "$req" "$venv/.installed-requirements"; then
    echo "[run.sh] pip install -r $req" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    cp "$req" "$venv/.installed-requirements"
  fi
  # No .pyc next to bench.py: the source tree stays clean.
  PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" "$here/celery/bench.py" "$n"
  ;;
*) usage ;;
esac
