"""Load check of live order status: N WebSocket subscribers on ONE service process, one payment notification each.

    .venv/bin/python bench/ws_fanout.py [--subscribers 5000] [--concurrency 200] [--no-ceiling]

The suite (bench/run_all.py, `make bench`) runs it with 1,000 subscribers unless --fanout-full.

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

import asyncio
import json
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tornado.httpclient import AsyncHTTPClient, HTTPRequest  # noqa: E402

from tests.forge import Forger  # noqa: E402

from bench.common import Setup, Window, check, common_parser, headline, run_scenarios  # noqa: E402
from bench.fanout_report import print_summary, spread, verdict  # noqa: E402
from bench.procstat import (  # noqa: E402
    machine, max_open_files, proc_status, tree_cpu_seconds, tree_open_fds, tree_rss_kib,
)
from bench.world import BENCH_ROOT, BENCH_VAR, log, query  # noqa: E402

ROOT = BENCH_ROOT


# -- the phases ------------------------------------------------------------------------------------
async def create_orders(world, count, concurrency):
    """A schedule with `count` seats, then `count` users who each log in and order one seat (all through the API)."""
    setup = Setup(world, concurrency)
    orders = []

    async def one(schedule_id):
        token, openid = await setup.parent()
        order = await setup.order(token, schedule_id)
        assert order["status"] == "pending" and order["reservation"]["status"] == "temporary", order
        orders.append((token, order["order_id"], openid))
        if len(orders) % 1000 == 0:
            log(f"  {len(orders)}/{count} users logged in with an order")

    try:
        schedule_id = await setup.schedule(count, "体验课 bench")
        await asyncio.gather(*(one(schedule_id) for _ in range(count)))
    finally:
        setup.close()
    return schedule_id, orders


def client_file(k, what):
    """var/bench/fanout-<pid>-<k>-job.json or -result.json."""
    return os.path.join(BENCH_VAR, f"fanout-{os.getpid()}-{k}-{what}.json")


async def start_clients(world, orders, procs, deadline, url=None):
    """Client processes, each with its share of the orders (on the service, or on `url`); returns them once
    started."""
    clients = []
    ws_url = url or world.service.url.replace("http://", "ws://") + "/ws/orders"
    for k in range(procs):
        share = orders[k::procs]
        job = client_file(k, "job")
        with open(job, "w", encoding="utf-8") as fh:
            json.dump({"url": ws_url, "orders": [[token, order_id] for token, order_id, _ in share]}, fh)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(ROOT, "bench", "ws_subscribers.py"), "--orders", job,
            "--result", client_file(k, "result"), "--deadline", str(deadline),
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True)
        world.children.append(proc.pid)
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
    cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
    for c in clients:
        c.stdin.write(b"close\n")
        await c.stdin.drain()
    await asyncio.wait_for(asyncio.gather(*(c.wait() for c in clients)), timeout)
    # The margin covers what the workers' pools and Redis clients grew to meanwhile (20 connections each at most).
    while tree_open_fds(pid) > fds_before + 100 and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.05)
    return {"close_seconds": time.monotonic() - t0, "service_cpu_close_seconds": tree_cpu_seconds(pid) - cpu0,
            "fds_after_close": tree_open_fds(pid)}


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
    """What MySQL says happened: order and reservation statuses, transactions, notification outcomes."""
    out = {}
    for key, sql in (("orders", "SELECT status, COUNT(*) FROM payment_orders GROUP BY status"),
                     ("reservations", "SELECT status, COUNT(*) FROM seat_reservations GROUP BY status"),
                     ("transactions", "SELECT trade_state, COUNT(*) FROM payment_transactions GROUP BY 1"),
                     # not in the contract's storage section: {} where a checkout keeps them otherwise
                     ("notifications", "SELECT outcome, COUNT(*) FROM wechatpay_notifications GROUP BY outcome"),
                     ("booking_notices", "SELECT status, COUNT(*) FROM booking_notices GROUP BY status")):
        try:
            out[key] = {row[0]: row[1] for row in query(url, sql)}
        except Exception:  # noqa: BLE001 - a table this checkout does not have
            out[key] = {}
    return out


# -- the run ---------------------------------------------------------------------------------------
def add_options(p, subscribers=5000):
    """This scenario's options (the suite runs it smaller by default)."""
    g = p.add_argument_group("WebSocket fan-out")
    g.add_argument("--subscribers", type=int, default=subscribers)
    g.add_argument("--concurrency", type=int, default=200, help="notifications in flight at once")
    g.add_argument("--client-procs", type=int, default=1, help="WebSocket client processes")
    g.add_argument("--probe", type=int, default=100,
                   help="notifications sent one at a time first (latency without a queue)")


