"""The ceiling: a one-process Tornado hello-world (`GET /` -> "ok"), run by the bench beside the service.

    python bench/hello.py --port P
"""
from __future__ import annotations

import argparse
import asyncio
import signal

import tornado.web


class Hello(tornado.web.RequestHandler):
    """GET / -> ok."""

    def get(self):
        self.write("ok")


async def main(port):
    """Serve on 127.0.0.1:port until SIGTERM."""
    app = tornado.web.Application([(r"/", Hello)])
    server = app.listen(port, "127.0.0.1")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
