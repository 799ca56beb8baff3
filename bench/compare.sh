#!/usr/bin/env bash
# Conveyor vs BullMQ vs Celery, back to back on the same Redis: no-op jobs, N each,
# R repetitions, then a table of medians and ratios.
#
#   bench/compare.sh [N] [R]            # defaults: N=100000, R=3
#
# Per repetition, in this order: Conveyor's queue path (Redis only, like the peers),
# Conveyor's pipeline (records group-committed on Postgres), BullMQ 5, Celery 5. Then
# Conveyor's push-to-handler-start latency at light load, and the pipeline drained by
# one and by two worker processes. Last, R times, the same pipeline with every record
# written on its own (--unbatched): its single-row commits leave Postgres busy for a
# while after it ends, which on a small machine slowed whatever ran next (BullMQ ran
# at half its speed). Every raw JSON line goes to
# target/compare/<timestamp>.jsonl; the table goes to stdout.
# Needs Redis on 127.0.0.1:6379, Postgres on 127.0.0.1:5432, node + npm, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-100000}
reps=${2:-3}
workers=${WORKERS:-2}
pipeline_flags="--concurrency ${PIPELINE_CONCURRENCY:-512} --fetch-batch 64"
out_dir=target/compare
mkdir -p "$out_dir"
out="$out_dir/$(date -u +%Y%m%dT%H%M%SZ).jsonl"

echo "building the benchmark (release)" >&2
# Built once; the runs use the executable itself, so that nothing rebuilds mid-run.
exe=$(cargo bench --bench noop_throughput --no-run 2>&1 | tee /dev/stderr |
  sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)
[[ -x $exe ]] || { echo "no benchmark executable" >&2; exit 1; }
bench() { "$exe" "$@" 2>/dev/null | tail -n 1; }

for rep in $(seq 1 "$reps"); do
  echo "repetition $rep of $reps (N=$n)" >&2
  # The queue path at BullMQ's concurrency (32 per worker). The pipeline waits on
  # Postgres commits, so it needs many jobs in flight to fill its batches: 512.
  bench --n "$n" --workers "$workers" --mode queue | tee -a "$out" >&2
  bench --n "$n" --workers "$workers" --mode pipeline $pipeline_flags | tee -a "$out" >&2
  bench/peers/run.sh bullmq "$n" | tee -a "$out" >&2
  bench/peers/run.sh celery "$n" | tee -a "$out" >&2
done
echo "latency at light load" >&2
bench --mode latency --n 2000 --workers 1 | tee -a "$out" >&2
for p in 1 2; do
  echo "pipeline drained by $p worker process(es)" >&2
  bench --n "$n" --mode pipeline --workers 1 --processes "$p" $pipeline_flags |
    python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r['mode']='processes-$p'; print(json.dumps(r))" |
    tee -a "$out" >&2
done
for rep in $(seq 1 "$reps"); do
  echo "unbatched pipeline, repetition $rep of $reps (N=$n)" >&2
  bench --n "$n" --workers "$workers" --mode pipeline --unbatched $pipeline_flags | tee -a "$out" >&2
done

python3 - "$out" "$n" "$reps" <<'EOF'
import json, statistics, sys
path, n, reps = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
def key(r):
    return r["system"] if r["system"] != "conveyor" else f"conveyor {r['mode']}"
groups = {}
procs = {r["mode"]: r["process_per_s"] for r in rows if r.get("mode", "").startswith("processes-")}
if "processes-1" in procs and "processes-2" in procs:
    print(f"\nPipeline drained by worker processes (1 run each): one {procs['processes-1']:,.0f}/s, "
          f"two {procs['processes-2']:,.0f}/s = {procs['processes-2'] / procs['processes-1']:.2f}x")
for r in rows:
    if r.get("mode") == "latency" or r.get("mode", "").startswith("processes-"):
        continue
    groups.setdefault(key(r), []).append(r)
med = {k: (statistics.median(x["enqueue_per_s"] for x in v),
           statistics.median(x["process_per_s"] for x in v), len(v)) for k, v in groups.items()}
print(f"No-op jobs on one Redis, N={n}, medians of {reps} runs (jobs/s)\n")
print("| system | runs | enqueue/s | process/s | process vs BullMQ | process vs Celery |")
print("|---|---|---|---|---|---|")
bull = med.get("bullmq", (0, 0, 0))[1]
cel = med.get("celery", (0, 0, 0))[1]
for k in ["conveyor queue", "conveyor pipeline", "conveyor pipeline-unbatched", "bullmq", "celery"]:
    if k not in med:
        continue
    e, p, c = med[k]
    vb = f"{p / bull:.2f}x" if bull else "-"
    vc = f"{p / cel:.1f}x" if cel else "-"
    print(f"| {k} | {c} | {e:,.0f} | {p:,.0f} | {vb} | {vc} |")
for r in rows:
    if r.get("mode") == "latency":
        print(f"\nPush to handler start, {r['n']} tasks one at a time: "
              f"p50 {r['p50_ms']:.3f} ms, p90 {r['p90_ms']:.3f} ms, "
              f"p99 {r['p99_ms']:.3f} ms, max {r['max_ms']:.3f} ms")
print(f"\nRaw figures: {path}")
EOF
