"""A second `make run`, as a person starts it: its own GYM_VAR_DIR (MariaDB data, Redis, sandbox state, pid files,
the admin password) on free ports, so neither the developer's `make run` nor the servers the rest of the suite uses
(both under var/) are touched, and what it holds (today's bill, the ledger) is its own."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from tests.harness import ROOT, free_port, http_json, wait_until


class MakeRunStack:
    """The environment, ports and directory of a second `make run`; `close()` stops whatever is left running."""

    def __init__(self):
        self.var = tempfile.mkdtemp(prefix="gym-run-")  # short: MariaDB's socket path must stay under 108 bytes
        self.ports = {"service": free_port(), "sandbox": free_port(), "mariadb": free_port(), "redis": free_port()}
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")}
        env.update(GYM_VAR_DIR=self.var, GYM_MYSQL_PORT=str(self.ports["mariadb"]),
                   GYM_REDIS_PORT=str(self.ports["redis"]))
        self.env = env
        self.started = []  # each started in a session of its own, killed with its children if left running
        self.log_path = os.path.join(self.var, "make-run.log")
        self.make_run = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['service']}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sandbox']}"

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8") as fh:
            return fh.read()

    def start(self, timeout=240):
        """`make run` in the background, returned once its service answers /readyz (its Popen)."""
        with open(self.log_path, "wb") as log:
            self.make_run = subprocess.Popen(
                ["make", "-s", "run", f"PORT={self.ports['service']}", f"SANDBOX_PORT={self.ports['sandbox']}"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(self.make_run)

        def ready():
            assert self.make_run.poll() is None, f"make run exited {self.make_run.returncode}:\n{self.log_text()}"
            try:
                return http_json("GET", f"{self.url}/readyz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(ready, timeout=timeout, interval=0.5, what="make run's service to answer /readyz")
        return self.make_run

    def admin_password(self) -> str:
        """The password `make run` gave the operator `admin`."""
        with open(os.path.join(self.var, "admin_password"), encoding="ascii") as fh:
            return fh.read().strip()

    def stop(self) -> subprocess.CompletedProcess:
        """`make stop` with this stack's environment."""
        return subprocess.run(["make", "-s", "stop"], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=180)

    def close(self):
        """Stop everything, kill what a failed test left running, remove the directory."""
        self.stop()
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(10)
        shutil.rmtree(self.var, ignore_errors=True)
