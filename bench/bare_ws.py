"""The WebSocket baseline: a bare Tornado socket that answers a subscribe with one frame, nothing else held.

    python bench/bare_ws.py --port P

`/ws/orders?token=...` accepts any token; `{"op": "subscribe", "order_id": X}` is answered with an `order.status`
frame saying `pending`, as the service's first frame would be. Tornado's defaults otherwise (no ping), so what a
socket of the service holds beyond this is the service's own (bench/ws_idle.py compares the two).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal

import tornado.web
import tornado.websocket


class Bare(tornado.websocket.WebSocketHandler):
    """A socket that answers each subscribe once."""

    def check_origin(self, origin):
        return True

    def on_message(self, message):
        order_id = json.loads(message).get("order_id")
        self.write_message(json.dumps({"type": "order.status", "order_id": order_id, "status": "pending",
                                       "reservation_status": "temporary", "at": None}))


async def main(port):
    """Serve on 127.0.0.1:port until SIGTERM."""
    app = tornado.web.Application([(r"/ws/orders", Bare)])
    server = app.listen(port, "127.0.0.1", backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
