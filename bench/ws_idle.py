"""Idle sockets: the service memory each subscribed WebSocket holds, beside a bare Tornado socket, and the push.

    .venv/bin/python bench/ws_idle.py [--idle-sockets 2000] [--idle-pushes 300]

1. The baseline: bench/bare_ws.py (a Tornado WebSocketHandler answering a subscribe with one frame, Tornado's
   defaults) gets --idle-sockets sockets, each subscribing once; its RSS after, minus before, per socket.
2. The service: --idle-sockets parents, each with an order (made through the API), then a fresh service process
   (so that what the setup left in the heap cannot be reused by the sockets and hide their cost), then one socket
   per order, subscribed, idle for two seconds: the service's RSS after, minus before, per socket.
3. With those sockets open, --idle-pushes signed payment notifications, one at a time, to orders spread over them;
   each push's delay: from the notification's 204 reaching the sender to the "paid" frame reaching its socket (one
   machine-wide monotonic clock; a push that arrives before the 204 counts as 0).

Goals (issue 17): at most 10 KiB of service memory per idle subscribed socket; the push after the 204, p99 at most
2 ms at 2,000 sockets.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.forge import Forger  # noqa: E402
from tests.harness import free_port  # noqa: E402

from bench.common import check, common_parser, headline, lat, run_scenarios  # noqa: E402
from bench.procstat import tree_rss_kib  # noqa: E402
from bench.world import BENCH_ROOT, Proc, healthy, log, query  # noqa: E402
from bench.ws_fanout import create_orders, forge_notifications, next_event, send_notifications, start_clients  # noqa: E402,E501

GOAL_KIB = 10.0
GOAL_PUSH_P99_MS = 2.0
SETTLE_SECONDS = 2.0


def add_options(p):
    """This scenario's options."""
    g = p.add_argument_group("idle sockets")
    g.add_argument("--idle-sockets", type=int, default=2000, help="sockets opened and subscribed")
    g.add_argument("--idle-pushes", type=int, default=300, help="notifications sent one at a time meanwhile")


async def _open(world, url, orders, args):
    """Client processes with one socket per order on `url`; returns them once every socket has its snapshot."""
    clients = await start_clients(world, orders, 1, args.phase_timeout, url=url)
    ready = [await next_event(c, args.phase_timeout) for c in clients]
    failed = sum(r["failed"] + r["timed_out"] + r["lost"] for r in ready)
    if failed:
        raise RuntimeError(f"{failed} sockets failed, e.g. {[r['failures'] for r in ready]}")
    return clients, sum(r["subscribed"] for r in ready)


async def _finish(clients, timeout):
    """Have the clients report (done), then close their sockets; returns their result files' contents."""
    for word in ("done", "close"):
        for c in clients:
            c.stdin.write(b"go\n")
            await c.stdin.drain()
        if word == "done":
            for c in clients:
                await next_event(c, timeout)
    await asyncio.wait_for(asyncio.gather(*(c.wait() for c in clients)), timeout)


def _results(k=0):
    from bench.ws_fanout import client_file
    with open(client_file(k, "result"), encoding="utf-8") as fh:
        result = json.load(fh)
    os.remove(client_file(k, "result"))
    os.remove(client_file(k, "job"))
    return result


async def _bare(world, args, n):
    """KiB per socket of the bare Tornado baseline."""
    port = free_port()
    bare = Proc([sys.executable, os.path.join(BENCH_ROOT, "bench", "bare_ws.py"), "--port", str(port)], BENCH_ROOT,
                dict(os.environ), world.log_path("bare-ws"), what="bare Tornado WebSocket server")
    world.started.append(bare)
    url = f"ws://127.0.0.1:{port}/ws/orders"
    await asyncio.sleep(1.0)
    before = tree_rss_kib(bare.pid)
    clients, subscribed = await _open(world, url, [("x", f"{i:032x}", None) for i in range(n)], args)
    await asyncio.sleep(SETTLE_SECONDS)
    after = tree_rss_kib(bare.pid)
    await _finish(clients, args.phase_timeout)
    _results()
    return {"rss_before_kib": before, "rss_open_kib": after, "sockets": subscribed,
            "kib_per_socket": round((after - before) / subscribed, 2)}


