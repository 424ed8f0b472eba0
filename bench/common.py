"""What every scenario shares: the options, the setup through the API, the measured window, the load generator.

A scenario is `async def measure(world, args) -> figures`. `main()` below runs the ceiling and then the named
scenarios, each in a World of its own, writes the figures to var/bench/ and a Markdown table to stdout, and exits 1
when a correctness check failed.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time

from bench.fanout_report import spread
from bench.httpclient import Client
from bench.procstat import cpu_seconds, machine, machine_busy_seconds, raise_open_files_limit, tree_cpu_seconds
from bench.world import (
    ADMIN, ADMIN_PASSWORD, BENCH_ROOT, BENCH_VAR, World, global_status, log, mariadb_pid,
)

API_MAX_CAPACITY = 1000  # the admin API refuses more seats per session
SETUP_RETRY_SECONDS = 300  # a setup call turned away by admission control is sent again for this long


# -- options --------------------------------------------------------------------------------------------------
def common_parser(description):
    """The options every scenario takes."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("what to measure")
    g.add_argument("--service-root", default=BENCH_ROOT,
                   help="checkout whose server.py, manage.py and sandbox/ run (its .venv/bin/python if it has one)")
    g.add_argument("--workers", type=int, default=1, help="passed to the service as WORKERS")
    g.add_argument("--env", action="append", metavar="KEY=VALUE", help="extra environment for the service")
    g.add_argument("--label", default="", help="free text stored with the figures (e.g. 'before')")
    g = p.add_argument_group("how")
    g.add_argument("--no-ceiling", action="store_true", help="skip the hello-world and RSA ceiling")
    g.add_argument("--hello-seconds", type=float, default=10.0)
    g.add_argument("--rsa-seconds", type=float, default=3.0)
    g.add_argument("--setup-concurrency", type=int, default=32, help="logins and orders in flight during setup")
    g.add_argument("--count-sql", action="store_true",
                   help="route the service's MySQL traffic through bench/sqlcount.py and count statements "
                        "(exact, but the proxy's CPU disturbs the timings)")
    g.add_argument("--profile", action="store_true",
                   help="py-spy record the service during each measured window (var/bench/profile-*.txt)")
    g.add_argument("--cpu-profile", action="store_true",
                   help="run the service under cProfile on its CPU clock during each measured window "
                        "(bench/cpuprofile.py; var/bench/cpuprofile-*.prof; one process only)")
    g.add_argument("--count-instructions", action="store_true",
                   help="run the service under valgrind's callgrind, instrumented only during each measured window, "
                        "and report the instructions it executed per operation: a count that does not depend on "
                        "what else the machine runs (the service runs some 50 times slower; use few --flow-workers; "
                        "one process only; var/bench/callgrind-*.out)")
    g.add_argument("--phase-timeout", type=float, default=600.0, help="longest any one phase may take")
    g.add_argument("--keep-database", action="store_true", help="leave the bench databases for inspection")
    g.add_argument("--out", help="figures file (default var/bench/<name>-<time>.json)")
    g.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to this long for the 1-minute load average to fall below 1")
    return p


