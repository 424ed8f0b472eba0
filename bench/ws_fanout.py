"""Load check of live order status: N WebSocket subscribers on ONE service process, one payment notification each.

    .venv/bin/python bench/ws_fanout.py [--subscribers 5000] [--concurrency 200]      (or `make bench`)

Starts its own Redis, WeChat Pay sandbox and service process (on a database of its own), creates the users and
orders through the API, opens one WebSocket per order from separate client processes, then posts one signed
TRANSACTION.SUCCESS notification per order to the real callback endpoint, a bounded number at a time.

Latency of an order: from the moment just before its notification POST is sent (taken on the client side, as the
service cannot be asked when it received it) to the moment its subscriber receives the frame with status "paid".
Both instants are time.monotonic_ns(), one system-wide clock. Memory per connection: the service's VmRSS
(/proc/PID/status) after the sockets are open and subscribed minus before, divided by their number.
Everything talks to 127.0.0.1 only, every phase has a time limit, and every process started here is stopped.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import urlparse, urlunparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pymysql  # noqa: E402
from tornado.httpclient import AsyncHTTPClient, HTTPRequest  # noqa: E402

from settings import parse_database_url  # noqa: E402
from tests.api import Api  # noqa: E402
from tests.forge import Forger  # noqa: E402
from tests.harness import RedisServer, SandboxProcess, ServiceProcess, read_env_file  # noqa: E402

from bench.fanout_report import print_summary, spread, verdict  # noqa: E402
from bench.procstat import (  # noqa: E402
    cpu_seconds, cpu_snapshot, machine, max_open_files, open_fds, pid_from_file, proc_status,
)

BENCH_VAR = os.path.join(ROOT, "var", "bench")
BENCH_DB_SUFFIX = "_bench"  # gym_test_bench: the dev grants cover gym_test_%, and pytest never drops it
ADMIN = "bench-admin"
API_MAX_CAPACITY = 1000  # services/schedules.py refuses more seats per session


def log(message):
    """A progress line on stderr, with the time since start."""
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


STARTED = time.monotonic()


# -- the environment -------------------------------------------------------------------------------
def raise_open_files_limit():
    """Soft RLIMIT_NOFILE up to the hard limit; the service and client processes inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def dev_env():
    """var/dev.env, starting the project's MariaDB and Redis first if it is missing."""
    path = os.path.join(ROOT, "var", "dev.env")
    if not os.path.exists(path):
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "servers.sh"), "start"], check=True)
    return read_env_file(path)


def bench_database_url(test_url):
    """The test database's URL with the bench's own database name."""
    parsed = urlparse(test_url)
    return urlunparse(parsed._replace(path=parsed.path.rstrip("/") + BENCH_DB_SUFFIX))


def db_connect(url, with_db=True):
    """A plain PyMySQL connection (setup and final checks only, never during the measurement)."""
    db = parse_database_url({"DATABASE_URL": url})
    return pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password,
                           database=db.name if with_db else None, autocommit=True, charset="utf8mb4")


def recreate_database(url):
    """Drop and recreate the bench database, then migrate it and add the operator who makes the schedule."""
    name = parse_database_url({"DATABASE_URL": url}).name
    conn = db_connect(url, with_db=False)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    password_file = os.path.join(BENCH_VAR, "admin_password")
    with open(password_file, "w", encoding="utf-8") as fh:
        fh.write("bench-password-not-secret")
    subprocess.run([sys.executable, "manage.py", "create-operator", "--username", ADMIN, "--password-file",
                    password_file, "--role", "admin"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def drop_database(url):
    """Remove the bench database (its outcome is in the figures file)."""
    name = parse_database_url({"DATABASE_URL": url}).name
    conn = db_connect(url, with_db=False)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


# -- the phases ------------------------------------------------------------------------------------
async def create_orders(api, db_url, count, concurrency):
    """A schedule with `count` seats, then `count` users who each log in and order one seat (all through the API)."""
    status, data, _ = await api.call("POST", "/api/v1/admin/login",
                                     {"username": ADMIN, "password": "bench-password-not-secret"})
    assert status == 200, data
    starts = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)).isoformat()
    status, schedule, _ = await api.call("POST", "/api/v1/admin/schedules",
                                         {"title": "体验课 bench", "starts_at": starts,
                                          "capacity": min(count, API_MAX_CAPACITY)}, token=data["token"])
    assert status == 201, schedule
    if count > API_MAX_CAPACITY:  # the admin API stops at a real gym's size; the bench needs one seat per order
        conn = db_connect(db_url)
        with conn.cursor() as cur:
            cur.execute("UPDATE course_schedules SET capacity = %s WHERE id = %s", (count, schedule["id"]))
        conn.close()
    orders = []
    gate = asyncio.Semaphore(concurrency)

    async def one():
        async with gate:
            token, openid = await api.login()
            status, order = await api.order(token, schedule["id"])
            assert status == 201 and order["status"] == "pending", (status, order)
            assert order["reservation"]["status"] == "temporary", order
            orders.append((token, order["order_id"], openid))
            if len(orders) % 1000 == 0:
                log(f"  {len(orders)}/{count} users logged in with an order")

    await asyncio.gather(*(one() for _ in range(count)))
    return schedule["id"], orders