async def measure(world, args):
    """The baseline, the service's sockets, the pushes."""
    n = args.idle_sockets
    bare = await _bare(world, args, n)
    log(f"ws_idle: bare Tornado {bare['kib_per_socket']} KiB per socket")
    _, orders = await create_orders(world, n, args.setup_concurrency)
    world.restart_service()
    await asyncio.sleep(SETTLE_SECONDS)
    pid = world.service.pid
    before = tree_rss_kib(pid)
    url = world.service.url.replace("http://", "ws://") + "/ws/orders"
    clients, subscribed = await _open(world, url, orders, args)
    await asyncio.sleep(SETTLE_SECONDS)
    after = tree_rss_kib(pid)
    kib = round((after - before) / subscribed, 2)
    log(f"ws_idle: the service {kib} KiB per subscribed socket ({subscribed} sockets)")
    step = max(1, n // max(1, args.idle_pushes))
    chosen = orders[::step][:args.idle_pushes]
    forged = forge_notifications(Forger(world.sandbox.state_dir, world.sandbox.env), chosen)
    sent_ns, ack_ns, codes = await send_notifications(world.service.url + "/api/v1/payment/wxpay/callback", forged, 1)
    await _finish(clients, args.phase_timeout)
    paid_ns = _results()["paid_ns"]
    raw = [(paid_ns[o] - sent_ns[o] - ack_ns[o]) / 1e6 for o in sent_ns if o in paid_ns]
    delays = [max(0.0, d) for d in raw]
    push = lat(delays)
    before_204 = round(100 * sum(d < 0 for d in raw) / max(1, len(raw)), 1)
    (paid,), = query(world.db_url, "SELECT COUNT(*) FROM payment_orders WHERE status = 'paid'")
    figures = {"sockets": subscribed, "bare": bare, "rss_before_kib": before, "rss_open_kib": after,
               "kib_per_socket": kib, "pushes": len(forged), "codes": {str(k): v for k, v in codes.items()},
               "push_after_204_ms": push, "push_minus_204_ms": lat(raw), "pushes_before_the_204_pct": before_204,
               "ack_ms": lat([v / 1e6 for v in ack_ns.values()])}
    figures["headline"] = [
        headline("bare_kib", f"bare Tornado socket, {bare['sockets']} open: memory per socket", bare["kib_per_socket"],
                 "KiB"),
        headline("kib_per_socket", f"service memory per idle subscribed socket, {subscribed} open (goal ≤ "
                 f"{GOAL_KIB:g} KiB)", kib, "KiB"),
        headline("push_p99_ms", f"push after the notification's 204, p99, one at a time (goal ≤ {GOAL_PUSH_P99_MS:g} "
                 "ms)", push["p99"], "ms"),
        headline("push_p50_ms", "push after the 204, p50", push["p50"], "ms"),
        headline("push_before_pct", "pushes that reached their socket before the 204 reached its sender", before_204,
                 "%"),
    ]
    figures["checks"] = [
        check(f"≤ {GOAL_KIB:g} KiB per idle subscribed socket", kib <= GOAL_KIB, kib),
        check(f"push after the 204 p99 ≤ {GOAL_PUSH_P99_MS:g} ms", push["p99"] is not None
              and push["p99"] <= GOAL_PUSH_P99_MS, push),
        check("every notification 204 and its push received, the orders paid in MySQL",
              codes == {204: len(forged)} and len(delays) == len(forged) and paid == len(forged),
              f"{dict(codes)}; {len(delays)} pushes; {paid} paid"),
    ]
    return figures


def main():
    """This scenario alone, beside the ceiling."""
    p = common_parser(__doc__.splitlines()[0])
    add_options(p)
    return run_scenarios(p.parse_args(), [("ws_idle", measure)], "ws_idle")


if __name__ == "__main__":
    sys.exit(main())
