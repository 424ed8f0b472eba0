"""`make stop` keeps its word: everything `make run` started is gone and its ports closed, from another terminal.

The test runs a whole second stack: `make run` with GYM_VAR_DIR set to a directory of its own (so its MariaDB data,
Redis, sandbox state and pid files live there) on free ports, and `make stop` with the same environment. `make
stop` only signals processes named by that directory's pid files, and only when their command line and working
directory show they are ours, so neither the developer's `make run` nor the MariaDB and Redis the rest of the suite
uses (both under var/) can be touched.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from tests.harness import ROOT, free_port, http_json, wait_until


def _alive(pid) -> bool:
    """The process exists and is no zombie (a stopped daemon's parent may be slow to reap it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _port_open(port) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid(path):
    with open(path, encoding="ascii") as fh:
        return int(fh.read().strip())


@pytest.fixture
def stack():
    """The environment, ports and directory of a second `make run`; whatever is left running is stopped after."""
    var = tempfile.mkdtemp(prefix="gym-run-")  # short: MariaDB's socket path must stay under 108 bytes
    ports = {"service": free_port(), "sandbox": free_port(), "mariadb": free_port(), "redis": free_port()}
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")}
    env.update(GYM_VAR_DIR=var, GYM_MYSQL_PORT=str(ports["mariadb"]), GYM_REDIS_PORT=str(ports["redis"]))
    started = []  # each started in a session of its own, killed with its children if the test left it running
    yield {"var": var, "ports": ports, "env": env, "started": started}
    subprocess.run(["make", "-s", "stop"], cwd=ROOT, env=env, capture_output=True, timeout=180)
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(10)
    shutil.rmtree(var, ignore_errors=True)


def _make_stop(stack):
    run = subprocess.run(["make", "-s", "stop"], cwd=ROOT, env=stack["env"], capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_make_stop_stops_everything_make_run_started(stack):
    var, ports = stack["var"], stack["ports"]
    log_path = os.path.join(var, "make-run.log")
    with open(log_path, "wb") as log:
        make_run = subprocess.Popen(
            ["make", "-s", "run", f"PORT={ports['service']}", f"SANDBOX_PORT={ports['sandbox']}"], cwd=ROOT,
            env=stack["env"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stack["started"].append(make_run)

    def log_text():
        with open(log_path, encoding="utf-8") as fh:
            return fh.read()

    def ready():
        assert make_run.poll() is None, f"make run exited {make_run.returncode}:\n{log_text()}"
        try:
            return http_json("GET", f"http://127.0.0.1:{ports['service']}/readyz", timeout=2)[0] == 200
        except OSError:
            return False

    wait_until(ready, timeout=240, interval=0.5, what="make run's service to answer /readyz")
    banner = log_text()
    assert f"http://127.0.0.1:{ports['service']}/admin/" in banner and "/demo/" in banner and "/sandbox/" in banner
    pid_files = {"service": f"{var}/run/service.pid", "sandbox": f"{var}/run/sandbox.pid",
                 "mariadb": f"{var}/mysql/mysqld.pid", "redis": f"{var}/redis/redis.pid"}
    pids = {name: _pid(path) for name, path in pid_files.items()}
    assert all(_alive(pid) for pid in pids.values()), pids
    assert all(_port_open(port) for port in ports.values()), ports

    out = _make_stop(stack)

    assert out.index("stopping service") < out.index("stopping MariaDB"), out  # never a service answering 503
    assert make_run.wait(30) == 0, log_text()  # the foreground service ended, and make run with it
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert [name for name, port in ports.items() if _port_open(port)] == []
    assert [name for name, path in pid_files.items() if os.path.exists(path)] == []
    again = _make_stop(stack)
    assert again.split("\n")[:4] == ["service: not running", "sandbox: not running", "MariaDB: not running",
                                     "Redis: not running"], again


def test_a_stale_pid_file_never_makes_make_stop_kill_a_stranger(stack):
    var = stack["var"]
    for sub in ("run", "mysql", "redis"):
        os.makedirs(os.path.join(var, sub), exist_ok=True)
    # A stranger that now holds the pid of a kill -9'd service (its command line even says server.py, but it runs
    # elsewhere), a stranger in our own directory, and a pid nobody holds any more.
    elsewhere = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "server.py"], cwd="/",
                                 start_new_session=True)
    here = subprocess.Popen(["sleep", "120"], cwd=ROOT, start_new_session=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    stack["started"] += [elsewhere, here]
    stale = {f"{var}/run/service.pid": elsewhere.pid, f"{var}/run/sandbox.pid": here.pid,
             f"{var}/mysql/mysqld.pid": gone.pid, f"{var}/redis/redis.pid": here.pid}
    for path, pid in stale.items():
        with open(path, "w", encoding="ascii") as fh:
            fh.write(f"{pid}\n")

    out = _make_stop(stack)

    assert elsewhere.poll() is None and here.poll() is None, out
    assert out.count("removed the stale") == 4 and "stopping" not in out, out
    assert [path for path in stale if os.path.exists(path)] == []
    for proc in (elsewhere, here):
        proc.terminate()
        proc.wait(10)