def check_options(p, args):
    """Refuse sizes the bench was not made for."""
    if not 0 <= args.probe < args.subscribers:
        p.error("--probe must be below --subscribers")
    if not 1 <= args.subscribers <= 20000 or not 1 <= args.concurrency <= 1000 or not 1 <= args.client_procs <= 8:
        p.error("--subscribers 1..20000, --concurrency 1..1000, --client-procs 1..8")


def service_env(args):
    """The fan-out's own notification budget: above its --concurrency, so that every notification is served.

    With the default (ADMISSION_NOTIFY_LIMIT=8 a worker) admission control answers most of 200 notifications in
    flight 503 FAIL at once (736 of 900 in one run), WeChat Pay would deliver them again later, and the subscribers
    would wait for pushes that never come in the window; the fan-out measures the pushes, bench/notify_storm.py and
    bench/overload.py measure notifications under the default budget."""
    return {"ADMISSION_NOTIFY_LIMIT": str(args.concurrency + 10)}


async def measure(world, args):
    """Setup through the API, open and subscribe, send, collect; returns the figures."""
    AsyncHTTPClient.configure(None, max_clients=args.setup_concurrency)
    figures = {"loadavg_at_start": os.getloadavg(), "subscribers": args.subscribers,
               "concurrency": args.concurrency, "client_procs": args.client_procs, "workers": args.workers}

    t = time.monotonic()
    schedule_id, orders = await asyncio.wait_for(
        create_orders(world, args.subscribers, args.setup_concurrency), args.phase_timeout)
    figures["setup_seconds"] = time.monotonic() - t
    log(f"{len(orders)} users and pending orders (schedule {schedule_id}) in {figures['setup_seconds']:.1f}s")

    await asyncio.sleep(2)  # let the service settle before the baseline
    pid = world.service.pid
    figures["rss_before_kib"] = tree_rss_kib(pid)
    figures["fds_before"] = tree_open_fds(pid)

    clients = []
    try:
        cpu_before_open = tree_cpu_seconds(pid)
        t = time.monotonic()
        clients = await start_clients(world, orders, args.client_procs, args.phase_timeout)
        ready = [await next_event(c, args.phase_timeout) for c in clients]
        figures["open_seconds"] = time.monotonic() - t
        subscribed = sum(r["subscribed"] for r in ready)
        failed = sum(r["failed"] + r["timed_out"] + r["lost"] for r in ready)
        log(f"{subscribed} sockets open and subscribed ({failed} failed) in {figures['open_seconds']:.1f}s")
        if failed:
            raise RuntimeError(f"{failed} subscriptions failed, e.g. {[r['failures'] for r in ready]}")
        figures["service_cpu_ms_per_subscribe"] = 1000 * (tree_cpu_seconds(pid) - cpu_before_open) / subscribed
        await asyncio.sleep(2)
        figures["rss_open_kib"] = tree_rss_kib(pid)
        figures["fds_open"] = tree_open_fds(pid)

        t = time.monotonic()
        forger = Forger(world.sandbox.state_dir, world.sandbox.env)
        forged = forge_notifications(forger, orders)
        log(f"{len(forged)} notifications signed in {time.monotonic() - t:.1f}s (before the clock starts)")

        callback = world.service.url + "/api/v1/payment/wxpay/callback"
        probe, loaded = forged[:args.probe], forged[args.probe:]
        probe_sent, probe_ack, probe_codes = await asyncio.wait_for(
            send_notifications(callback, probe, 1), args.phase_timeout)
        log(f"{len(probe)} probe notifications, one at a time, answered {dict(probe_codes)}")
        await asyncio.sleep(1)  # the probe's booking notices go out before the loaded phase starts

        window = Window(world, {f"ws client {k}": (c.pid, False) for k, c in enumerate(clients)}).start()
        t_first = time.monotonic_ns()
        sent_ns, ack_ns, codes = await asyncio.wait_for(
            send_notifications(callback, loaded, args.concurrency), args.phase_timeout)
        t_sent = time.monotonic_ns()
        log(f"{len(sent_ns)} notifications answered {dict(codes)} in {(t_sent - t_first) / 1e9:.1f}s")
        done = [await next_event(c, args.phase_timeout) for c in clients]
        measured = window.stop()
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
        path = client_file(k, "result")
        with open(path, encoding="utf-8") as fh:
            result = json.load(fh)
        os.remove(path)
        os.remove(client_file(k, "job"))
        paid_ns.update(result["paid_ns"])
        closed += result["closed"]
    latencies = [(paid_ns[o] - sent_ns[o]) / 1e6 for o in sent_ns if o in paid_ns]
    t_last = max([paid_ns[o] for o in sent_ns if o in paid_ns], default=t_sent)
    span = (t_last - t_first) / 1e9
    codes.update(probe_codes)
    cpu = dict(measured["cpu_seconds"], machine=measured["machine_busy_seconds"])
    cpu["others on the machine"] = measured["others_cpu_seconds"]
    figures.update({
        "codes": {str(k): v for k, v in codes.items()}, "paid_frames": len(paid_ns), "closed_early": closed,
        "probe": len(probe), "loaded": len(loaded),
        "probe_latency_ms": spread([(paid_ns[o] - probe_sent[o]) / 1e6 for o in probe_sent if o in paid_ns]),
        "probe_ack_ms": spread([v / 1e6 for v in probe_ack.values()]),
        "latency_ms": spread(latencies), "ack_ms": spread([v / 1e6 for v in ack_ns.values()]),
        "push_after_ack_ms": spread([(paid_ns[o] - sent_ns[o] - ack_ns[o]) / 1e6 for o in sent_ns if o in paid_ns]),
        "send_seconds": (t_sent - t_first) / 1e9, "first_to_last_push_seconds": span,
        "throughput_per_s": len(latencies) / span if span > 0 else float("nan"),
        # CPU seconds each process used from the first loaded POST to the last paid frame.
        "cpu_seconds": cpu, "window_seconds": span, "window": measured,
        "loadavg_at_end": os.getloadavg(),
    })
    figures["service_cpu_ms_per_notification"] = 1000 * cpu["service"] / max(1, len(loaded))
    status = proc_status(pid)
    figures["rss_after_push_kib"], figures["rss_peak_kib"] = tree_rss_kib(pid), status["VmHWM"]
    figures["service_max_open_files"] = max_open_files(pid)
    figures["database"] = database_outcome(world.db_url)
    figures["machine"] = machine()
    figures["memory_per_connection_kib"] = print_summary(figures)
    if "sql" in measured:
        figures["sql_per_op"] = {k: round(v / max(1, len(loaded)), 2) for k, v in measured["sql"].items() if v}
    figures["headline"] = [
        headline("throughput_per_s", f"{args.subscribers} subscribers: notifications/s to the 'paid' frame, "
                 f"{args.concurrency} in flight", figures["throughput_per_s"], "/s", "rate"),
        headline("p50_ms", "POST sent -> 'paid' frame p50", figures["latency_ms"]["p50"], "ms"),
        headline("probe_p50_ms", "one at a time: POST sent -> 'paid' frame p50", figures["probe_latency_ms"]["p50"],
                 "ms"),
        headline("push_after_ack_p99_ms", "204 received -> 'paid' frame p99", figures["push_after_ack_ms"]["p99"],
                 "ms"),
        headline("service_cpu_ms", "service CPU per notification", figures["service_cpu_ms_per_notification"], "ms",
                 "cpu"),
        headline("subscribe_cpu_ms", "service CPU per open + subscribe (100 at a time)",
                 figures["service_cpu_ms_per_subscribe"], "ms", "cpu"),
        headline("kib_per_connection", "service memory per connection", figures["memory_per_connection_kib"], "KiB"),
    ]
    figures["service_env_why"] = ("its notification budget set above the notifications it keeps in flight, so that "
                                  "each one is pushed (notify_storm and overload keep the default)")
    figures["checks"] = [check(problem, False) for problem in verdict(figures)] or [
        check("every notification 204, every subscriber its 'paid' frame, MySQL all paid and confirmed", True)]
    return figures


measure.service_env = service_env


def main():
    """This scenario alone, beside the ceiling (--no-ceiling for the fan-out alone)."""
    p = common_parser(__doc__.splitlines()[0])
    add_options(p)
    args = p.parse_args()
    check_options(p, args)
    return run_scenarios(args, [("ws_fanout", measure)], "ws_fanout")


if __name__ == "__main__":
    sys.exit(main())
