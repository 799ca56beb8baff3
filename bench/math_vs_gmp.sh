#!/usr/bin/env bash
# Heavy math beside GMP on the same machine, in the same run: factorial and
# Fibonacci compute + decimal render, ours (domain::math) against gmpy2, then the
# HTTP route for factorial(10^6) end to end. Prints seconds and ratios.
#
#   bash bench/math_vs_gmp.sh
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --root-user-action=ignore gmpy2 >/dev/null

echo "== GMP (gmpy2), best of 3"
python3 - <<'PY' | tee /tmp/gmp.txt
import time, gmpy2
def best(f, runs=3):
    t = min((lambda s: (f(), time.perf_counter() - s)[1])(time.perf_counter()) for _ in range(runs))
    return t
for algo, n in [("factorial", 100_000), ("factorial", 1_000_000), ("fibonacci", 1_000_000), ("fibonacci", 10_000_000)]:
    fn = gmpy2.fac if algo == "factorial" else gmpy2.fib
    compute = best(lambda: fn(n))
    v = fn(n)
    render = best(lambda: v.digits())
    print(f"{algo:<10} {n:>10} {compute:>12.3f} {render:>12.3f} {compute + render:>12.3f}")
PY

echo "== Conveyor (domain::math), best of 3"
cargo bench -q -p domain --bench math | tee /tmp/ours.txt

echo "== ratio ours/GMP (total)"
python3 - <<'PY'
gmp = {}
for line in open("/tmp/gmp.txt"):
    a, n, c, r, t = line.split()
    gmp[(a, n)] = float(t)
for line in open("/tmp/ours.txt"):
    parts = line.split()
    if len(parts) != 6 or parts[0] == "algo":
        continue
    a, n, digits, c, r, t = parts
    if (a, n) in gmp:
        print(f"{a:<10} {n:>10}  ours {float(t):7.3f} s  gmp {gmp[(a, n)]:7.3f} s  ratio {float(t) / gmp[(a, n)]:5.2f}x")
PY

echo "== HTTP: GET /factorial?n=1000000, end to end (fresh database, cold cache)"
dir=$(mktemp -d)
cargo build -q --release
DATABASE_URL="sqlite://$dir/bench.db?mode=rwc" BIND_ADDR=127.0.0.1:5077 MATH_WAIT_MS=30000 \
  target/release/conveyor >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -sf localhost:5077/health >/dev/null && break; sleep 0.1; done
curl -s -o /dev/null -w "cold: status %{http_code}, %{size_download} bytes in %{time_total} s\n" "localhost:5077/factorial?n=1000000"
curl -s -o /dev/null -w "cached: status %{http_code}, %{size_download} bytes in %{time_total} s\n" "localhost:5077/factorial?n=1000000"
