"""The load generator: its own process, so that its CPU is measured apart from the service's.

    python bench/loadgen.py --job JOB.json --result RESULT.json

Run by the scenarios, not by hand. It reads the job, opens its keep-alive connections, prints
`{"event": "ready"}`, waits for a line on stdin (the parent's "go", after it has read the CPU counters), runs the
job, writes the per-flow results to the result file and prints `{"event": "done", ...}`.

Job: {"url", "kind": "hello" | "order_flow" | "order_create" | "notify", "mode": "closed" | "open",
"workers" (closed: connections, each running one flow after another), "duration" (closed, hello: seconds),
"rate" + "deadline" (open: flows started at a fixed rate, each given up after `deadline` seconds from its scheduled
start), "retry_busy" (order kinds: a 503 with Retry-After is sent again after it, plus up to a fifth, for at most
30 s, as the mini-program does; each flow counts its retries in "busy"), "preconnect", "items": [...]}. Times are
time.monotonic_ns() relative to the "go", in milliseconds.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.httpclient import Client, HTTPError  # noqa: E402
from bench.procstat import raise_open_files_limit  # noqa: E402

CREATE = "/api/v1/payment/orders/create"
PREPAY = "/api/v1/payment/wxpay/create"
CALLBACK = "/api/v1/payment/wxpay/callback"
RETRY_BUDGET_S, RETRY_MAX_WAIT_S = 30.0, 10.0  # the mini-program's (miniprogram/utils/api.js)
BUSY = {"retry": False}  # the job's retry_busy
# The client measures; it must not be what is late. On this machine it shares the cores with the service, MariaDB and
# the sandbox (a parent's phone does not), so it asks for a little more priority than they have when it may (root):
# an answer then is timed when it arrives, not when the scheduler next gets round to the client. Its CPU is counted
# apart as before, and the service's own time for each answer is read from its access log (bench/overload.py).
PRIORITY = -5


def say(**event):
    """One line for the parent."""
    print(json.dumps(event), flush=True)


def ms_since(t0):
    """Milliseconds from t0 (monotonic ns) to now."""
    return (time.monotonic_ns() - t0) / 1e6


# -- one flow of each kind: returns a result dict; never raises for an HTTP-level outcome --------------------
async def api_call(client, out, method, path, payload, token):
    """One call of the mini-program's; with retry_busy, sent again after each 503 that names a Retry-After."""
    deadline = time.monotonic() + RETRY_BUDGET_S
    while True:
        answer = await client.call(method, path, payload, token)
        if answer[0] != 503 or answer.retry_after is None or not BUSY["retry"]:
            return answer
        wait = min(RETRY_MAX_WAIT_S, max(1, answer.retry_after)) * (1 + random.random() * 0.2)
        if time.monotonic() + wait > deadline:
            return answer
        out["busy"] = out.get("busy", 0) + 1
        await asyncio.sleep(wait)


async def order_flow(client, item, t0):
    """Order create, then prepay (the parent's two taps)."""
    out = {"codes": [], "steps_ms": []}
    t = time.monotonic_ns()
    status, body = await api_call(client, out, "POST", CREATE, {"course_schedule_id": item["schedule_id"]},
                                  item["token"])
    out["codes"].append(status)
    out["steps_ms"].append(ms_since(t))
    if status != 201 or not isinstance(body, dict):
        out["error"] = _error_code(body)
        return out
    out["order_id"] = body.get("order_id")
    t = time.monotonic_ns()
    status, body = await api_call(client, out, "POST", PREPAY, {"order_id": out["order_id"]}, item["token"])
    out["codes"].append(status)
    out["steps_ms"].append(ms_since(t))
    if status != 200 or not str((body or {}).get("package", "")).startswith("prepay_id="):
        out["error"] = _error_code(body)
    return out


async def order_create(client, item, t0):
    """One order create (the flash sale's tap)."""
    out = {}
    status, body = await api_call(client, out, "POST", CREATE, {"course_schedule_id": item["schedule_id"]},
                                  item["token"])
    out.update(codes=[status], error=_error_code(body))
    if status in (200, 201) and isinstance(body, dict):
        out["order_id"] = body.get("order_id")
    return out


async def notify(client, item, t0):
    """One signed payment notification, as WeChat Pay posts it."""
    status, _ = await client.request("POST", CALLBACK, item["body"].encode(), item["headers"])
    return {"codes": [status]}