async def start_clients(service_url, orders, procs, deadline):
    """Client processes, each with its share of the orders; returns them once all are subscribed."""
    clients = []
    ws_url = service_url.replace("http://", "ws://") + "/ws/orders"
    for k in range(procs):
        share = orders[k::procs]
        job = os.path.join(BENCH_VAR, f"client-{k}.json")
        with open(job, "w", encoding="utf-8") as fh:
            json.dump({"url": ws_url, "orders": [[token, order_id] for token, order_id, _ in share]}, fh)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(ROOT, "bench", "ws_subscribers.py"), "--orders", job,
            "--result", os.path.join(BENCH_VAR, f"client-{k}-result.json"), "--deadline", str(deadline),
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        clients.append(proc)
    return clients


async def next_event(proc, timeout):
    """The next JSON line a client process prints."""
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise RuntimeError(f"client process {proc.pid} exited with {await proc.wait()}")
    return json.loads(line)


async def close_sockets(clients, pid, fds_before, timeout):
    """Have the clients close every socket at once; how long and how much service CPU until the service let go."""
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    for c in clients:
        c.stdin.write(b"close\n")
        await c.stdin.drain()
    await asyncio.wait_for(asyncio.gather(*(c.wait() for c in clients)), timeout)
    while open_fds(pid) > fds_before + 10 and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.05)
    return {"close_seconds": time.monotonic() - t0, "service_cpu_close_seconds": cpu_seconds(pid) - cpu0,
            "fds_after_close": open_fds(pid)}


def forge_notifications(forger, orders):
    """One signed, encrypted TRANSACTION.SUCCESS per order, made before the clock starts."""
    forged = []
    for _, order_id, openid in orders:
        body = forger.body(forger.transaction(order_id, total=20000, openid=openid))
        forged.append((order_id, body, forger.headers(body)))
    return forged


async def send_notifications(url, forged, concurrency):
    """POST every notification, at most `concurrency` in flight; returns send instants, ack times and codes."""
    http = AsyncHTTPClient(force_instance=True, max_clients=concurrency)
    gate = asyncio.Semaphore(concurrency)
    sent_ns, ack_ns, codes = {}, {}, Counter()

    async def one(order_id, body, headers):
        request = HTTPRequest(url, method="POST", body=body, headers=headers, request_timeout=120,
                              connect_timeout=30)
        async with gate:
            t0 = time.monotonic_ns()  # "the service gets the notification", as seen from the sender
            response = await http.fetch(request, raise_error=False)
            t1 = time.monotonic_ns()
        sent_ns[order_id] = t0
        ack_ns[order_id] = t1 - t0
        codes[response.code] += 1

    await asyncio.gather(*(one(*item) for item in forged))
    http.close()
    return sent_ns, ack_ns, codes


def database_outcome(url):
    """What MySQL says happened: order and reservation statuses, notification outcomes."""
    conn = db_connect(url)
    out = {}
    with conn.cursor() as cur:
        for key, sql in (("orders", "SELECT status, COUNT(*) FROM payment_orders GROUP BY status"),
                         ("reservations", "SELECT status, COUNT(*) FROM seat_reservations GROUP BY status"),
                         ("notifications", "SELECT outcome, COUNT(*) FROM notification_receipts GROUP BY outcome"),
                         ("transactions", "SELECT trade_state, COUNT(*) FROM payment_transactions GROUP BY 1"),
                         ("booking_notices", "SELECT status, COUNT(*) FROM booking_notices GROUP BY status")):
            cur.execute(sql)
            out[key] = {row[0]: row[1] for row in cur.fetchall()}
    conn.close()
    return out


