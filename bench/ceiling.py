"""The ceiling: a one-process Tornado hello-world under the bench's load generator, and RSA-2048 signatures/s.

Every figure of the suite is also given as a ratio to the hello-world measured in the same run. The signing rate
bounds the prepay rate: a prepay costs two signatures (the request to WeChat Pay and the paySign).

    .venv/bin/python bench/ceiling.py [--hello-seconds 10] [--rsa-seconds 3]
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402

from bench.common import common_parser, headline, lat, run_loadgen  # noqa: E402
from bench.world import BENCH_ROOT, Proc, ServiceRoot, free_port, healthy, log  # noqa: E402

HELLO_CONNECTIONS = 50


async def measure_hello(args):
    """Requests/s of `GET /` -> "ok" with 50 keep-alive connections, closed loop; CPU per request."""
    root = ServiceRoot(args.service_root)  # the same Python (and Tornado) as the service's
    port = free_port()
    log_path = os.path.join(BENCH_ROOT, "var", "bench", "logs", f"{os.getpid()}-hello.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    hello = Proc([root.python, os.path.join(BENCH_ROOT, "bench", "hello.py"), "--port", str(port)], BENCH_ROOT,
                 dict(os.environ), log_path, ready=healthy(f"http://127.0.0.1:{port}/"), what="hello-world")
    try:
        result, window = await _run(args, hello.pid, f"http://127.0.0.1:{port}")
    finally:
        hello.stop()
    r = result["results"]
    n = r["requests"]
    rps = n / window["seconds"]
    cpu = {k: round(1000 * v / max(1, n), 4) for k, v in window["cpu_seconds"].items()}
    return {"connections": HELLO_CONNECTIONS, "seconds": round(window["seconds"], 2), "requests": n,
            "codes": r["codes"], "errors": r["errors"], "requests_per_s": round(rps, 1),
            "cpu_ms_per_request": cpu, "latency_ms": lat(r["latencies_ms"]), "window": window}


async def _run(args, hello_pid, url):
    job = {"kind": "hello", "mode": "closed", "workers": HELLO_CONNECTIONS, "duration": args.hello_seconds}
    return await run_loadgen(None, "hello", job, args, url=url, extra_pids={"hello-world": (hello_pid, False)})


def measure_rsa(seconds):
    """SHA256withRSA (PKCS#1 v1.5) signatures and verifications per second with a 2048-bit key, one thread."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    message = b"wx1234567890\n1732400000\n" + os.urandom(16).hex().encode() + b"\nprepay_id=wx2024\n"
    out = {}
    for what in ("sign", "verify"):
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        n, cpu0, t0 = 0, time.process_time(), time.monotonic()
        limit = seconds if what == "sign" else seconds / 2
        while time.monotonic() - t0 < limit:
            for _ in range(20):
                if what == "sign":
                    key.sign(message, padding.PKCS1v15(), hashes.SHA256())
                else:
                    public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            n += 20
        elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
        # per CPU-second of this thread: what one core does, whatever else the shared machine runs
        out[what] = {"count": n, "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 3),
                     "per_s": round(n / cpu, 1), "wall_per_s": round(n / elapsed, 1),
                     "cpu_ms_each": round(1000 * cpu / n, 4)}
    out["prepays_per_s_bound"] = round(out["sign"]["per_s"] / 2, 1)
    return out


async def measure_ceiling(args):
    """Both ceilings, with the load average when they started."""
    loadavg = os.getloadavg()
    hello = await measure_hello(args)
    log(f"hello-world: {hello['requests_per_s']:.0f} req/s, "
        f"{hello['cpu_ms_per_request']['hello-world']:.3f} ms CPU per request")
    rsa_figures = measure_rsa(args.rsa_seconds)
    log(f"RSA-2048: {rsa_figures['sign']['per_s']:.0f} signatures/s, {rsa_figures['verify']['per_s']:.0f} verifies/s")
    return {"loadavg_at_start": loadavg, "hello": hello, "rsa": rsa_figures,
            "headline": [
                headline("hello_rps", "hello-world requests/s (50 connections)", hello["requests_per_s"], "req/s"),
                headline("hello_cpu_ms", "hello-world CPU per request", hello["cpu_ms_per_request"]["hello-world"],
                         "ms"),
                headline("loadgen_cpu_ms", "load generator CPU per request",
                         hello["cpu_ms_per_request"]["load generator"], "ms"),
                headline("rsa_sign_per_s", "RSA-2048 signatures/s (one core)", rsa_figures["sign"]["per_s"], "/s"),
                headline("rsa_verify_per_s", "RSA-2048 verifications/s (one core)", rsa_figures["verify"]["per_s"],
                         "/s"),
            ]}


def main():
    """The ceiling alone."""
    from bench.common import run_scenarios

    args = common_parser(__doc__.splitlines()[0]).parse_args()
    args.no_ceiling = False
    return run_scenarios(args, [], "ceiling")


if __name__ == "__main__":
    sys.exit(main())