def _error_code(body):
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("code")
    return None


FLOWS = {"order_flow": order_flow, "order_create": order_create, "notify": notify}


async def run_flow(client, fn, item, t_go, sched_ms=None):
    """One flow with its start and end relative to the go; transport errors are recorded, not raised."""
    start = ms_since(t_go)
    try:
        result = await fn(client, item, t_go)
    except (HTTPError, OSError) as e:
        result = {"codes": [], "error": f"{type(e).__name__}: {e}"}
    result.update(start_ms=start, end_ms=ms_since(t_go), answered=True)
    if sched_ms is not None:
        result["sched_ms"] = sched_ms
    return result


# -- the modes ------------------------------------------------------------------------------------------------
async def closed_loop(job, client, t_go):
    """`workers` connections, each running the next flow as soon as its last one is answered."""
    fn, items = FLOWS[job["kind"]], job["items"]
    results = [None] * len(items)
    nxt = [0]

    async def worker():
        while nxt[0] < len(items):
            i = nxt[0]
            nxt[0] += 1
            results[i] = await run_flow(client, fn, items[i], t_go)

    await asyncio.gather(*(worker() for _ in range(job["workers"])))
    return results


async def open_loop(job, client, t_go):
    """Flow i starts at i / rate seconds after the go, whatever happened to the others (no coordinated omission).

    A flow not answered `deadline` seconds after its scheduled start is given up (its connection is closed) and
    counted as never answered.
    """
    fn, items, rate, deadline = FLOWS[job["kind"]], job["items"], job["rate"], job["deadline"]
    results = [None] * len(items)

    async def one(i, sched_ms):
        remaining = deadline - (ms_since(t_go) - sched_ms) / 1000
        try:
            results[i] = await asyncio.wait_for(run_flow(client, fn, items[i], t_go, sched_ms), max(0.001, remaining))
        except asyncio.TimeoutError:
            results[i] = {"codes": [], "answered": False, "sched_ms": sched_ms, "start_ms": sched_ms,
                          "end_ms": None, "error": "deadline"}

    tasks = []
    for i in range(len(items)):
        sched_ms = 1000 * i / rate
        delay = (sched_ms - ms_since(t_go)) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, sched_ms)))
    await asyncio.gather(*tasks)
    return results


async def hello(job, client, t_go):
    """`workers` connections sending GET / for `duration` seconds; a summary rather than every request."""
    stop_ns = t_go + int(job["duration"] * 1e9)
    latencies, codes, errors = [], Counter(), Counter()

    async def worker():
        conn = await client.acquire()
        while time.monotonic_ns() < stop_ns:
            t = time.monotonic_ns()
            try:
                status, _ = await conn.request("GET", "/")
            except (HTTPError, OSError) as e:
                errors[type(e).__name__] += 1
                conn = await client.connect()
                continue
            latencies.append((time.monotonic_ns() - t) / 1e6)
            codes[status] += 1
        client.release(conn)

    await asyncio.gather(*(worker() for _ in range(job["workers"])))
    return {"requests": len(latencies), "codes": {str(k): v for k, v in codes.items()}, "errors": dict(errors),
            "latencies_ms": latencies}


async def run(args):
    """Connect, report ready, wait for the go, run, write the results."""
    with open(args.job, encoding="utf-8") as fh:
        job = json.load(fh)
    BUSY["retry"] = bool(job.get("retry_busy"))
    client = Client(job["url"])
    await client.preconnect(job.get("preconnect", job.get("workers", 0)))
    say(event="ready", connections=client.opened, niceness=os.nice(0))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    t_go = time.monotonic_ns()
    if job["kind"] == "hello":
        results = await hello(job, client, t_go)
    elif job["mode"] == "open":
        results = await open_loop(job, client, t_go)
    else:
        results = await closed_loop(job, client, t_go)
    elapsed = ms_since(t_go)
    client.close()
    with open(args.result, "w", encoding="utf-8") as fh:
        json.dump({"elapsed_ms": elapsed, "connections_opened": client.opened, "results": results}, fh)
    say(event="done", elapsed_ms=elapsed, connections_opened=client.opened)


def main():
    """Parse the arguments and run the job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    raise_open_files_limit()
    try:
        os.nice(PRIORITY)
    except OSError:  # not root: the default priority, said in the report (the ready event's niceness)
        pass
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
