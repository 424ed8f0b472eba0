"""What each idle subscribed WebSocket holds in the service's heap, line by line (tracemalloc), and the bare socket.

    .venv/bin/python bench/ws_heap.py [--sockets 2000] [--top 40] [--frames 1]

A diagnosis, not a figure of the suite (tracemalloc slows everything and costs memory of its own; bench/ws_idle.py
measures RSS). In a World of its own: parents and orders are made through the service, which is then stopped; the
service's application is then served in THIS process (server.open_context, make_app, make_http_server, as
server.serve does), tracemalloc started, and a client process (bench/ws_subscribers.py) opens one socket per order
and subscribes. The Python memory allocated meanwhile and still held, per socket, is printed by the line that
allocated it (or by traceback with --frames N), then the objects one of them holds alone (its handler,
WebSocketProtocol13 and IOStream with their __dict__s, and their attributes); then the same for bench/bare_ws.py's
handler served here too.
"""
from __future__ import annotations

import asyncio
import gc
import os
import sys
import tracemalloc

import tornado.websocket

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.harness import free_port  # noqa: E402

from bench.common import common_parser  # noqa: E402
from bench.world import World, log  # noqa: E402
from bench.ws_fanout import client_file, create_orders, next_event, start_clients  # noqa: E402

SETTLE_SECONDS = 2.0


async def _held(world, url, orders, args, what):
    """Open the sockets on `url`, print what they hold, close them."""
    gc.collect()
    before = tracemalloc.take_snapshot()
    clients = await start_clients(world, orders, 1, args.phase_timeout, url=url)
    ready = [await next_event(c, args.phase_timeout) for c in clients]
    n = sum(r["subscribed"] for r in ready)
    await asyncio.sleep(SETTLE_SECONDS)
    gc.collect()
    after = tracemalloc.take_snapshot()
    stats = after.compare_to(before, "traceback" if args.frames > 1 else "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"\n## {what}: {n} sockets, {total / 1024 / n:.2f} KiB of Python memory each (tracemalloc)\n")
    print(f"{'bytes/socket':>12} {'objects/socket':>14}  allocated at")
    for s in stats[:args.top]:
        where = "\n" + "\n".join(f"{'':29}{line}" for line in s.traceback.format()) if args.frames > 1 else \
            f"  {s.traceback[0].filename.split('site-packages/')[-1]}:{s.traceback[0].lineno}"
        print(f"{s.size_diff / n:12.0f} {s.count_diff / n:14.2f}{where}")
    print_one_socket()
    for c in clients:
        for _ in range(2):
            c.stdin.write(b"go\n")
        await c.stdin.drain()
    await asyncio.gather(*(c.wait() for c in clients))
    for part in ("result", "job"):
        os.remove(client_file(0, part))


def print_one_socket():
    """The objects one open socket holds alone (shallow sizes; what a second socket holds too is shared, left out):
    its handler, WebSocketProtocol13 and IOStream, each with its __dict__, and their attributes (slots included)."""
    handlers = [o for o in gc.get_objects() if isinstance(o, tornado.websocket.WebSocketHandler)
                and o.ws_connection is not None and not o.ws_connection.is_closing()][:2]
    if len(handlers) < 2:
        return

    def parts(handler):
        protocol = handler.ws_connection
        for prefix, obj in (("handler", handler), ("protocol", protocol), ("stream", protocol.stream)):
            yield prefix, obj
            slots = [n for k in type(obj).__mro__ for n in getattr(k, "__slots__", ()) if hasattr(obj, n)]
            for key, value in [*vars(obj).items(), *((n, getattr(obj, n)) for n in slots)]:
                yield f"{prefix}.{key}", value

    shared = {id(obj) for _, obj in parts(handlers[1])}
    seen, rows = set(), []
    for name, obj in parts(handlers[0]):
        if obj is None or isinstance(obj, (bool, int)) or id(obj) in seen or id(obj) in shared:
            continue
        seen.add(id(obj))
        attrs = getattr(obj, "__dict__", None)
        rows.append((sys.getsizeof(obj) + (sys.getsizeof(attrs) if isinstance(attrs, dict) else 0), name,
                     type(obj).__name__, len(attrs) if isinstance(attrs, dict) else "-"))
    print(f"\none socket's own objects (shallow bytes with the __dict__): {sum(r[0] for r in rows)}")
    print(f"{'bytes':>6}  {'attrs':>5}  object")
    for size, name, kind, attrs in sorted(rows, reverse=True):
        print(f"{size:6d}  {attrs!s:>5}  {name} ({kind})")


async def run(world, args):
    """Orders through the service, then the application in this process, then the bare handler."""
    import settings as settings_module
    import tornado.web

    from bench.bare_ws import Bare
    from server import close_context, make_app, make_http_server, open_context

    _, orders = await create_orders(world, args.sockets, args.setup_concurrency)
    world.started.remove(world.service)
    world.service.stop()
    port = free_port()
    settings = settings_module.load(world.service_env(world.db_url, port))
    ctx = await open_context(settings)
    server = make_http_server(make_app(ctx), settings)
    server.listen(port, "127.0.0.1", backlog=4096)
    bare_port = free_port()
    bare = tornado.web.Application([(r"/ws/orders", Bare)]).listen(bare_port, "127.0.0.1", backlog=4096)
    tracemalloc.start(args.frames)
    try:
        await _held(world, f"ws://127.0.0.1:{port}/ws/orders", orders, args, "the service")
        await _held(world, f"ws://127.0.0.1:{bare_port}/ws/orders", orders, args, "bare Tornado (bench/bare_ws.py)")
    finally:
        tracemalloc.stop()
        server.stop()
        bare.stop()
        await close_context(ctx)


def main():
    """Parse, run in a World."""
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--sockets", type=int, default=2000)
    p.add_argument("--top", type=int, default=40, help="lines shown")
    p.add_argument("--frames", type=int, default=1, help="frames of each allocation's traceback")
    args = p.parse_args()
    with World(args, "ws_heap") as world:
        log(f"ws_heap: {args.sockets} orders, then the sockets")
        asyncio.run(run(world, args))


if __name__ == "__main__":
    main()