# -- the API, for setup (not measured) ----------------------------------------------------------------------
class Setup:
    """Operators, sessions, parents and orders made through the service's API, a bounded number at a time."""

    def __init__(self, world, concurrency):
        self.world = world
        self.api = Client(world.service.url)
        self.sandbox = Client(world.sandbox.url)
        self.gate = asyncio.Semaphore(concurrency)
        self._admin = None

    async def call(self, method, path, payload=None, token=None, headers=None):
        """An API call of the setup: a 503 with Retry-After (admission control) is sent again after it."""
        deadline = time.monotonic() + SETUP_RETRY_SECONDS
        while True:
            answer = await self.api.call(method, path, payload, token=token, headers=headers)
            if answer[0] != 503 or answer.retry_after is None or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(answer.retry_after * (1 + random.random() / 5))

    async def admin_token(self):
        """The bench operator's token."""
        if self._admin is None:
            status, data = await self.call("POST", "/api/v1/admin/login",
                                               {"username": ADMIN, "password": ADMIN_PASSWORD})
            assert status == 200, (status, data)
            self._admin = data["token"]
        return self._admin

    async def schedule(self, capacity, title="体验课 bench"):
        """A new class session in a week; above the API's 1,000 seats the capacity is raised with one UPDATE."""
        starts = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)).isoformat()
        status, data = await self.call("POST", "/api/v1/admin/schedules",
                                           {"title": title, "starts_at": starts,
                                            "capacity": min(capacity, API_MAX_CAPACITY)},
                                           token=await self.admin_token())
        assert status == 201, (status, data)
        if capacity > API_MAX_CAPACITY:
            self.world.raise_capacity(data["id"], capacity)
        return data["id"]

    async def parent(self):
        """A new parent logged in: (token, openid)."""
        async with self.gate:
            status, minted = await self.sandbox.call("POST", "/sandbox/wx/login", {})
            assert status == 200, (status, minted)
            status, data = await self.call("POST", "/api/v1/auth/login", {"code": minted["code"]})
            assert status == 200, (status, data)
            return data["token"], minted["openid"]

    async def parents(self, n):
        """n new parents, each logged in once."""
        return await asyncio.gather(*(self.parent() for _ in range(n)))

    async def order(self, token, schedule_id, prepay=False):
        """An order (and its JSAPI payment started): the order object."""
        async with self.gate:
            status, order = await self.call("POST", "/api/v1/payment/orders/create",
                                                {"course_schedule_id": schedule_id}, token=token)
            assert status == 201, (status, order)
            if prepay:
                status, params = await self.call("POST", "/api/v1/payment/wxpay/create",
                                                     {"order_id": order["order_id"]}, token=token)
                assert status == 200, (status, params)
            return order

    def close(self):
        """Close the connections."""
        self.api.close()
        self.sandbox.close()


# -- the measured window --------------------------------------------------------------------------------------
class Window:
    """CPU of each process, the machine's busy time, MariaDB's statement counters, between start() and stop()."""

    def __init__(self, world, extra=None):
        self.world = world
        self.pids = {**(world.pids() if world else {"bench": (os.getpid(), False)}), **(extra or {})}
        if world is None:
            self.pids["mariadb"] = (mariadb_pid(), False)
        self.db_url = world.admin_db_url if world else None

    def _snap(self):
        cpu = {name: (tree_cpu_seconds(pid) if tree else cpu_seconds(pid)) if pid else None
               for name, (pid, tree) in self.pids.items()}
        return {"t": time.monotonic(), "cpu": cpu, "machine": machine_busy_seconds(), "tcp": listen_counters(),
                "global": global_status(self.db_url) if self.db_url else None,
                "sql": self.world.sql_counts() if self.world else None}

    def start(self):
        """Read every counter now."""
        self.first = self._snap()
        return self

    def stop(self):
        """Read them again; returns the deltas."""
        last = self._snap()
        a = self.first
        cpu = {name: round(last["cpu"][name] - a["cpu"][name], 3) for name in a["cpu"]
               if a["cpu"][name] is not None and last["cpu"][name] is not None}
        machine_busy = last["machine"] - a["machine"]
        out = {"seconds": last["t"] - a["t"], "cpu_seconds": cpu, "machine_busy_seconds": round(machine_busy, 2),
               "others_cpu_seconds": round(machine_busy - sum(cpu.values()), 2)}
        out["tcp_listen_queue (machine-wide)"] = {k: last["tcp"][k] - a["tcp"][k] for k in a["tcp"]}
        if a["global"] is not None:
            out["mariadb_global_counters"] = {k: last["global"][k] - a["global"][k] for k in a["global"]}
        if a["sql"] is not None:
            keys = set(a["sql"]) | set(last["sql"])
            out["sql"] = {k: last["sql"].get(k, 0) - a["sql"].get(k, 0) for k in sorted(keys)}
        return out


def listen_counters():
    """The kernel's TcpExt ListenOverflows / ListenDrops / SyncookiesSent (every listening socket of the machine)."""
    wanted = ("ListenOverflows", "ListenDrops", "SyncookiesSent")
    with open("/proc/net/netstat", encoding="ascii") as fh:
        lines = fh.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            pairs = dict(zip(names.split()[1:], values.split()[1:]))
            return {k: int(pairs.get(k, 0)) for k in wanted}
    return {k: 0 for k in wanted}


