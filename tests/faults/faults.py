#!/usr/bin/env python3
"""Fault-injection driver of tests/faults/run.sh. Standard library only.

Started by tests/faults/run.sh, which prepares the temporary directory and the private
Postgres cluster (initdb) and tears everything down afterwards. This driver starts its
own Redis and Postgres servers from there, the Conveyor processes (api, 2 workers,
a rates worker, scheduler, sandbox), puts a steady mixed load on the api, injects one
fault per scenario, checks that nothing was lost or counted twice, and writes a
Markdown report. Every process it starts is listed in $FAULTS_DIR/pids so that the
shell's trap can end exactly those.
"""

import datetime
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

# --------------------------------------------------------------------------- settings

BIN = os.environ["CONVEYOR_BIN"]
DIR = os.environ["FAULTS_DIR"]
PG_BIN = os.environ["PG_BIN"]
PG_DATA = os.environ["PG_DATA"]
PG_USER = os.environ.get("PG_RUN_AS", "")  # "" = run pg_ctl as ourselves
REPORT = os.environ.get("FAULTS_REPORT", "target/faults-report.md")
LOAD_SECONDS = float(os.environ.get("FAULTS_LOAD_SECONDS", "24"))
RATE = float(os.environ.get("FAULTS_RATE", "1000"))  # requests/s, all load threads together
THREADS = int(os.environ.get("FAULTS_THREADS", "64"))
MAX_REQUESTS = int(os.environ.get("FAULTS_MAX_REQUESTS", "30000"))  # per scenario
SETTLE_SECONDS = float(os.environ.get("FAULTS_SETTLE_SECONDS", "60"))
SCENARIOS = os.environ.get("FAULTS_SCENARIOS", "1,2,3,4,5").split(",")
OUTAGE_SECONDS = float(os.environ.get("FAULTS_OUTAGE_SECONDS", "3"))  # Redis / Postgres down time
CLIENT_TIMEOUT = 5.0
# The processes' DATABASE_ACQUIRE_TIMEOUT_MS: how long a request waits for Postgres
# before its 503. It must sit below the clients' timeout, or the first requests after
# Postgres goes away (each waits the whole bound) look like hangs to them.
DB_WAIT_MS = 3000
GRACE_MS = 5000
ADS_TIMEOUT_MS = 1500
RATES_TIMEOUT_MS = 1500
LOGS = os.path.join(DIR, "logs")

SERVERS = ["srv-a", "srv-b", "srv-c", "srv-d"]
USERS = ["alice", "bob", "carol", "dave", "erin"]
SDKS = ["1.0", "2.0", "3.1"]
MAIN_QUEUES = "default,math,reports,ads"  # the rates queue has a worker of its own

T0 = time.time()
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
FINDINGS = []  # (scenario, text): each one makes the run fail


