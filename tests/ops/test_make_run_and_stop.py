"""`make stop` keeps its word: everything `make run` started is gone and its ports closed, from another terminal.

The test runs a whole second stack: `make run` with GYM_VAR_DIR set to a directory of its own (so its MariaDB data,
Redis, sandbox state and pid files live there) on free ports, and `make stop` with the same environment. `make
stop` only signals processes named by that directory's pid files, and only when their command line and working
directory show they are ours, so neither the developer's `make run` nor the MariaDB and Redis the rest of the suite
uses (both under var/) can be touched.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.harness import ROOT
from tests.make_run import MakeRunStack


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
    """A second `make run`'s environment, ports and directory; whatever is left running is stopped after."""
    made = MakeRunStack()
    yield made
    made.close()


def _make_stop(stack):
    run = stack.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_make_stop_stops_everything_make_run_started(stack):
    var, ports = stack.var, stack.ports
    make_run = stack.start()
    banner = stack.log_text()
    assert f"http://127.0.0.1:{ports['service']}/admin/" in banner and "/demo/" in banner and "/sandbox/" in banner
    pid_files = {"service": f"{var}/run/service.pid", "sandbox": f"{var}/run/sandbox.pid",
                 "mariadb": f"{var}/mysql/mysqld.pid", "redis": f"{var}/redis/redis.pid"}
    pids = {name: _pid(path) for name, path in pid_files.items()}
    assert all(_alive(pid) for pid in pids.values()), pids
    assert all(_port_open(port) for port in ports.values()), ports

    out = _make_stop(stack)

    assert out.index("stopping service") < out.index("stopping MariaDB"), out  # never a service answering 503
    assert make_run.wait(30) == 0, stack.log_text()  # the foreground service ended, and make run with it
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert [name for name, port in ports.items() if _port_open(port)] == []
    assert [name for name, path in pid_files.items() if os.path.exists(path)] == []
    again = _make_stop(stack)
    assert again.split("\n")[:4] == ["service: not running", "sandbox: not running", "MariaDB: not running",
                                     "Redis: not running"], again


def test_a_stale_pid_file_never_makes_make_stop_kill_a_stranger(stack):
    var = stack.var
    for sub in ("run", "mysql", "redis"):
        os.makedirs(os.path.join(var, sub), exist_ok=True)
    # A stranger that now holds the pid of a kill -9'd service (its command line even says server.py, but it runs
    # elsewhere), a stranger in our own directory, and a pid nobody holds any more.
    elsewhere = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "server.py"], cwd="/",
                                 start_new_session=True)
    here = subprocess.Popen(["sleep", "120"], cwd=ROOT, start_new_session=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    stack.started += [elsewhere, here]
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