# -- the run ---------------------------------------------------------------------------------------
async def measure(args, service, sandbox, redis_pid, db_url):
    """Setup through the API, open and subscribe, send, collect; returns the figures."""
    AsyncHTTPClient.configure(None, max_clients=args.setup_concurrency)
    api = Api(service.url, sandbox)
    figures = {"loadavg_at_start": os.getloadavg(), "subscribers": args.subscribers,
               "concurrency": args.concurrency, "client_procs": args.client_procs}

    t = time.monotonic()
    schedule_id, orders = await asyncio.wait_for(
        create_orders(api, db_url, args.subscribers, args.setup_concurrency), args.phase_timeout)
    figures["setup_seconds"] = time.monotonic() - t
    log(f"{len(orders)} users and pending orders (schedule {schedule_id}) in {figures['setup_seconds']:.1f}s")

    await asyncio.sleep(2)  # let the service settle before the baseline
    pid = service.proc.pid
    figures["rss_before_kib"] = proc_status(pid)["VmRSS"]
    figures["fds_before"] = open_fds(pid)

    clients = []
    try:
        cpu_before_open = cpu_seconds(pid)
        t = time.monotonic()
        clients = await start_clients(service.url, orders, args.client_procs, args.phase_timeout)
        pids = {"service": pid, "sandbox": sandbox.proc.pid, "redis": redis_pid, "bench (sender)": os.getpid(),
                **{f"ws client {k}": c.pid for k, c in enumerate(clients)}}
        ready = [await next_event(c, args.phase_timeout) for c in clients]
        figures["open_seconds"] = time.monotonic() - t
        subscribed = sum(r["subscribed"] for r in ready)
        failed = sum(r["failed"] for r in ready)
        log(f"{subscribed} sockets open and subscribed ({failed} failed) in {figures['open_seconds']:.1f}s")
        if failed:
            raise RuntimeError(f"{failed} subscriptions failed, e.g. {[r['failures'] for r in ready]}")
        figures["service_cpu_ms_per_subscribe"] = 1000 * (cpu_seconds(pid) - cpu_before_open) / subscribed
        await asyncio.sleep(2)
        status = proc_status(pid)
        figures["rss_open_kib"] = status["VmRSS"]
        figures["fds_open"] = open_fds(pid)

        t = time.monotonic()
        forger = Forger(sandbox.state_dir, sandbox.env)
        forged = forge_notifications(forger, orders)
        log(f"{len(forged)} notifications signed in {time.monotonic() - t:.1f}s (before the clock starts)")

        callback = service.url + "/api/v1/payment/wxpay/callback"
        probe, loaded = forged[:args.probe], forged[args.probe:]
        probe_sent, probe_ack, probe_codes = await asyncio.wait_for(
            send_notifications(callback, probe, 1), args.phase_timeout)
        log(f"{len(probe)} probe notifications, one at a time, answered {dict(probe_codes)}")
        await asyncio.sleep(1)  # the probe's booking notices go out before the loaded phase starts

        pids["mariadb"] = pid_from_file(os.path.join(ROOT, "var", "mysql", "mysqld.pid"))  # scripts/servers.sh
        cpu_start = cpu_snapshot(pids)
        t_first = time.monotonic_ns()
        sent_ns, ack_ns, codes = await asyncio.wait_for(
            send_notifications(callback, loaded, args.concurrency), args.phase_timeout)
        t_sent = time.monotonic_ns()
        log(f"{len(sent_ns)} notifications answered {dict(codes)} in {(t_sent - t_first) / 1e9:.1f}s")
        done = [await next_event(c, args.phase_timeout) for c in clients]
        cpu_end = cpu_snapshot(pids)
        log(f"clients report {sum(d['paid'] for d in done)} paid frames")
        figures.update(await close_sockets(clients, pid, figures["fds_before"], args.phase_timeout))
        log(f"{args.subscribers} sockets closed in {figures['close_seconds']:.1f}s")
    finally:
        for c in clients:
            if c.returncode is None:
                try:
                    c.stdin.write(b"stop\n")
                    await c.stdin.drain()
                    await asyncio.wait_for(c.wait(), 20)
                except (asyncio.TimeoutError, ConnectionError):
                    c.kill()
                    await c.wait()

    paid_ns, closed = {}, 0
    for k in range(args.client_procs):
        with open(os.path.join(BENCH_VAR, f"client-{k}-result.json"), encoding="utf-8") as fh:
            result = json.load(fh)
        paid_ns.update(result["paid_ns"])
        closed += result["closed"]
    latencies = [(paid_ns[o] - sent_ns[o]) / 1e6 for o in sent_ns if o in paid_ns]
    t_last = max([paid_ns[o] for o in sent_ns if o in paid_ns], default=t_sent)
    window = (t_last - t_first) / 1e9
    codes.update(probe_codes)
    figures.update({
        "codes": {str(k): v for k, v in codes.items()}, "paid_frames": len(paid_ns), "closed_early": closed,
        "probe": len(probe), "loaded": len(loaded),
        "probe_latency_ms": spread([(paid_ns[o] - probe_sent[o]) / 1e6 for o in probe_sent if o in paid_ns]),
        "probe_ack_ms": spread([v / 1e6 for v in probe_ack.values()]),
        "latency_ms": spread(latencies), "ack_ms": spread([v / 1e6 for v in ack_ns.values()]),
        "push_after_ack_ms": spread([(paid_ns[o] - sent_ns[o] - ack_ns[o]) / 1e6 for o in sent_ns if o in paid_ns]),
        "send_seconds": (t_sent - t_first) / 1e9, "first_to_last_push_seconds": window,
        "throughput_per_s": len(latencies) / window if window > 0 else float("nan"),
        # CPU seconds each process used from the first loaded POST to the last paid frame.
        "cpu_seconds": {name: round(cpu_end[name] - cpu_start[name], 2) for name in cpu_start
                        if cpu_start.get(name) is not None and cpu_end.get(name) is not None},
        "window_seconds": window,
        "loadavg_at_end": os.getloadavg(),
    })
    ours = sum(v for k, v in figures["cpu_seconds"].items() if k != "machine")
    figures["cpu_seconds"]["others on the machine"] = round(figures["cpu_seconds"]["machine"] - ours, 2)
    figures["service_cpu_ms_per_notification"] = 1000 * figures["cpu_seconds"]["service"] / max(1, len(loaded))
    status = proc_status(pid)
    figures["rss_after_push_kib"], figures["rss_peak_kib"] = status["VmRSS"], status["VmHWM"]
    figures["service_max_open_files"] = max_open_files(pid)
    figures["database"] = database_outcome(db_url)
    return figures


