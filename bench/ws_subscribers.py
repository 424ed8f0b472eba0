"""One client process of the fan-out bench: opens a WebSocket per order, subscribes, and times the "paid" frames.

Run by bench/ws_fanout.py, not by hand. It reads `{"url", "orders": [[token, order_id], ...]}` from a JSON file,
prints one JSON line per stage on stdout (`ready`, then `done`), and writes the arrival times
(`time.monotonic_ns()`, the same clock in every process of the machine) to the result file.
It reports `done` when every order has its "paid" frame or the parent writes a line (or closes) stdin, then closes
its sockets when the parent writes (another) line, or at --deadline. With --wait-go it prints `loaded` first and
connects only after a line on stdin (the reconnect storm reads the CPU counters in between).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections import Counter

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import websocket_connect

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.fanout_report import spread  # noqa: E402
from bench.procstat import raise_open_files_limit  # noqa: E402


class ClosedBeforeSnapshot(Exception):
    """The service closed the socket before it sent the snapshot (a refusal, e.g. 4401)."""


def say(**event):
    """One progress line for the parent."""
    print(json.dumps(event), flush=True)


class Subscriber:
    """One mini-program connection watching one order."""

    def __init__(self, order_id, all_paid):
        self.order_id = order_id
        self.all_paid = all_paid  # callable run once this subscriber has its "paid" frame
        self.conn = None
        self.snapshot = asyncio.get_running_loop().create_future()
        self.paid_ns = None
        self.closed = False
        self.errors = []

    def on_message(self, message):
        now = time.monotonic_ns()  # first thing: the frame has arrived
        if message is None:
            self.closed = True
            if not self.snapshot.done():
                self.snapshot.set_exception(ClosedBeforeSnapshot(
                    f"closed before the snapshot: {self.conn.close_code if self.conn else None}"))
            return
        frame = json.loads(message)
        if frame.get("type") != "order.status":
            self.errors.append(frame.get("code") or frame.get("type"))
            if not self.snapshot.done():
                self.snapshot.set_exception(RuntimeError(f"subscribe refused: {frame}"))
            return
        if not self.snapshot.done():
            self.snapshot.set_result(frame)
        if frame.get("status") == "paid" and self.paid_ns is None:
            self.paid_ns = now
            self.all_paid()

    async def open(self, url, token, timeout):
        """Connect, subscribe, and wait for the immediate snapshot, all within `timeout`; returns its status."""
        return await asyncio.wait_for(self._open(url, token, timeout), timeout)

    async def _open(self, url, token, timeout):
        request = HTTPRequest(f"{url}?token={token}", connect_timeout=timeout, request_timeout=timeout)
        self.conn = await websocket_connect(request, on_message_callback=self.on_message)
        await self.conn.write_message(json.dumps({"op": "subscribe", "order_id": self.order_id}))
        frame = await asyncio.shield(self.snapshot)
        return frame["status"]


async def run(args):
    """Open and subscribe every socket, report, wait for the paid frames, write them, close on the word."""
    with open(args.orders, encoding="utf-8") as fh:
        job = json.load(fh)
    done = asyncio.Event()
    remaining = [len(job["orders"])]

    def one_paid():
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set()

    subs = [Subscriber(order_id, one_paid) for _, order_id in job["orders"]]
    gate = asyncio.Semaphore(args.connect_concurrency)
    failures, open_ms, snapshot_at_ms, timed_out, lost = [], [], [], [], Counter()
    if args.wait_go:
        say(event="loaded", sockets=len(subs))
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def open_one(sub, token):
        async with gate:
            t0 = time.monotonic()
            try:
                status = await sub.open(job["url"], token, args.timeout)
                if status != "pending":
                    failures.append(f"{sub.order_id}: snapshot says {status}")
                now = time.monotonic()
                open_ms.append(1000 * (now - t0))
                snapshot_at_ms.append(1000 * (now - started))
            except asyncio.TimeoutError:
                timed_out.append(sub.order_id)
                if sub.conn is not None:
                    sub.conn.close()
            except (HTTPClientError, StreamClosedError, OSError) as e:
                if isinstance(e, HTTPClientError) and e.code != 599:  # 599: tornado's timeouts and broken streams
                    failures.append(f"{sub.order_id}: {type(e).__name__}: {e}")
                elif isinstance(e, HTTPClientError) and "Timeout" in str(e):
                    timed_out.append(sub.order_id)
                else:  # the connection broke (reset by the service's kernel: e.g. its listen queue overflowed)
                    lost[f"{type(e).__name__}: {e}"[:80]] += 1
            except Exception as e:  # noqa: BLE001 - counted and reported, the bench decides
                failures.append(f"{sub.order_id}: {type(e).__name__}: {e}")

    started = time.monotonic()
    await asyncio.gather(*(open_one(sub, token) for sub, (token, _) in zip(subs, job["orders"])))
    say(event="ready", subscribed=len(open_ms), failed=len(failures), failures=failures[:5], timed_out=len(timed_out),
        lost=sum(lost.values()), lost_reasons=dict(lost),
        seconds=round(time.monotonic() - started, 3), open_ms=spread(open_ms), snapshot_at_ms=spread(snapshot_at_ms))

    loop = asyncio.get_running_loop()
    told = asyncio.Event()

    def wait_for_parent():
        sys.stdin.readline()  # a line, or EOF when the parent goes away
        loop.call_soon_threadsafe(told.set)

    threading.Thread(target=wait_for_parent, daemon=True).start()
    waits = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(told.wait())]
    await asyncio.wait(waits, timeout=args.deadline, return_when=asyncio.FIRST_COMPLETED)
    with open(args.result, "w", encoding="utf-8") as fh:
        json.dump({"paid_ns": {s.order_id: s.paid_ns for s in subs if s.paid_ns is not None},
                   "closed": sum(s.closed for s in subs),
                   "error_frames": sum(len(s.errors) for s in subs)}, fh)
    say(event="done", paid=sum(s.paid_ns is not None for s in subs), closed=sum(s.closed for s in subs))
    await asyncio.wait([waits[1]], timeout=args.deadline)  # the parent times the closing: close on its word
    for sub in subs:
        if sub.conn is not None:
            sub.conn.close()
    await asyncio.sleep(0.2)  # let the close frames go out
    for w in waits:
        w.cancel()


def main():
    """Parse the arguments and run until done."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", required=True, help="JSON file: url and [token, order_id] pairs")
    parser.add_argument("--result", required=True, help="where to write the arrival times")
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=30.0, help="per socket: connect, subscribe and snapshot")
    parser.add_argument("--deadline", type=float, default=600.0, help="longest wait for the paid frames")
    parser.add_argument("--wait-go", action="store_true", help="connect only after a line on stdin")
    args = parser.parse_args()
    raise_open_files_limit()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
