"""Reconnect storm: 5,000 WebSockets opened at once, each subscribing to an order and waiting for its snapshot.

As after a deploy or a network blip: time to the last snapshot and service CPU per open + subscribe.

    .venv/bin/python bench/reconnect_storm.py [--sockets 5000] [--orders 1000] [--ws-client-procs 2]

The orders (pending, one parent each) are made through the API during the setup; socket i subscribes to order
i mod --orders with its owner's token (several sockets per order: a parent on two phones; the service does the
same work for each). Every socket must get its `order.status` snapshot saying `pending`.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    Profiler, Setup, Window, check, common_parser, headline, log, read_event, run_scenarios, settle,
)
from bench.procstat import tree_rss_kib  # noqa: E402
from bench.world import BENCH_ROOT, BENCH_VAR  # noqa: E402


def add_options(p):
    """This scenario's options."""
    g = p.add_argument_group("reconnect storm")
    g.add_argument("--sockets", type=int, default=5000, help="WebSockets opened at once")
    g.add_argument("--orders", type=int, default=1000, help="distinct orders (and parents) they subscribe to")
    g.add_argument("--ws-client-procs", type=int, default=2, help="client processes holding the sockets")
    g.add_argument("--ws-timeout", type=float, default=60.0,
                   help="per socket: connect, subscribe and snapshot; then it is given up (the mini-program's "
                        "default networkTimeout.connectSocket is 60 s)")