def main():
    """Start everything, measure, print, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=200, help="notifications in flight at once")
    parser.add_argument("--client-procs", type=int, default=1, help="WebSocket client processes")
    parser.add_argument("--probe", type=int, default=100,
                        help="notifications sent one at a time first (latency without a queue)")
    parser.add_argument("--setup-concurrency", type=int, default=32, help="logins and orders in flight at once")
    parser.add_argument("--keep-database", action="store_true", help="leave gym_test_bench for inspection")
    parser.add_argument("--phase-timeout", type=float, default=600.0, help="longest any one phase may take")
    args = parser.parse_args()
    if not 0 <= args.probe < args.subscribers:
        parser.error("--probe must be below --subscribers")
    if not 1 <= args.subscribers <= 20000 or not 1 <= args.concurrency <= 1000 or not 1 <= args.client_procs <= 8:
        parser.error("--subscribers 1..20000, --concurrency 1..1000, --client-procs 1..8")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: stop what was started
    nofile = raise_open_files_limit()
    if nofile < args.subscribers * 2 / args.client_procs + 1000:
        parser.error(f"the hard RLIMIT_NOFILE ({nofile}) is too low for {args.subscribers} subscribers")
    os.makedirs(BENCH_VAR, exist_ok=True)
    dev = dev_env()
    db_url = bench_database_url(dev["TEST_DATABASE_URL"])
    started = []
    try:
        log(f"bench database {parse_database_url({'DATABASE_URL': db_url}).name}: recreating and migrating")
        recreate_database(db_url)
        redis = RedisServer("bench-redis")  # private: the test Redis's pub/sub channel is shared by all dbs
        started.append(redis)
        sandbox = SandboxProcess(os.path.join(BENCH_VAR, "sandbox"), time_scale=1.0)
        started.append(sandbox)
        env = {"DATABASE_URL": db_url, "REDIS_URL": redis.url, "SECRET_KEY": "bench-secret-key-0123456789abcdef",
               **{k: v for k, v in sandbox.env.items() if k.startswith("WECHAT")},
               "WECHATPAY_CERT_DIR": os.path.join(BENCH_VAR, "certs"), "RATE_LIMIT_PER_MINUTE": "0",
               "RECONCILE_INTERVAL_SECONDS": "3600",
               # The holds must outlive any slow run: a lapsed hold would not be the thing measured.
               "SEAT_HOLD_SECONDS": "3600", "ORDER_EXPIRE_SECONDS": "3600",
               # The notifications are signed before the clock starts; a slow run must not make them stale.
               # The check itself costs the same whatever the window.
               "NOTIFY_TOLERANCE_SECONDS": "1800"}
        service = ServiceProcess(env, name="bench-ws")
        started.append(service)
        log(f"service pid {service.proc.pid} on {service.url} (log {service.log_path}); sandbox on {sandbox.url}")
        figures = asyncio.run(measure(args, service, sandbox, redis.proc.pid, db_url))
    finally:
        for proc in reversed(started):
            try:
                proc.stop()
            except Exception as e:  # noqa: BLE001 - stop the others regardless
                log(f"stopping {type(proc).__name__} failed: {e}")
        if not args.keep_database:
            try:
                drop_database(db_url)
            except pymysql.MySQLError as e:
                log(f"dropping the bench database failed: {e}")
    figures["machine"] = machine()
    figures["memory_per_connection_kib"] = print_summary(figures)
    out = os.path.join(BENCH_VAR, f"ws_fanout-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(figures, fh, indent=1)
    problems = verdict(figures)
    for problem in problems:
        print(f"FAILED: {problem}", flush=True)
    print(f"figures written to {os.path.relpath(out, ROOT)}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