def log(msg):
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def finding(scenario, text):
    FINDINGS.append((scenario, text))
    log(f"FINDING ({scenario}): {text}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- HTTP


def http(method, url, body=None, timeout=CLIENT_TIMEOUT):
    """(status or None, text, seconds, error or None). error: 'timeout' or 'conn: …'."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    start = time.monotonic()
    status, text, err = None, "", None
    try:
        with OPENER.open(request, timeout=timeout) as answer:
            status = answer.status
            text = answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        status = e.code
        try:
            text = e.read().decode("utf-8", "replace")
        except Exception as inner:  # noqa: BLE001
            text = f"<body unreadable: {inner}>"
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            err = "timeout"
        else:
            err = f"conn: {reason}"
    except (socket.timeout, TimeoutError):
        err = "timeout"
    except Exception as e:  # noqa: BLE001  (connection reset mid-answer, bad status line)
        err = f"conn: {type(e).__name__}: {e}"
    return status, text, time.monotonic() - start, err


# Each load thread's connection to the api, kept open between its requests.
LOAD_CONN = threading.local()


def load_http(method, path, body=None, timeout=CLIENT_TIMEOUT):
    """`http` for the load, on a bare socket that each load thread keeps open between
    its requests (HTTP/1.1 keep-alive, as wrk and most clients do). A connection that
    failed, timed out or was closed by the server is dropped, and the next request
    opens a new one; a request is never sent twice. urllib's machinery, and a
    connection per request, cost the load more CPU than the service spent answering,
    on the same two cores."""
    data = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{API_PORT}\r\n"
            f"Content-Length: {len(data)}\r\n")
    if body is not None:
        head += "Content-Type: application/json\r\n"
    start = time.monotonic()
    deadline = start + timeout
    conn = getattr(LOAD_CONN, "sock", None)
    try:
        if conn is None:
            conn = socket.create_connection(("127.0.0.1", API_PORT), timeout=timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            LOAD_CONN.sock = conn
        conn.settimeout(timeout)
        conn.sendall(head.encode() + b"\r\n" + data)
        status, content, keep = read_answer(conn, deadline)
    except (socket.timeout, TimeoutError):
        drop_load_conn()
        return None, "", time.monotonic() - start, "timeout"
    except OSError as e:
        drop_load_conn()
        return None, "", time.monotonic() - start, f"conn: {type(e).__name__}: {e}"
    secs = time.monotonic() - start
    if not keep:
        drop_load_conn()
    return status, content.decode("utf-8", "replace"), secs, None


def drop_load_conn():
    conn = getattr(LOAD_CONN, "sock", None)
    LOAD_CONN.sock = None
    if conn is not None:
        conn.close()


def read_answer(conn, deadline):
    """One HTTP/1.1 answer off `conn`: (status, body, whether the connection stays
    usable). The body ends at its Content-Length, at the last chunk (then it is
    unchunked), or when the server closes the connection. A connection closed before
    the answer is whole, or an answer that is not HTTP, raises ConnectionError."""
    answer = b""

    def more():
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed by the server after {len(answer)} bytes of the answer")
        return chunk

    while b"\r\n\r\n" not in answer:
        answer += more()
    head_end = answer.find(b"\r\n\r\n")
    headers = answer[:head_end].lower()
    if not re.match(rb"http/1\.[01] \d{3}", headers):
        raise ConnectionError(f"unreadable answer {answer[:80]!r}")
    status = int(headers[9:12])
    keep = b"connection: close" not in headers
    length = re.search(rb"\r\ncontent-length: *(\d+)", headers)
    chunked = b"transfer-encoding: chunked" in headers
    if length:
        while len(answer) - head_end - 4 < int(length.group(1)):
            answer += more()
    elif chunked:
        while not (answer.endswith(b"\r\n\r\n0\r\n\r\n") or answer.endswith(b"\r\n0\r\n\r\n")):
            answer += more()
    else:
        keep = False
        try:
            while True:
                answer += more()
        except ConnectionError:
            pass
    body = answer[head_end + 4:]
    return status, unchunk(body) if chunked else body, keep


def unchunk(content):
    out, at = [], 0
    while True:
        line_end = content.find(b"\r\n", at)
        if line_end < 0:
            break
        size = int(content[at:line_end].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(content[line_end + 2:line_end + 2 + size])
        at = line_end + 2 + size + 2
    return b"".join(out)


def jbody(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_ts(value):
    """RFC 3339 from the api (nanoseconds allowed) to epoch seconds."""
    if not value:
        return None
    m = re.match(r"^(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(m.group(1) + frac + tz).timestamp()


# --------------------------------------------------------------------------- processes


def record_pid(pid):
    with open(os.path.join(DIR, "pids"), "a") as f:
        f.write(f"{pid}\n")


class Proc:
    """One managed process; every start is a new incarnation with its own log file."""

    def __init__(self, name, argv, env):
        self.name, self.argv, self.env = name, argv, env
        self.popen = None
        self.incarnation = 0
        self.log_path = None
        self.expected_exit = False

    def start(self):
        self.log_path = os.path.join(LOGS, f"{self.name}.{self.incarnation}.log")
        self.incarnation += 1
        out = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.expected_exit = False
        record_pid(self.popen.pid)
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig):
        self.expected_exit = True
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.alive():
            self.signal(signal.SIGTERM)
            if self.wait(10) is None:
                self.popen.kill()
                self.wait(5)

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, needle, count=1, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.log_text().count(needle) >= count:
                return True
            if not self.alive():
                return False
            time.sleep(0.1)
        return False


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tail(path, n=15, grep=None):
    try:
        with open(path, "r", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    lines = [ANSI.sub("", l) for l in lines]
    if grep:
        lines = [l for l in lines if re.search(grep, l)]
    return lines[-n:]


# Ports and URLs
REDIS_PORT = free_port()
PG_PORT = free_port()
SANDBOX_PORT = free_port()
API_PORT = free_port()
API = f"http://127.0.0.1:{API_PORT}"
SANDBOX = f"http://127.0.0.1:{SANDBOX_PORT}"
REDIS_DIR = os.path.join(DIR, "redis")
PG_SOCK = os.path.join(DIR, "pgsock")
os.makedirs(REDIS_DIR, exist_ok=True)
os.makedirs(LOGS, exist_ok=True)


def conveyor_env(**extra):
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
    env.update({
        "HOSTNAME": "faults",
        "NO_COLOR": "1",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres",
        "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}",
        "QUEUE_PREFIX": f"faults_{os.getpid()}",
        "RATES_CRON": "off",
        "RATES_PROVIDER": "frankfurter",
        "RATES_TIMEOUT_MS": str(RATES_TIMEOUT_MS),
        "FRANKFURTER_URL": f"{SANDBOX}/frankfurter",
        "ADS_VAST_URL": f"{SANDBOX}/vast",
        "ADS_TIMEOUT_MS": str(ADS_TIMEOUT_MS),
        "WORK_URL": f"{SANDBOX}/work",
        "WORKER_HEARTBEAT_MS": "1000",
        "WORKER_MISSED_HEARTBEATS": "2",
        "WORKER_RESTART_MS": "500",
        "JOB_BACKOFF_BASE_MS": "200",
        "JOB_BACKOFF_MAX_MS": "2000",
        "SHUTDOWN_GRACE_MS": str(GRACE_MS),
        "DATABASE_ACQUIRE_TIMEOUT_MS": str(DB_WAIT_MS),
        "HOUSEKEEPING_INTERVAL_SECS": "5",
        "STUCK_AFTER_SECS": "20",
        "MIN_TOTAL": "1",
        "MIN_PER_SERVER": "1",
        "BIND_ADDR": "127.0.0.1:0",
        "RUST_LOG": "info,sqlx=warn,sea_orm=warn",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


REDIS = Proc("redis", ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                       "--appendonly", "yes", "--dir", REDIS_DIR, "--save", "",
                       "--daemonize", "no"], dict(os.environ))


def redis_ping(timeout=1.0):
    try:
        with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis():
    REDIS.start()
    deadline = time.time() + 20
    while time.time() < deadline:
        if redis_ping():
            return True
        time.sleep(0.05)
    raise RuntimeError("redis did not start")


def pg_ctl(*args):
    cmd = [os.path.join(PG_BIN, "pg_ctl"), "-D", PG_DATA, *args]
    if PG_USER:
        cmd = ["runuser", "-u", PG_USER, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def start_pg():
    opts = (f"-p {PG_PORT} -k {PG_SOCK} -c listen_addresses=127.0.0.1 "
            f"-c max_connections=300")
    r = pg_ctl("-l", os.path.join(LOGS, "postgres.log"), "-w", "-t", "30", "-o", opts, "start")
    if r.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {r.stdout} {r.stderr}")


def stop_pg(mode="fast"):
    return pg_ctl("-m", mode, "-w", "-t", "30", "stop")


def conveyor(name, role, **extra):
    return Proc(name, [BIN, role], conveyor_env(**extra))


def wait_http(url, ok=(200,), timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, _, _, _ = http("GET", url, timeout=2)
        if status in ok:
            return True
        time.sleep(0.1)
    return False


def start_worker(proc):
    proc.start()
    queues = proc.env.get("WORKER_QUEUES", "").split(",")
    if not proc.wait_log("consuming", count=len(queues), timeout=30):
        raise RuntimeError(f"{proc.name} did not start consuming; see {proc.log_path}")
    return proc


SANDBOX_P = conveyor("sandbox", "sandbox", SANDBOX_BIND_ADDR=f"127.0.0.1:{SANDBOX_PORT}")
API_P = conveyor("api", "api", BIND_ADDR=f"127.0.0.1:{API_PORT}")
WORKERS = [conveyor(f"worker{i}", "worker", WORKER_QUEUES=MAIN_QUEUES) for i in (1, 2)]
RATES_WORKER = conveyor("rates-worker", "worker", WORKER_QUEUES="rates", WORKER_CONCURRENCY=2)
SCHEDULER = conveyor("scheduler", "scheduler")
STEADY = [SANDBOX_P, API_P, *WORKERS, RATES_WORKER, SCHEDULER]  # must never die on their own
EXTRA = []  # scenario 5's apis


# --------------------------------------------------------------------------- load


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Load:
    """Steady mixed load on the api: reports, impressions, math, and a few no-op jobs
    (`sleep_ms`) so that the workers always hold tasks in flight when a fault hits.

    Each thread keeps a fixed schedule (as wrk2 does): a request that had to wait out
    a fault is followed, back to back, by those that fell due meanwhile. So the load
    offered stays `rate` over the scenario instead of easing off while the service is
    slow, and the service meets the backlog right after the fault. What is still
    owed when the time is up is not sent: the rate reported is what was sent."""

    WEIGHTS = [("report", 35), ("impression", 40), ("math", 15), ("noop", 10)]

    def __init__(self, seconds=LOAD_SECONDS, rate=RATE, threads=THREADS,
                 max_requests=MAX_REQUESTS, noop_sleep_ms=800):
        self.seconds, self.rate, self.threads = seconds, rate, threads
        self.max_requests, self.noop_sleep_ms = max_requests, noop_sleep_ms
        self.records = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.started = self.ended = None
        self._threads = []
        ops = []
        for op, w in self.WEIGHTS:
            ops += [op] * w
        self.ops = ops

    def start(self):
        self.started = time.time()
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)

    def join(self):
        for t in self._threads:
            t.join()
        self.ended = time.time()

    def _count(self):
        with self.lock:
            return len(self.records)

    def _run(self, i):
        rng = random.Random(os.getpid() * 1000 + i + int(time.time()))
        period = self.threads / self.rate
        next_t = time.time() + rng.random() * period
        end = self.started + self.seconds
        while not self.stop_event.is_set():
            now = time.time()
            if now >= end or self._count() >= self.max_requests:
                return
            if next_t > now:
                time.sleep(min(next_t - now, end - now))
                continue
            next_t += period
            self._one(rng)

    def _one(self, rng):
        op = rng.choice(self.ops)
        rec = {"op": op}
        if op == "report":
            start = 1_600_000_000 + rng.randint(0, 10_000_000)
            dur = rng.randint(1, 900)
            rec.update(server=rng.choice(SERVERS), dur=dur)
            body = {"server_name": rec["server"], "start_time": iso(start),
                    "end_time": iso(start + dur)}
            method, url = "POST", "/process_report"
        elif op == "impression":
            rec.update(user=rng.choice(USERS), sdk=rng.choice(SDKS))
            q = urllib.parse.urlencode({
                "sdk_version": rec["sdk"], "session_id": f"s{rng.randint(0, 10**9)}",
                "platform": rng.choice(["ios", "android", "web"]),
                "username": rec["user"], "country_code": rng.choice(["DE", "US", "FR"])})
            body, method, url = None, "GET", f"/impression?{q}"
        elif op == "math":
            body = {"algo": "factorial", "n": rng.choice([1000, 1500, 2000, 2500, 3000])}
            method, url = "POST", "/jobs/math"
        else:
            body = {"sleep_ms": self.noop_sleep_ms}
            method, url = "POST", "/jobs/noop"
        rec["t0"] = time.time()
        status, text, secs, err = load_http(method, url, body)
        rec.update(t1=time.time(), status=status, secs=secs, err=err)
        accepted = (op == "impression" and status == 200) or (op != "impression" and status == 202)
        rec["accepted"] = accepted
        if accepted and op != "impression":
            b = jbody(text) or {}
            rec["job_id"] = b.get("job_id")
            if not rec["job_id"]:
                rec["accepted"] = False
                rec["err"] = f"202 without job_id: {text[:200]}"
        if status is not None and status >= 500:
            rec["body"] = text[:400]
        elif status is not None and not accepted:
            rec["body"] = text[:200]
        with self.lock:
            self.records.append(rec)


class ReadySampler:
    """GET /ready every 200 ms; keeps every answer."""

    def __init__(self):
        self.samples = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join()

    def _run(self):
        while not self.stop_event.is_set():
            t = time.time()
            status, text, _, err = http("GET", f"{API}/ready", timeout=CLIENT_TIMEOUT)
            self.samples.append((t, status, text.strip() if status else err))
            self.stop_event.wait(max(0.0, 0.2 - (time.time() - t)))

    def summary(self, t_from, t_to):
        """Distinct answers between t_from and t_to, in order of first appearance."""
        seen = {}
        for t, status, text in self.samples:
            if t_from <= t <= t_to:
                key = (status, text)
                if key not in seen:
                    seen[key] = [t, t, 0]
                seen[key][1] = t
                seen[key][2] += 1
        return [(k[0], k[1], v[0] - t_from, v[1] - t_from, v[2]) for k, v in seen.items()]


# --------------------------------------------------------------------------- reading state


def job(job_id):
    status, text, _, err = http("GET", f"{API}/jobs/{job_id}")
    return jbody(text) if status == 200 else None


def poll_jobs(ids, threads=6):
    """GET /jobs/{id} for every id, a few at a time; {id: record or None}."""
    ids = list(ids)
    out = {}
    lock = threading.Lock()

    def work(chunk):
        for i in chunk:
            r = job(i)
            with lock:
                out[i] = r

    chunks = [ids[k::threads] for k in range(threads)]
    ts = [threading.Thread(target=work, args=(c,)) for c in chunks if c]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def counters():
    """Report counts (total and per server) and impression/ad counters per user/sdk."""
    snap = {"reports": 0, "servers": {}, "users": {}, "sdks": {}, "ok": True}
    status, text, _, _ = http("GET", f"{API}/process_statistics")
    b = jbody(text) or {}
    if status == 200:
        snap["reports"] = b.get("count", 0)
    elif status == 409:
        snap["reports"] = b.get("total", 0)
    else:
        snap["ok"] = False
    for s in SERVERS:
        status, text, _, _ = http("GET", f"{API}/process_statistics?server_name={s}")
        if status == 200:
            snap["servers"][s] = (jbody(text) or {}).get("count", 0)
        elif status in (404, 409):
            snap["servers"][s] = 0
        else:
            snap["ok"] = False
    for scope, names, key in (("username", USERS + AD_USERS, "users"), ("sdk", SDKS, "sdks")):
        for n in names:
            status, text, _, _ = http("GET", f"{API}/statistics?{scope}={urllib.parse.quote(n)}")
            if status == 200:
                v = (jbody(text) or {}).get(n, {})
                snap[key][n] = (v.get("impressions", 0), v.get("ad_requests", 0))
            elif status == 404:
                snap[key][n] = (0, 0)
            else:
                snap["ok"] = False
    return snap


AD_USERS = ["ad-hang", "ad-closed", "ad-ok"]


def all_processes_alive(scenario):
    for p in STEADY + EXTRA:
        if p.popen is not None and not p.alive() and not p.expected_exit:
            code = p.popen.returncode
            finding(scenario, f"process {p.name} (pid {p.pid}) exited on its own with {code}; "
                              f"log tail: {tail(p.log_path, 8)}")
            p.expected_exit = True


# --------------------------------------------------------------------------- checks


def settle(scenario, load, before):
    """Waits (bounded) until every accepted job is finished and the counters caught up;
    returns the figures of the scenario."""
    recs = load.records
    ids = {r["job_id"]: r for r in recs if r.get("accepted") and r.get("job_id")}
    acc_reports = [r for r in recs if r["op"] == "report" and r["accepted"]]
    unk = [r for r in recs if r["status"] is None]  # no answer: may or may not be accepted
    unk_reports = sum(1 for r in unk if r["op"] == "report")
    acc_imp_user, unk_imp_user = {}, {}
    acc_imp_sdk = {}
    for r in recs:
        if r["op"] == "impression":
            if r["accepted"]:
                acc_imp_user[r["user"]] = acc_imp_user.get(r["user"], 0) + 1
                acc_imp_sdk[r["sdk"]] = acc_imp_sdk.get(r["sdk"], 0) + 1
            elif r["status"] is None:
                unk_imp_user[r["user"]] = unk_imp_user.get(r["user"], 0) + 1
    pending = set(ids)
    final = {}
    deadline = time.time() + SETTLE_SECONDS
    settle_start = time.time()
    after = before
    while True:
        got = poll_jobs(pending)
        for i, r in got.items():
            if r and r.get("status") in ("succeeded", "dead", "cancelled"):
                final[i] = r
                pending.discard(i)
            elif r:
                final[i] = r  # latest seen, for the stuck list
        after = counters()
        imp_done = all(after["users"].get(u, (0, 0))[0] - before["users"].get(u, (0, 0))[0]
                       >= n for u, n in acc_imp_user.items())
        rep_done = after["reports"] - before["reports"] >= len(acc_reports)
        if not pending and imp_done and rep_done:
            break
        if time.time() >= deadline:
            break
        time.sleep(1.0)
    settled_in = time.time() - settle_start

    fig = {"settled_in": settled_in}
    statuses = {}
    for i in ids:
        s = (final.get(i) or {}).get("status", "unknown")
        statuses[s] = statuses.get(s, 0) + 1
    succeeded = statuses.get("succeeded", 0)
    not_done = {i: (final.get(i) or {}) for i in ids if (final.get(i) or {}).get("status") != "succeeded"}
    fig["job_statuses"] = statuses
    fig["not_done"] = [(i, ids[i]["op"], r.get("status"), r.get("attempts"), r.get("error"),
                        r.get("worker")) for i, r in list(not_done.items())[:10]]
    # Impressions: counted vs accepted per user (a request with no answer may count).
    imp_acc = sum(acc_imp_user.values())
    imp_lost = imp_dup = imp_counted = 0
    per_user = {}
    for u in USERS:
        delta = after["users"].get(u, (0, 0))[0] - before["users"].get(u, (0, 0))[0]
        a = acc_imp_user.get(u, 0)
        x = unk_imp_user.get(u, 0)
        per_user[u] = (a, delta, x)
        imp_counted += min(delta, a)
        imp_lost += max(0, a - delta)
        imp_dup += max(0, delta - a - x)
    sdk_mismatch = {}
    for s in SDKS:
        delta = after["sdks"].get(s, (0, 0))[0] - before["sdks"].get(s, (0, 0))[0]
        if delta != acc_imp_sdk.get(s, 0) and not unk:
            sdk_mismatch[s] = (acc_imp_sdk.get(s, 0), delta)
    fig["per_user"] = per_user
    fig["sdk_mismatch"] = sdk_mismatch
    # Reports: the count grows by exactly the accepted reports.
    rep_delta = after["reports"] - before["reports"]
    rep_ok = sum(1 for r in acc_reports if (final.get(r["job_id"]) or {}).get("status") == "succeeded")
    fig["reports"] = (len(acc_reports), rep_delta, unk_reports)
    rep_lost_effect = max(0, rep_ok - rep_delta)
    rep_dup = max(0, rep_delta - len(acc_reports) - unk_reports)
    srv_mismatch = {}
    for s in SERVERS:
        a = sum(1 for r in acc_reports if r["server"] == s)
        d = after["servers"].get(s, 0) - before["servers"].get(s, 0)
        if d != a and not unk_reports:
            srv_mismatch[s] = (a, d)
    fig["server_mismatch"] = srv_mismatch
    fig["accepted"] = len(ids) + imp_acc
    fig["completed"] = succeeded + imp_counted
    fig["lost"] = len(not_done) + imp_lost + rep_lost_effect
    fig["duplicated"] = imp_dup + rep_dup
    fig["redelivered"] = sum(1 for i in ids if ((final.get(i) or {}).get("attempts") or 0) > 1)
    fig["final"] = final
    fig["unknown"] = len(unk)
    if fig["lost"]:
        finding(scenario, f"{fig['lost']} lost: jobs not succeeded {len(not_done)} "
                          f"(e.g. {fig['not_done'][:5]}), impressions missing {imp_lost} "
                          f"(per user accepted/counted/no-answer {per_user}), report effects "
                          f"missing {rep_lost_effect}")
    if fig["duplicated"]:
        finding(scenario, f"{fig['duplicated']} duplicated: impressions {imp_dup} "
                          f"(per user {per_user}), reports {rep_dup} "
                          f"(accepted {len(acc_reports)}, counted {rep_delta})")
    if sdk_mismatch:
        finding(scenario, f"per-SDK impression counters differ (accepted, counted): {sdk_mismatch}")
    if srv_mismatch:
        finding(scenario, f"per-server report counts differ (accepted, counted): {srv_mismatch}")
    return fig


def classify_5xx(scenario, load, expect_backend):
    """5xx by code; a 500, or a 503 whose JSON body does not name the backend, is a finding."""
    by_code = {}
    bad = []
    for r in load.records:
        s = r["status"]
        if s is None or s < 500:
            continue
        by_code[s] = by_code.get(s, 0) + 1
        body = jbody(r.get("body", ""))
        text = json.dumps(body).lower() if body is not None else ""
        names = ("database", "postgres") if expect_backend == "database" else ("queue", "redis")
        if s != 503:
            bad.append((r["op"], s, r.get("body", "")[:200]))
        elif expect_backend is None:
            bad.append((r["op"], s, r.get("body", "")[:200]))
        elif body is None or not any(n in text for n in names):
            bad.append((r["op"], s, r.get("body", "")[:200]))
    if bad:
        finding(scenario, f"{len(bad)} unexpected 5xx answers (want only 503 naming "
                          f"{expect_backend or 'nothing: no outage'}), e.g. {bad[:3]}")
    return by_code


def hangs(scenario, load):
    h = [r for r in load.records if r["err"] == "timeout" or r["secs"] > CLIENT_TIMEOUT]
    if h:
        finding(scenario, f"{len(h)} requests took over {CLIENT_TIMEOUT:.0f} s, e.g. (op, sent at "
                          f"s since the start, took s, status or error) "
                          f"{[(r['op'], round(r['t0'] - T0, 1), round(r['secs'], 2), r['err'] or r['status']) for r in h[:5]]}")
    conn = [r for r in load.records if r["err"] and r["err"] != "timeout"]
    if conn:
        finding(scenario, f"{len(conn)} requests failed without an HTTP answer, e.g. "
                          f"{[(r['op'], round(r['t0'] - T0, 1), r['err']) for r in conn[:3]]}")
    return len(h)


def recovery(load, fig, t_up):
    """Seconds from the backend's return to the first 202/200 of a request sent after
    it, and to the `finished_at` of the last accepted job whose request was sent before it."""
    if t_up is None:
        return None, None
    firsts = [r["t1"] for r in load.records if r["accepted"] and r["t0"] >= t_up]
    first = min(firsts) - t_up if firsts else None
    before = [r["job_id"] for r in load.records
              if r.get("job_id") and r["accepted"] and r["t0"] <= t_up]
    ends = [parse_ts((fig["final"].get(i) or {}).get("finished_at")) for i in before]
    ends = [e for e in ends if e is not None]
    last = max(ends) - t_up if ends else None
    return first, last


def fmt_s(v):
    return "n/a" if v is None else (f"{v:.1f} s" if v >= 0 else "0 s (before)")


# --------------------------------------------------------------------------- scenarios

ROWS = []
NOTES = []


def run_scenario(key, title, fault, expect_backend=None, noop_sleep_ms=800):
    log(f"=== scenario {key}: {title}")
    before = counters()
    sampler = ReadySampler()
    sampler.start()
    load = Load(noop_sleep_ms=noop_sleep_ms)
    load.start()
    info = {"notes": [], "t_down": None, "t_up": None}
    try:
        fault(load, info)
    except Exception as e:  # noqa: BLE001
        finding(key, f"fault injection failed: {type(e).__name__}: {e}")
    load.join()
    sampler.stop()
    n = len(load.records)
    rate = n / max(0.001, load.ended - load.started)
    log(f"load done: {n} requests in {load.ended - load.started:.1f} s; settling")
    by_code = classify_5xx(key, load, expect_backend)
    hang_n = hangs(key, load)
    fig = settle(key, load, before)
    all_processes_alive(key)
    first, last = recovery(load, fig, info["t_up"])
    if info["t_up"] is not None:
        rec = f"first 202 {fmt_s(first)}; last job {fmt_s(last)}"
    else:
        rec = "n/a"
    extra_5xx = info.get("extra_5xx")
    fivexx = ", ".join(f"{c}×{n}" for c, n in sorted(by_code.items())) or "none"
    if extra_5xx:
        fivexx += f"; {extra_5xx}"
    ROWS.append([title, f"{rate:.1f}", str(fig["accepted"]), str(fig["completed"]),
                 str(fig["lost"]), str(fig["duplicated"]), fivexx, str(hang_n), rec])
    notes = list(info["notes"])
    if info["t_down"] is not None:
        window_end = (info["t_up"] or info["t_down"]) + 3
        answers = sampler.summary(info["t_down"] - 0.5, window_end)
        said = "; ".join(f"{s} `{t[:160]}` ×{c} (+{a:.1f}…+{b:.1f} s)" for s, t, a, b, c in answers)
        notes.append(f"/ready (every 200 ms) from 0.5 s before the fault to 3 s after the "
                     f"return, times from the fault: {said}")
    else:
        answers = sampler.summary(load.started, load.ended)
        said = "; ".join(f"{s} `{t[:160]}` ×{c}" for s, t, a, b, c in answers)
        notes.append(f"/ready (every 200 ms) during the load: {said}")
    codes = {}
    for r in load.records:
        k = r["status"] if r["status"] is not None else r["err"]
        codes[k] = codes.get(k, 0) + 1
    notes.append(f"status codes of the load: {dict(sorted(codes.items(), key=str))}; "
                 f"no answer: {fig['unknown']}")
    samples_503 = {}
    for r in load.records:
        if r["status"] == 503 and r["op"] not in samples_503:
            samples_503[r["op"]] = r.get("body", "")[:160]
    if samples_503:
        notes.append("a 503 body per route: " + "; ".join(f"{op}: `{b}`" for op, b in samples_503.items()))
    notes.append(f"job statuses after settling ({fig['settled_in']:.1f} s): {fig['job_statuses']}; "
                 f"jobs run more than once (attempts > 1): {fig['redelivered']}")
    notes.append(f"reports accepted/counted/no-answer: {fig['reports']}; impressions per user "
                 f"accepted/counted/no-answer: {fig['per_user']}")
    lat = sorted(r["secs"] for r in load.records)
    if lat:
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        slow = max(load.records, key=lambda r: r["secs"])
        notes.append(f"latency of the load: p50 {lat[len(lat) // 2] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
                     f"max {slow['secs'] * 1000:.0f} ms ({slow['op']} sent at "
                     f"+{slow['t0'] - load.started:.1f} s, answered {slow['status'] or slow['err']})")
    if fig["not_done"]:
        notes.append(f"not succeeded (id, op, status, attempts, error, worker): {fig['not_done']}")
        for jid, *_ in fig["not_done"][:5]:
            lines = []
            for name in sorted(os.listdir(LOGS)):
                lines += [f"{name}: {l}" for l in tail(os.path.join(LOGS, name), 20, jid)]
            notes.append(f"log lines naming {jid}: {lines[:8] or 'none'}")
    sweeps = len(tail(SCHEDULER.log_path, 100000, "pushing the task of a stuck job again"))
    notes.append(f"stuck-job sweep pushes so far (scheduler log): {sweeps}")
    NOTES.append((f"{key}. {title}", notes))
    for line in notes:
        log("  " + line)


def s1_sigkill(load, info):
    kills = []
    time.sleep(3)
    i = 0
    end = load.started + load.seconds - 3
    while time.time() < end:
        w = WORKERS[i % 2]
        pid = w.pid
        t = time.time()
        w.signal(signal.SIGKILL)
        w.wait(5)
        if info["t_down"] is None:
            info["t_down"] = t
        start_worker(w)
        info["t_up"] = time.time()
        kills.append((w.name, pid, round(t - load.started, 1), round(info["t_up"] - t, 1)))
        i += 1
        time.sleep(max(0.0, 4 - (time.time() - t)))
    info["notes"].append(f"SIGKILLs (worker, pid, at s into the load, restart took s): {kills}")
    info["notes"].append("recovery is measured from the last restart")


def s2_redis(load, info):
    time.sleep(8)
    info["t_down"] = time.time()
    REDIS.signal(signal.SIGTERM)
    code = REDIS.wait(15)
    stopped = time.time()
    time.sleep(OUTAGE_SECONDS)
    start_redis()
    info["t_up"] = time.time()
    info["notes"].append(f"Redis SIGTERM at +{info['t_down'] - load.started:.1f} s, exited "
                         f"{code} after {stopped - info['t_down']:.1f} s, back (PONG) after "
                         f"{info['t_up'] - info['t_down']:.1f} s")


def s3_postgres(load, info):
    time.sleep(8)
    info["t_down"] = time.time()
    r = stop_pg("fast")
    stopped = time.time()
    time.sleep(OUTAGE_SECONDS)
    start_pg()
    info["t_up"] = time.time()
    info["notes"].append(f"pg_ctl stop -m fast at +{info['t_down'] - load.started:.1f} s "
                         f"(rc {r.returncode}, took {stopped - info['t_down']:.1f} s), "
                         f"started again after {info['t_up'] - info['t_down']:.1f} s")


def s4_sigterm(load, info):
    time.sleep(8)
    w = WORKERS[0]
    pid = w.pid
    info["t_down"] = t_sig = time.time()
    w.signal(signal.SIGTERM)
    code = w.wait(GRACE_MS / 1000 + 10)
    t_exit = time.time()
    took = t_exit - t_sig
    if code is None:
        finding("4", f"worker pid {pid} still running {took:.1f} s after SIGTERM; killed")
        w.popen.kill()
        w.wait(5)
    info["notes"].append(f"worker pid {pid}: SIGTERM at +{t_sig - load.started:.1f} s, exit code "
                         f"{code}, exited after {took:.2f} s (SHUTDOWN_GRACE_MS={GRACE_MS})")
    if code != 0:
        finding("4", f"worker exit code after SIGTERM is {code}, not 0")
    if took > GRACE_MS / 1000 + 1:
        finding("4", f"worker took {took:.1f} s to exit, over SHUTDOWN_GRACE_MS {GRACE_MS} ms + 1 s")
    grep = tail(w.log_path, 20, r"shutdown|grace|stopped|signal|ERROR|WARN")
    info["notes"].append(f"its last log lines: {grep[-6:]}")
    start_worker(w)
    info["t_up"] = time.time()
    SIGTERM_INFO.update({"sigterm": (pid, t_sig, t_exit), "load": load})


def s5_upstreams(load, info):
    notes = info["notes"]
    time.sleep(2)
    # GET /ad: hang, closed, and the sandbox as control, all at once.
    results = {"hang": [], "closed": [], "ok": []}
    lock = threading.Lock()

    def probe(kind, base, user, n):
        for k in range(n):
            q = urllib.parse.urlencode({"sdk_version": "9.9", "session_id": f"p{k}", "platform": "web",
                                        "username": user, "country_code": "DE"})
            status, text, secs, err = http("GET", f"{base}/ad?{q}")
            with lock:
                results[kind].append((status, round(secs, 2), err, text[:120]))

    ts = [threading.Thread(target=probe, args=a) for a in (
        ("hang", f"http://127.0.0.1:{EXTRA_PORTS['hang']}", "ad-hang", 6),
        ("hang", f"http://127.0.0.1:{EXTRA_PORTS['hang']}", "ad-hang", 6),
        ("closed", f"http://127.0.0.1:{EXTRA_PORTS['closed']}", "ad-closed", 12),
        ("ok", API, "ad-ok", 6))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    limit = ADS_TIMEOUT_MS / 1000 + 0.5
    for kind, want in (("hang", {504}), ("closed", {502, 504}), ("ok", {200})):
        rs = results[kind]
        codes = {}
        for s, _, e, _ in rs:
            codes[s if s is not None else e] = codes.get(s if s is not None else e, 0) + 1
        slow = max((r[1] for r in rs), default=0)
        notes.append(f"GET /ad with the VAST server {kind}: {codes}, slowest {slow:.2f} s "
                     f"(ADS_TIMEOUT_MS={ADS_TIMEOUT_MS}); e.g. `{rs[0][3] if rs else ''}`")
        bad = [r for r in rs if r[0] not in want]
        if bad:
            finding("5", f"/ad with the VAST server {kind}: wanted {sorted(want)}, got e.g. {bad[:3]}")
        if kind != "ok" and slow > limit:
            finding("5", f"/ad with the VAST server {kind} took {slow:.2f} s, over "
                         f"ADS_TIMEOUT_MS + 0.5 s = {limit:.1f} s")
    LAST_AD_RESULTS.update(results)
    fives = {}
    for kind in ("hang", "closed"):
        for s, _, _, _ in results[kind]:
            if s is not None and s >= 500:
                fives[s] = fives.get(s, 0) + 1
    info["extra_5xx"] = ", ".join(f"{c}×{n}" for c, n in sorted(fives.items())) + " from /ad probes (expected)"
    # rates.ingest against a closed port, then a hanging one: dead, error kept, nothing stored.
    for kind, url in (("closed", f"http://127.0.0.1:{CLOSED_PORT}/frankfurter"),
                      ("hang", f"http://127.0.0.1:{HANG_PORT}/frankfurter")):
        pid = RATES_WORKER.pid
        t = time.time()
        RATES_WORKER.signal(signal.SIGTERM)
        code = RATES_WORKER.wait(GRACE_MS / 1000 + 10)
        notes.append(f"rates worker pid {pid} SIGTERM (idle): exit {code} after {time.time() - t:.2f} s")
        if code != 0:
            finding("5", f"idle rates worker exit code after SIGTERM is {code}")
        RATES_WORKER.env["FRANKFURTER_URL"] = url
        start_worker(RATES_WORKER)
        day = RATE_DAYS[kind]
        status, text, _, err = http("POST", f"http://127.0.0.1:{EXTRA_PORTS['closed']}/rates/refresh?date={day}")
        jid = (jbody(text) or {}).get("job_id")
        if status != 202 or not jid:
            finding("5", f"POST /rates/refresh?date={day} answered {status} {err} {text[:200]}")
            continue
        deadline = time.time() + 40
        rec = None
        while time.time() < deadline:
            rec = job(jid)
            if rec and rec.get("status") in ("dead", "succeeded", "cancelled"):
                break
            time.sleep(0.5)
        st = (rec or {}).get("status")
        notes.append(f"rates.ingest {day} with frankfurter {kind} (JOB_MAX_ATTEMPTS=2): status {st}, "
                     f"attempts {(rec or {}).get('attempts')}, error `{(rec or {}).get('error')}`, "
                     f"{(parse_ts((rec or {}).get('finished_at')) or t) - t:.1f} s after the restart")
        if st != "dead" or not (rec or {}).get("error"):
            finding("5", f"rates.ingest {day} with frankfurter {kind}: wanted dead with an error, "
                         f"got {rec}")
        status, text, _, _ = http("GET", f"{API}/rates?date={day}")
        notes.append(f"GET /rates?date={day} afterwards: {status} `{text[:120]}`")
        if status != 404:
            finding("5", f"GET /rates?date={day} after a dead ingest answered {status}: {text[:200]}")
    info["notes"].append("the main api stays on the sandbox and its backends stay up; the "
                         "faults are upstream only")


# --------------------------------------------------------------------------- hanging / closed upstream


def hang_server():
    """Accepts connections and never answers; returns its port."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    held = []

    def run():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


def weekdays_back(n_from, count):
    out = []
    d = datetime.date.today() - datetime.timedelta(days=n_from)
    while len(out) < count:
        if d.weekday() < 5:
            out.append(d.isoformat())
        d -= datetime.timedelta(days=1)
    return out


HANG_PORT = hang_server()
CLOSED_PORT = free_port()  # bound and released: nothing listens there
EXTRA_PORTS = {}
_days = weekdays_back(10, 3)
RATE_DAYS = {"control": _days[0], "closed": _days[1], "hang": _days[2]}


# --------------------------------------------------------------------------- main


def write_report(total):
    head = ["fault", "load during it (req/s)", "accepted", "completed", "lost", "duplicated",
            "5xx seen (by code)", ">5 s hangs", "recovery time"]
    lines = [f"# Conveyor fault report ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"Redis + Postgres (private servers), api ×1, worker ×2 (`{MAIN_QUEUES}`) + a rates "
             f"worker, scheduler, sandbox. Load: {THREADS} threads, target {RATE:.0f} req/s "
             f"(reports 35 %, impressions 40 %, `POST /jobs/math` factorial 15 %, `POST /jobs/noop` "
             f"sleep 10 %), {LOAD_SECONDS:.0f} s per scenario, client timeout {CLIENT_TIMEOUT:.0f} s, "
             f"settle ≤ {SETTLE_SECONDS:.0f} s. Total run {total:.0f} s. Logs: `{LOGS}`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in ROWS:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
    lines += ["", "accepted = 202 with a job id (reports, math, noop) + 200 impressions; completed = "
              "jobs `succeeded` + impressions counted (`/statistics`); lost = accepted jobs not "
              "`succeeded` after settling + impressions/report effects missing from the counters; "
              "duplicated = counter excess over accepted (+ requests with no answer). Recovery: from "
              "the backend's return to the first accepted request sent after it, and to the "
              "`finished_at` of the last accepted job whose request was sent before it.", ""]
    for title, notes in NOTES:
        lines.append(f"## {title}")
        lines.append("")
        for n in notes:
            lines.append(f"- {n}")
        lines.append("")
    lines.append("## Findings")
    lines.append("")
    if FINDINGS:
        for s, t in FINDINGS:
            lines.append(f"- scenario {s}: {t}")
    else:
        lines.append("- none: nothing lost, nothing duplicated, no 500, no hang, no crash")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(REPORT) or ".", exist_ok=True)
    with open(REPORT, "w") as f:
        f.write(text)
    return text


def main():
    log(f"logs and data under {DIR}")
    start_redis()
    start_pg()
    log(f"redis :{REDIS_PORT}, postgres :{PG_PORT} (own servers)")
    mig = subprocess.run([BIN, "migrate"], env=conveyor_env(), capture_output=True, text=True, timeout=120)
    with open(os.path.join(LOGS, "migrate.log"), "w") as f:
        f.write(mig.stdout + mig.stderr)
    if mig.returncode != 0:
        raise RuntimeError(f"migrate failed: {mig.stderr[-2000:]}")
    SANDBOX_P.start()
    if not wait_http(f"{SANDBOX}/vast"):
        raise RuntimeError("sandbox did not start")
    API_P.start()
    if not wait_http(f"{API}/ready"):
        raise RuntimeError(f"api not ready; see {API_P.log_path}")
    for w in WORKERS + [RATES_WORKER]:
        start_worker(w)
    SCHEDULER.start()
    SCHEDULER.wait_log("rates timetable off", timeout=20)
    log(f"api {API}, sandbox {SANDBOX}, workers pids {[w.pid for w in WORKERS]}, "
        f"rates worker {RATES_WORKER.pid}, scheduler {SCHEDULER.pid}")
    # Control: rates from the sandbox go through.
    day = RATE_DAYS["control"]
    status, text, _, _ = http("POST", f"{API}/rates/refresh?date={day}")
    jid = (jbody(text) or {}).get("job_id")
    deadline = time.time() + 20
    rec = None
    while jid and time.time() < deadline:
        rec = job(jid)
        if rec and rec.get("status") in ("succeeded", "dead"):
            break
        time.sleep(0.3)
    log(f"control: rates.ingest {day} from the sandbox: {(rec or {}).get('status')}")
    if (rec or {}).get("status") != "succeeded":
        finding("setup", f"control rates.ingest {day} did not succeed: {rec or text}")

    if "1" in SCENARIOS:
        run_scenario("1", "SIGKILL a worker every 4 s (restarted)", s1_sigkill)
    if "2" in SCENARIOS:
        run_scenario("2", f"Redis restart (SIGTERM, {OUTAGE_SECONDS:g} s down, AOF)", s2_redis, expect_backend="queue")
    if "3" in SCENARIOS:
        run_scenario("3", f"Postgres restart (stop -m fast, {OUTAGE_SECONDS:g} s down)", s3_postgres, expect_backend="database")
    if "4" in SCENARIOS:
        run_scenario("4", "SIGTERM a worker under load", s4_sigterm, noop_sleep_ms=3000,
                     expect_backend=None)
        check_sigterm()
    if "5" in SCENARIOS:
        for kind, url in (("hang", f"http://127.0.0.1:{HANG_PORT}/vast"),
                          ("closed", f"http://127.0.0.1:{CLOSED_PORT}/vast")):
            port = free_port()
            EXTRA_PORTS[kind] = port
            p = conveyor(f"api-{kind}", "api", BIND_ADDR=f"127.0.0.1:{port}", ADS_VAST_URL=url,
                         JOB_MAX_ATTEMPTS=2,
                         FRANKFURTER_URL=f"http://127.0.0.1:{CLOSED_PORT}/frankfurter")
            EXTRA.append(p)
            p.start()
            if not wait_http(f"http://127.0.0.1:{port}/ready"):
                raise RuntimeError(f"api-{kind} not ready")
        before_ads = counters()
        run_scenario("5", "upstream hangs / refuses (/ad, rates)", s5_upstreams)
        after_ads = counters()
        for kind, user in (("hang", "ad-hang"), ("closed", "ad-closed"), ("ok", "ad-ok")):
            answered = sum(1 for r in LAST_AD_RESULTS.get(kind, []) if r[0] in (200, 502, 504))
            d = after_ads["users"][user][1] - before_ads["users"][user][1]
            NOTES[-1][1].append(f"ad_requests counted for {user}: {d} (answered /ad: {answered})")
            if d != answered:
                finding("5", f"ad_requests of {user}: counted {d}, /ad answered {answered}")


LAST_AD_RESULTS = {}
SIGTERM_INFO = {}


def check_sigterm():
    """The terminated worker took nothing after SIGTERM and finished what it held."""
    s = SIGTERM_INFO.get("sigterm")
    load = SIGTERM_INFO.get("load")
    if not s or not load:
        return
    pid, t_sig, t_exit = s
    ids = [r["job_id"] for r in load.records if r.get("job_id")]
    recs = poll_jobs(ids)
    pat = re.compile(rf"-{pid}-\d+-[a-z]+$")
    mine = [r for r in recs.values() if r and r.get("worker") and pat.search(r["worker"])]
    held = [r for r in mine if (parse_ts(r.get("started_at")) or 0) < t_sig
            and (parse_ts(r.get("finished_at")) or 0) >= t_sig - 0.001]
    late = [r for r in mine if (parse_ts(r.get("started_at")) or 0) > t_sig + 0.05]
    unfinished = [r for r in held if r.get("status") != "succeeded"
                  or (parse_ts(r.get("finished_at")) or 1e18) > t_exit + 0.05]
    # Jobs the worker held but that were finished by another worker show up under that
    # other worker's name: a job started before SIGTERM and finished after the exit.
    handed = [r for r in recs.values() if r and r.get("worker") and not pat.search(r["worker"])
              and (r.get("attempts") or 0) > 1
              and (parse_ts(r.get("started_at")) or 0) > t_sig]
    note = (f"worker pid {pid} after SIGTERM: {len(held)} jobs in flight at the signal, "
            f"finished by it before exit: {len(held) - len(unfinished)}; started by it after "
            f"the signal: {len(late)}; jobs re-run elsewhere after the signal: {len(handed)}")
    NOTES[-1][1].append(note)
    log("  " + note)
    if late:
        finding("4", f"worker pid {pid} started {len(late)} jobs after SIGTERM, e.g. "
                     f"{[(r['id'], r['kind'], r['started_at']) for r in late[:3]]}")
    if unfinished:
        finding("4", f"worker pid {pid} did not finish {len(unfinished)} in-flight jobs before "
                     f"exiting, e.g. {[(r['id'], r['status'], r['finished_at']) for r in unfinished[:3]]}")
    if handed:
        finding("4", f"{len(handed)} jobs ran again on another worker after the SIGTERM (the "
                     f"terminated worker did not finish them), e.g. "
                     f"{[(r['id'], r['kind'], r['attempts'], r['worker']) for r in handed[:5]]}")


def teardown():
    for p in reversed(STEADY + EXTRA):
        try:
            p.stop()
        except Exception:  # noqa: BLE001
            pass
    try:
        stop_pg("fast")
    except Exception:  # noqa: BLE001
        pass
    try:
        REDIS.stop()
    except Exception:  # noqa: BLE001
        pass


if __name__ == "__main__":
    code = 0
    try:
        main()
        panics = []
        for name in os.listdir(LOGS):
            panics += [f"{name}: {l}" for l in tail(os.path.join(LOGS, name), 5, r"panicked")]
        if panics:
            finding("all", f"panics in the logs: {panics[:5]}")
    except Exception as e:  # noqa: BLE001
        finding("run", f"aborted: {type(e).__name__}: {e}")
    finally:
        teardown()
    total = time.time() - T0
    text = write_report(total)
    print()
    print(text)
    print(f"report saved to {REPORT}; logs under {LOGS}; total {total:.0f} s")
    # One line for CI (.ci/run sums it): a scenario passes when no finding names it; a
    # finding of the whole run (a panic, an abort) fails it once more.
    named = {scenario for scenario, _ in FINDINGS}
    failed = sum(1 for key in SCENARIOS if key in named) + len(named - set(SCENARIOS))
    print(f"faults: {len(SCENARIOS) - sum(1 for key in SCENARIOS if key in named)} passed, {failed} failed")
    sys.exit(1 if FINDINGS else 0)
