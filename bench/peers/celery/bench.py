"""No-op throughput of Celery 5 on a local Redis.

    python bench.py [N]      (env: N, CONCURRENCY, CELERY_REDIS_URL override defaults)

Phase 1 enqueues N no-op tasks with `apply_async` in a loop on one producer (what
users do to send many tasks; `group(...).apply_async()` does the same loop inside).
Phase 2 starts `celery worker --pool threads --concurrency 8` as a subprocess and
times until all N tasks have run. Prints one JSON line on stdout; logs go to stderr.

Completion: results are not stored (ignore_result=True, no result backend); instead
the task INCRs a Redis counter and stamps the wall-clock time of the 1st and Nth
completion. process_per_s = (N-1) / (t_last - t_first): steady state, without the
worker's start-up (imports, connecting), which is reported on stderr only.

Isolation: a Redis DB of its own (default 14), and every key of the run (kombu's
queue, bindings and unacked bookkeeping, our counters) under a prefix unique to the
run, all deleted at the end.
"""

import json
import os
import subprocess
import sys
import time

import celery
import redis
from celery import Celery

REDIS_URL = os.environ.get("CELERY_REDIS_URL", "redis://127.0.0.1:6379/14")
# The worker subprocess imports this module too; it inherits the parent's run id
# through the environment so both sides agree on the queue and counter keys.
RUN = os.environ.setdefault("PEERBENCH_RUN", f"peerbench-{os.getpid()}-{int(time.time())}")
QUEUE = "peerbench-noop"
DONE, FIRST, LAST = f"{RUN}:done", f"{RUN}:first", f"{RUN}:last"

app = Celery("peerbench", broker=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    result_backend=None,
    # Defaults kept for everything that shapes throughput (early ack, prefetch
    # multiplier 4, json serializer): the out-of-the-box setup the reference measured.
    worker_enable_remote_control=False,  # no pidbox queue/keys: nothing to clean up
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    # kombu puts this before every key it makes, so the run owns all its keys.
    broker_transport_options={"global_keyprefix": f"{RUN}:"},
)

_r = redis.Redis.from_url(REDIS_URL)  # thread-safe pool, shared by the 8 threads


@app.task(name="peerbench.noop", ignore_result=True)
def noop(i):
    # The only work: count the completion (one round trip, INCR; plus a SET twice).
    k = _r.incr(DONE)
    if k == 1:
        _r.set(FIRST, time.time())
    if k == int(os.environ["PEERBENCH_N"]):
        _r.set(LAST, time.time())


def log(*a):
    print("[celery]", *a, file=sys.stderr, flush=True)


def main():
    n = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("N", 100_000))
    conc = int(os.environ.get("CONCURRENCY", 8))
    os.environ["PEERBENCH_N"] = str(n)
    r = redis.Redis.from_url(REDIS_URL)
    r.ping()
    log(f"N={n} concurrency={conc} broker={REDIS_URL} queue={QUEUE} celery={celery.__version__}")

    worker = None
    try:
        # Phase 1: enqueue.
        t0 = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for i in range(n):
                noop.apply_async((i,), producer=producer)
        enqueue_s = time.perf_counter() - t0
        log(f"enqueued {n} in {enqueue_s:.2f}s (queue length {r.llen(RUN + ':' + QUEUE)})")

        # Phase 2: process. Worker output goes to our stderr; no .pyc in the source tree.
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        spawned = time.time()
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "--app", "bench", "worker",
             "--pool", "threads", "--concurrency", str(conc), "--queues", QUEUE,
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel", "WARNING"],
            cwd=os.path.dirname(os.path.abspath(__file__)), env=env,
            stdout=sys.stderr, stderr=sys.stderr,
        )
        last_log = time.time()
        while int(r.get(DONE) or 0) < n:
            if worker.poll() is not None:
                raise SystemExit(f"worker exited early with code {worker.returncode}")
            if time.time() - last_log > 10:
                log(f"  {int(r.get(DONE) or 0)}/{n} done")
                last_log = time.time()
            time.sleep(0.05)
        while r.get(LAST) is None:  # the Nth task stamps LAST right after its INCR
            time.sleep(0.01)
        first, last = float(r.get(FIRST)), float(r.get(LAST))
        process_s = last - first
        log(f"processed {n} in {process_s:.2f}s (worker start-up to first task "
            f"{first - spawned:.2f}s)")
        print(json.dumps({
            "system": "celery", "version": celery.__version__, "n": n,
            "concurrency": conc, "enqueue_per_s": round(n / enqueue_s),
            "process_per_s": round((n - 1) / process_s) if n > 1 else None,
        }), flush=True)
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()  # SIGTERM = warm shutdown; all tasks are done by now
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        keys = list(r.scan_iter(match=f"{RUN}:*", count=1000))
        if keys:
            r.delete(*keys)
        log(f"deleted {len(keys)} keys under {RUN}:")


if __name__ == "__main__":
    main()