def per_op(window, operations):
    """CPU ms per operation for each process, and SQL statements per operation when counted."""
    n = max(1, operations)
    out = {"cpu_ms_per_op": {k: round(1000 * v / n, 3) for k, v in window["cpu_seconds"].items()}}
    if "sql" in window:
        out["sql_per_op"] = {k: round(v / n, 2) for k, v in window["sql"].items() if v}
    if "service_instructions" in window:
        out["service_instructions_per_op"] = round(window["service_instructions"] / n)
    if "mariadb_global_counters" in window:
        out["global_questions_per_op"] = round(window["mariadb_global_counters"]["Questions"] / n, 2)
    return out


class Profiler:
    """py-spy recording the service (and its workers) during a window, as collapsed stacks."""

    def __init__(self, world, name):
        self.proc = None
        self.path = os.path.join(BENCH_VAR, f"profile-{name}-{time.strftime('%Y%m%d-%H%M%S')}.txt")
        py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
        if not os.path.exists(py_spy):
            raise SystemExit("--profile needs py-spy in the bench's venv: WITH_BENCH=1 bash scripts/bootstrap.sh "
                             "(installs bench/requirements.txt)")
        self.proc = subprocess.Popen([py_spy, "record", "--pid", str(world.service.pid), "--rate", "250",
                                      "--format", "raw", "--subprocesses", "--output", self.path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        world.children.append(self.proc.pid)
        time.sleep(1.0)  # attached before the clock starts

    def stop(self):
        """Stop recording; the stacks are written on SIGINT."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.path


# -- the load generator ---------------------------------------------------------------------------------------
async def run_loadgen(world, name, job, args, url=None, extra_pids=None):
    """Run one job in bench/loadgen.py: (its result file, the window from its "go" to its "done")."""
    job = {"url": url or world.service.url, **job}
    job_path = os.path.join(BENCH_VAR, f"job-{os.getpid()}-{name}.json")
    result_path = os.path.join(BENCH_VAR, f"result-{os.getpid()}-{name}.json")
    with open(job_path, "w", encoding="utf-8") as fh:
        json.dump(job, fh)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(BENCH_ROOT, "bench", "loadgen.py"), "--job", job_path, "--result", result_path,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True)
    if world is not None:
        world.children.append(proc.pid)
    try:
        ready = await read_event(proc, args.phase_timeout)
        assert ready["event"] == "ready", ready
        if ready.get("niceness") is not None and world is not None and not getattr(world, "_said_niceness", False):
            world._said_niceness = True  # once: the load generator's priority (bench/loadgen.py PRIORITY)
            log(f"{name}: load generator at niceness {ready['niceness']} (the service, MariaDB and the sandbox at 0)")
        window = Window(world, {"load generator": (proc.pid, False), **(extra_pids or {})})
        profiler = Profiler(world, name) if args.profile and world is not None else None
        cpu_profile = getattr(world, "cpu_profile", None) if world is not None else None
        if cpu_profile:
            os.kill(world.service.pid, signal.SIGUSR1)
        counter = getattr(world, "instructions", None) if world is not None else None
        if counter:
            counter.start()
        window.start()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        done = await read_event(proc, args.phase_timeout)
        figures = window.stop()
        if counter:
            figures["service_instructions"], figures["callgrind"] = counter.stop()
        if cpu_profile:
            os.kill(world.service.pid, signal.SIGUSR2)
            figures["cpu_profile"] = os.path.relpath(cpu_profile, BENCH_ROOT)
        if profiler:
            figures["profile"] = os.path.relpath(profiler.stop(), BENCH_ROOT)
        assert done["event"] == "done", done
        await asyncio.wait_for(proc.wait(), 30)
        with open(result_path, encoding="utf-8") as fh:
            result = json.load(fh)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for path in (job_path, result_path):
            if os.path.exists(path):
                os.remove(path)
    return result, figures


async def read_event(proc, timeout):
    """The next JSON line a helper process prints."""
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise RuntimeError(f"helper process {proc.pid} exited with {await proc.wait()}")
    return json.loads(line)


def lat(values):
    """spread() rounded for the figures file (latencies in ms)."""
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in spread(values).items()}


def headline(key, label, value, unit, ratio=None, goal=None):
    """One figure of the summary table; `ratio` is "rate" (÷ hello req/s) or "cpu" (÷ hello CPU per request);
    `goal` (see goal()) is printed beside it, met or not."""
    found = {"key": key, "label": label, "value": value, "unit": unit, "ratio": ratio}
    if goal is not None:
        found["goal"] = goal
    return found


def goal(text, at_most=None, at_least=None, of="value"):
    """A goal for a headline figure: its `value`, or its `ratio` to the ceiling, at most or at least a bound."""
    return {"text": text, "at_most": at_most, "at_least": at_least, "of": of}


def check(what, ok, detail=""):
    """One correctness check."""
    return {"what": what, "ok": bool(ok), "detail": str(detail)[:500]}


def settle(world, quiet_cpu=0.05, longest=60.0):
    """Wait until the service has stopped working on what is left (its CPU idle for a second)."""
    pid = world.service.pid
    deadline = time.monotonic() + longest
    last = tree_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = tree_cpu_seconds(pid)
        if now - last < quiet_cpu:
            return
        last = now


# -- the run --------------------------------------------------------------------------------------------------
def run_scenarios(args, scenarios, suite_name):
    """Ceiling, then each (name, measure) in its own World; print, write, return the exit status."""
    from bench.ceiling import measure_ceiling
    from bench.report import render_run

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through every finally: stops everything
    raise_open_files_limit()
    os.makedirs(BENCH_VAR, exist_ok=True)
    from bench.world import ServiceRoot

    root = ServiceRoot(args.service_root)
    run = {"suite": suite_name, "label": args.label, "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
           "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
           "service_root": root.describe(), "workers": args.workers, "env": args.env or [],
           "count_sql": args.count_sql, "profile": args.profile, "loadavg_at_start": os.getloadavg(),
           "ceiling": None, "scenarios": {}, "errors": [], "complete": False}
    deadline = time.monotonic() + args.wait_quiet
    while os.getloadavg()[0] >= 1.0 and time.monotonic() < deadline:
        time.sleep(5)
    run["loadavg_at_start"] = os.getloadavg()
    out = args.out or os.path.join(BENCH_VAR, f"{suite_name}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    try:
        if not args.no_ceiling:
            log("ceiling: hello-world and RSA-2048 signing")
            run["ceiling"] = asyncio.run(measure_ceiling(args))
        for name, measure in scenarios:
            started = time.monotonic()
            loadavg = os.getloadavg()
            try:
                service_env = getattr(measure, "service_env", None)
                with World(args, name, service_env(args) if service_env else None) as world:
                    figures = asyncio.run(measure(world, args))
                    if world.scenario_env:
                        figures["service_env"] = world.scenario_settings()
            except Exception as e:  # noqa: BLE001 - recorded; the other scenarios still run
                log(f"{name} failed: {type(e).__name__}: {e}")
                run["errors"].append(f"{name}: {type(e).__name__}: {e}")
                continue
            figures["loadavg_at_start"] = loadavg
            figures["wall_seconds"] = round(time.monotonic() - started, 1)
            run["scenarios"][name] = figures
            log(f"{name} done in {figures['wall_seconds']:.0f}s")
        run["complete"] = True
    finally:
        run["loadavg_at_end"] = os.getloadavg()
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(run, fh, indent=1)
        run_dir = os.path.join(BENCH_VAR, f"run-{os.getpid()}")
        subprocess.run(["rm", "-rf", run_dir], check=False)
    print(render_run(run), flush=True)
    failed = [f"{name}: {c['what']} ({c['detail']})" for name, f in run["scenarios"].items()
              for c in f.get("checks", ()) if not c["ok"]] + run["errors"]
    for problem in failed:
        print(f"FAILED: {problem}", flush=True)
    print(f"figures written to {os.path.relpath(out, BENCH_ROOT)}", flush=True)
    args.written = out
    return 1 if failed else 0