async def measure(world, args):
    """Open every socket at once, wait for every snapshot, then close them."""
    s, k, procs = args.sockets, min(args.orders, args.sockets), args.ws_client_procs
    setup = Setup(world, args.setup_concurrency)
    try:
        schedule_id = await setup.schedule(k, "体验课 reconnect storm")
        parents = await setup.parents(k)
        orders = await asyncio.gather(*(setup.order(token, schedule_id) for token, _ in parents))
    finally:
        setup.close()
    pairs = [[parents[i % k][0], orders[i % k]["order_id"]] for i in range(s)]
    settle(world)
    rss_before = tree_rss_kib(world.service.pid)
    log(f"reconnect_storm: {k} pending orders; {s} sockets from {procs} client process(es), all at once")
    clients = []
    ws_url = world.service.url.replace("http://", "ws://") + "/ws/orders"
    for c in range(procs):
        share = pairs[c::procs]
        job = os.path.join(BENCH_VAR, f"ws-{os.getpid()}-{c}.json")
        with open(job, "w", encoding="utf-8") as fh:
            json.dump({"url": ws_url, "orders": share}, fh)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(BENCH_ROOT, "bench", "ws_subscribers.py"), "--orders", job,
            "--result", os.path.join(BENCH_VAR, f"ws-{os.getpid()}-{c}-result.json"), "--wait-go",
            "--connect-concurrency", str(len(share)), "--timeout", str(args.ws_timeout),
            "--deadline", str(args.phase_timeout), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True)
        world.children.append(proc.pid)
        clients.append(proc)
    try:
        for proc in clients:
            assert (await read_event(proc, args.phase_timeout))["event"] == "loaded"
        profiler = Profiler(world, "reconnect_storm") if args.profile else None
        window = Window(world, {f"ws client {c}": (p.pid, False) for c, p in enumerate(clients)}).start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for proc in clients:
            proc.stdin.write(b"go\n")
        await asyncio.gather(*(proc.stdin.drain() for proc in clients))
        ready = []
        for proc in clients:
            ready.append(await read_event(proc, args.phase_timeout + args.ws_timeout))
        all_ready = loop.time() - t0
        opened = window.stop()
        if profiler:
            opened["profile"] = os.path.relpath(profiler.stop(), BENCH_ROOT)
        await asyncio.sleep(1.0)
        rss_open = tree_rss_kib(world.service.pid)
        close_window = Window(world).start()
        for proc in clients:  # first line: write the results; second: close the sockets
            proc.stdin.write(b"done\nclose\n")
            await proc.stdin.drain()
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in clients)), args.phase_timeout)
        settle(world, longest=30)
        closed = close_window.stop()
    finally:
        for proc in clients:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for c in range(procs):
            for suffix in (".json", "-result.json"):
                path = os.path.join(BENCH_VAR, f"ws-{os.getpid()}-{c}{suffix}")
                if os.path.exists(path):
                    os.remove(path)
    subscribed = sum(r["subscribed"] for r in ready)
    failed = sum(r["failed"] for r in ready)
    timed_out = sum(r["timed_out"] for r in ready)
    lost = sum(r["lost"] for r in ready)
    lost_reasons = Counter()
    for r in ready:
        lost_reasons.update(r["lost_reasons"])
    worst = max(ready, key=lambda r: r["snapshot_at_ms"]["p99"])
    last_snapshot = max(r["snapshot_at_ms"]["max"] for r in ready) / 1000  # from each client's go
    service_cpu = opened["cpu_seconds"]["service"]
    figures = {"sockets": s, "orders": k, "client_procs": procs, "subscribed": subscribed, "failed": failed,
               "timed_out": timed_out, "ws_timeout_s": args.ws_timeout, "lost": lost,
               "lost_reasons": dict(lost_reasons),
               "failures": [f for r in ready for f in r["failures"]][:5],
               "last_snapshot_s": round(last_snapshot, 3), "all_clients_ready_s": round(all_ready, 3),
               "snapshot_at_ms (worst client)": worst["snapshot_at_ms"],
               "open_ms (worst client)": max(ready, key=lambda r: r["open_ms"]["p99"])["open_ms"],
               "service_rss_before_kib": rss_before, "service_rss_open_kib": rss_open,
               "kib_per_socket": round((rss_open - rss_before) / max(1, subscribed), 1),
               "cpu_ms_per_op": {n: round(1000 * v / max(1, subscribed), 3) for n, v in opened["cpu_seconds"].items()},
               "service_cpu_ms_per_close": round(1000 * closed["cpu_seconds"]["service"] / max(1, subscribed), 3),
               "window": opened, "close_window": closed}
    if "sql" in opened:
        figures["sql_per_op"] = {n: round(v / max(1, subscribed), 2) for n, v in opened["sql"].items() if v}
    figures["headline"] = [
        headline("last_snapshot_s", f"{s} sockets at once: last snapshot after", last_snapshot, "s"),
        headline("subscribes_per_s", "subscribes/s (sockets ÷ time to the last snapshot)", subscribed / last_snapshot,
                 "/s", "rate"),
        headline("p50_ms", "snapshot p50 from the go", worst["snapshot_at_ms"]["p50"], "ms"),
        headline("timed_out", f"sockets given up after {args.ws_timeout:g} s without their snapshot", timed_out, ""),
        headline("lost", "sockets whose connection broke (reset) before the snapshot", lost, ""),
        headline("listen_overflows", "kernel listen-queue overflows meanwhile (TcpExt, machine-wide)",
                 opened["tcp_listen_queue (machine-wide)"]["ListenOverflows"], ""),
        headline("service_cpu_ms", "service CPU per open + subscribe", 1000 * service_cpu / max(1, subscribed), "ms",
                 "cpu"),
        headline("client_cpu_ms", "WebSocket client CPU per open + subscribe",
                 sum(v for n, v in figures["cpu_ms_per_op"].items() if n.startswith("ws client")), "ms"),
        headline("kib_per_socket", "service memory per socket", figures["kib_per_socket"], "KiB"),
    ]
    figures["checks"] = [check("every socket answered got its 'pending' snapshot, no error and no refusal",
                               not failed and subscribed + timed_out + lost == s,
                               f"{subscribed} subscribed, {timed_out} timed out, {lost} lost, {failed} failed: "
                               f"{figures['failures']}")]
    log(f"reconnect_storm: last snapshot after {last_snapshot:.1f}s, service "
        f"{1000 * service_cpu / max(1, subscribed):.2f} ms CPU per subscribe, {timed_out} timed out, {lost} lost, "
        f"{failed} failed")
    return figures


def main():
    """This scenario alone, beside the ceiling."""
    p = common_parser(__doc__.splitlines()[0])
    add_options(p)
    return run_scenarios(p.parse_args(), [("reconnect_storm", measure)], "reconnect_storm")


if __name__ == "__main__":
    sys.exit(main())
