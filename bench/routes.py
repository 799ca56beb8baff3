#!/usr/bin/env python3
"""The routes table: Conveyor as the README deploys it, under wrk, route by route.

    python3 bench/routes.py [--seconds 15] [--connections 64] [--threads 2] [--workers 2]

Deployment (the README's production shape, default settings): `conveyor migrate`, one
`conveyor api`, `--workers` `conveyor worker` processes, over a fresh database on the
local Postgres and a fresh queue prefix on the local Redis. Then, one route at a time,
`wrk -t<threads> -c<connections> -d<seconds>s`:

    GET /ping, GET /factorial?n=100, GET /impression, POST /process_report,
    GET /process_statistics

For the two routes that enqueue, "accepted" is the jobs the api made (their records
on the route's queue, in `/queues`: wrk's count of 2xx answers misses the requests
still in flight when it stops) and "applied" is what a user can read back: the run's
user's impressions in `/statistics`, the report count in `/process_statistics`. After
the load the script polls until every accepted job is applied (at most --settle
seconds); lag is the time from the end of the load to the last one readable, and
applied/s = accepted / (load + lag). The counts must come out exact: applied other
than accepted, or accepted fewer than wrk's 2xx (or more by over --connections), is
printed as a finding and makes the exit status 1.

Prints a Markdown table and one JSON line per route (raw lines also go to
target/routes/<timestamp>.jsonl), with where the CPU went during each load
(the api, the workers, Postgres, Redis, wrk), as shares of the machine.

Settings (environment): CONVEYOR_BIN (default target/release/conveyor, built with
`cargo build --release --bin conveyor` unless given), BENCH_DATABASE_URL
(postgres://postgres@127.0.0.1:5432/postgres, an admin connection: the run makes and
drops its own database), BENCH_REDIS_URL (redis://127.0.0.1:6379). wrk comes from
Debian's package, installed when missing.

BENCH_SCHEMA_SQL, when set, is run on the run's database after the migrations (say,
`DROP INDEX job_records_status_id`), to measure a schema variant beside the migrated
schema; the table's heading and every JSON line name it. Unset, the run measures the
schema as the migrations make it.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")
# The set in which apalis-redis registers every queue a worker consumes.
APALIS_QUEUES = "core:apalis:queues:list"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")


def get(url):
    try:
        return http_json(url)
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, body.decode(errors="replace")


def ensure_wrk():
    if shutil.which("wrk"):
        return
    print("installing wrk (Debian package)", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)


def conveyor_bin():
    given = os.environ.get("CONVEYOR_BIN")
    if given:
        return os.path.abspath(given)
    print("building conveyor (release)", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--bin", "conveyor"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "conveyor")


def psql(admin_url, sql):
    subprocess.run(["psql", admin_url, "-qAtc", sql], check=True, stdout=subprocess.DEVNULL)


def cpu_by_pid(own_pids):
    """{pid: (group, CPU seconds so far)} of Conveyor's processes (`own_pids`: pid →
    group), Postgres, Redis and wrk."""
    seen = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = sum(int(x) for x in fields[11:13]) / TICKS
        pid = int(entry)
        if pid in own_pids:
            seen[pid] = (own_pids[pid], cpu)
        elif name.startswith("postgres"):
            seen[pid] = ("postgres", cpu)
        elif name.startswith("redis-server"):
            seen[pid] = ("redis", cpu)
        elif name == "wrk":
            seen[pid] = ("wrk", cpu)
    return seen


REPORT_SCRIPT = """
local servers = {}
for i = 1, 16 do servers[i] = "bench-server-" .. i end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local server = servers[math.random(1, #servers)]
  local seconds = math.random(60, 600)
  local body = string.format(
    '{"server_name":"%s","start_time":"2021-05-17T10:00:00Z","end_time":"2021-05-17T10:%02d:%02dZ"}',
    server, math.floor(seconds / 60), seconds % 60)
  return wrk.format(nil, "/process_report", nil, body)
end
"""


def run_wrk(base, path, script, args, own_pids):
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
           "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    # Sampled while wrk runs: a process's last sample is its CPU time at its end
    # (wrk's own is gone once it exits).
    first = cpu_by_pid(own_pids)
    last = dict(first)
    started = time.monotonic()
    wrk = subprocess.Popen(cmd + [base + path], stdout=subprocess.PIPE, text=True)
    while wrk.poll() is None:
        time.sleep(0.25)
        last.update(cpu_by_pid(own_pids))
    out = wrk.stdout.read()
    ended = time.monotonic()
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed: {out}")
    wall = ended - started
    cores = os.cpu_count() or 1
    shares = {"api": 0.0, "workers": 0.0, "postgres": 0.0, "redis": 0.0, "wrk": 0.0}
    for pid, (group, cpu) in last.items():
        shares[group] += cpu - first.get(pid, (group, 0.0))[1]
    shares = {k: round(100 * v / (cores * wall), 1) for k, v in shares.items()}
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": requests,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "load_s": round(wall, 2),
        "ended": ended,
        "cpu_share_pct": shares,
        "raw": out,
    }


def jobs_on(base, queue):
    """Job records on `queue`, whatever their status."""
    status, views = get(f"{base}/queues")
    if status != 200:
        return 0
    for view in views:
        if view["queue"] == queue:
            return sum(view[s] for s in ("queued", "running", "succeeded", "failed", "dead", "cancelled"))
    return 0


def settle(read_applied, accepted, ended, settle_s):
    """Polls until `accepted` are applied; (applied, lag seconds or None)."""
    deadline = ended + settle_s
    applied = read_applied()
    while applied < accepted and time.monotonic() < deadline:
        time.sleep(0.05)
        applied = read_applied()
    lag = round(max(0.0, time.monotonic() - ended), 2)
    return applied, (lag if applied >= accepted else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settle", type=int, default=600)
    parser.add_argument("--routes", default="ping,factorial,impression,report,statistics")
    args = parser.parse_args()

    ensure_wrk()
    exe = conveyor_bin()
    admin = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
    run_id = time.strftime("%Y%m%d%H%M%S")
    schema_sql = os.environ.get("BENCH_SCHEMA_SQL", "").strip()
    database = f"conveyor_bench_{run_id}"
    psql(admin, f"CREATE DATABASE {database}")
    server = admin.rsplit("/", 1)[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "QUEUE_"))}
    env.update(
        DATABASE_URL=f"{server}/{database}",
        REDIS_URL=redis_url,
        QUEUE_PREFIX=f"bench{run_id}",
        BIND_ADDR=f"127.0.0.1:{port}",
        RUST_LOG=os.environ.get("RUST_LOG", "warn"),
    )
    logs = tempfile.mkdtemp(prefix="conveyor-routes.")
    procs = []

    def start(*role):
        log = open(os.path.join(logs, "-".join(role) + f"-{len(procs)}.log"), "w")
        p = subprocess.Popen([exe, *role], env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    rows = []
    findings = []
    try:
        subprocess.run([exe, "migrate"], env=env, check=True)
        if schema_sql:
            psql(env["DATABASE_URL"], schema_sql)
        start("api")
        for _ in range(args.workers):
            start("worker")
        for _ in range(200):
            try:
                if get(base + "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        own = {p.pid: ("api" if i == 0 else "workers") for i, p in enumerate(procs)}
        user = f"bench{run_id}"
        scripts = {}
        with open(os.path.join(logs, "report.lua"), "w") as f:
            f.write(REPORT_SCRIPT)
        scripts["report"] = f.name
        routes = {
            "ping": ("GET /ping", "/ping", None),
            "factorial": ("GET /factorial?n=100", "/factorial?n=100", None),
            "impression": (
                "GET /impression",
                f"/impression?sdk_version={user}&session_id=s&platform=linux&username={user}&country_code=DE",
                None,
            ),
            "report": ("POST /process_report", "/process_report", scripts["report"]),
            "statistics": ("GET /process_statistics", "/process_statistics", None),
        }
        for key in args.routes.split(","):
            name, path, script = routes[key]
            print(f"{name}: wrk -t{args.threads} -c{args.connections} -d{args.seconds}s", file=sys.stderr)
            result = run_wrk(base, path, script, args, own)
            answered = result["requests"] - result["non_2xx"]
            row = {"route": name, "per_s": result["per_s"], "requests": result["requests"],
                   "non_2xx": result["non_2xx"], "socket_errors": result["socket_errors"],
                   "load_s": result["load_s"], "cpu_share_pct": result["cpu_share_pct"]}
            if schema_sql:
                row["schema_sql"] = schema_sql
            reader = queue = None
            if key == "impression":
                queue = "ads"

                def reader():
                    status, body = get(f"{base}/statistics?username={user}")
                    return body[user]["impressions"] if status == 200 else 0
            elif key == "report":
                queue = "reports"

                def reader():
                    status, body = get(f"{base}/process_statistics")
                    return body["count"] if status == 200 else 0
            if reader is not None:
                # Requests wrk left in flight when it stopped are answered by now.
                time.sleep(0.5)
                accepted = jobs_on(base, queue)
                applied, lag = settle(reader, accepted, result["ended"], args.settle)
                row.update(answered_2xx=answered, accepted=accepted, applied=applied, lag_s=lag)
                if lag is not None:
                    row["applied_per_s"] = round(accepted / (result["load_s"] + lag), 1)
                if applied != accepted:
                    findings.append(f"{name}: {accepted} accepted, {applied} applied")
                if not answered <= accepted <= answered + args.connections:
                    findings.append(f"{name}: {answered} answered 2xx, {accepted} jobs made")
            if result["non_2xx"] or result["socket_errors"]:
                findings.append(
                    f"{name}: {result['non_2xx']} non-2xx answers, {result['socket_errors']} socket errors")
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
        psql(admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        keys = subprocess.run(["redis-cli", "-u", redis_url, "--scan", "--pattern", f"bench{run_id}*"],
                              capture_output=True, text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "-u", redis_url, "del", *keys[i:i + 500]],
                           stdout=subprocess.DEVNULL)
        # apalis also lists every queue a worker registered on in one shared set.
        registered = subprocess.run(["redis-cli", "-u", redis_url, "zrange", APALIS_QUEUES, "0", "-1"],
                                    capture_output=True, text=True).stdout.split()
        ours = [q for q in registered if q.startswith(f"bench{run_id}-")]
        if ours:
            subprocess.run(["redis-cli", "-u", redis_url, "zrem", APALIS_QUEUES, *ours],
                           stdout=subprocess.DEVNULL)

    out_dir = os.path.join(ROOT, "target", "routes")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{run_id}.jsonl"), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"\nConveyor (api + {args.workers} workers, Postgres + Redis, default settings), "
          f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s"
          + (f", schema variant: `{schema_sql}`" if schema_sql else "") + "\n")
    print("| route | accepted/s | applied/s | lag after the load | CPU: api / workers / postgres / redis / wrk |")
    print("|---|---|---|---|---|")
    for r in rows:
        applied = f"{r['applied_per_s']:,.0f}" if r.get("applied_per_s") else (
            "-" if "applied" not in r else f"{r['applied']} of {r['accepted']} (not settled)")
        lag = f"{r['lag_s']} s" if r.get("lag_s") is not None else "-"
        c = r["cpu_share_pct"]
        print(f"| {r['route']} | {r['per_s']:,.0f} | {applied} | {lag} | "
              f"{c['api']} / {c['workers']} / {c['postgres']} / {c['redis']} / {c['wrk']} % |")
    for finding in findings:
        print(f"finding: {finding}")
    print(f"\nlogs: {logs}")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
