"""Test harness: the real servers started by scripts/servers.sh, the sandbox process, and small HTTP helpers."""
from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAR = os.path.join(ROOT, "var")

# The suite shares a loaded machine: a test of something else must never be turned away by admission control
# (services/admission.py), whose own tests (tests/ops/test_admission.py) set the budgets they need.
ROOMY_ADMISSION = {"ADMISSION_QUEUE": "10000", "ADMISSION_WAIT_SECONDS": "120"}


def read_env_file(path):
    """Parse a KEY=VALUE file (no quoting) into a dict."""
    env = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


def admin_sql(db_url, statements):
    """Run statements on the server as the project's user, outside any test database (create, drop)."""
    import pymysql

    conn = pymysql.connect(host=db_url.host, port=db_url.port, user=db_url.user, password=db_url.password)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


def free_port():
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll predicate() until it is truthy; fail the test with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_json(method, url, body=None, headers=None, timeout=10):
    """A blocking JSON request; returns (status, parsed body or raw text, headers)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, rh = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        raw, status, rh = e.read(), e.code, dict(e.headers)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return status, parsed, rh


def private_sandbox(name, time_scale=0.01):
    """A sandbox of the test's own (fixture body): started on a fresh state directory var/test/NAME-PID, stopped and
    its directory removed after. `time_scale` as the sandbox's option (0.01: WeChat Pay's retries 100x faster)."""
    state_dir = os.path.join(VAR, "test", f"{name}-{os.getpid()}")
    shutil.rmtree(state_dir, ignore_errors=True)
    proc = SandboxProcess(state_dir, time_scale=time_scale)
    try:
        yield proc
    finally:
        proc.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


class SandboxProcess:
    """A running `python -m sandbox` on a loopback port, with its control API."""

    def __init__(self, state_dir, time_scale=0.01, extra_args=(), env=None, port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        self.log = open(os.path.join(state_dir, "sandbox.log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(self.port),
             "--state-dir", state_dir, "--time-scale", str(time_scale), *extra_args],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
        wait_until(self._healthy, timeout=20, what="the sandbox to answer /sandbox/health")
        self.env = read_env_file(os.path.join(state_dir, "service.env"))
        self.env["WECHAT_API_BASE"] = self.url
        self.env["WECHATPAY_GATEWAY"] = self.url

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"sandbox exited with {self.proc.returncode}; see {self.state_dir}/sandbox.log")
        try:
            return http_json("GET", self.url + "/sandbox/health", timeout=1)[0] == 200
        except OSError:
            return False

    def control(self, method, path, body=None):
        """Call the control API; returns the parsed JSON body, failing on a non-2xx answer."""
        status, parsed, _ = http_json(method, self.url + path, body)
        assert 200 <= status < 300, f"sandbox {method} {path} -> {status} {parsed}"
        return parsed

    def stop(self):
        """Terminate the process."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def kill(self):
        """SIGKILL: no chance to finish anything."""
        _kill(self.proc, self.log)


class ServiceProcess:
    """The service as its own OS process (`python server.py`), for tests that need two of them."""

    def __init__(self, env, name="service", port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT", "DATABASE", "REDIS"))},
                    **env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        self.env.setdefault("WECHATPAY_NOTIFY_URL", f"{self.url}/api/v1/payment/wxpay/callback")
        if "PROMETHEUS_MULTIPROC_DIR" not in env:  # its own: server.py empties the directory it is given
            self.env["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(VAR, "test", f"metrics-{name}-{self.port}")
        os.makedirs(os.path.join(VAR, "test"), exist_ok=True)
        self.log_path = os.path.join(VAR, "test", f"{name}-{self.port}.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "server.py"], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, what=f"{name} to answer /healthz")

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"service exited with {self.proc.returncode}; see {self.log_path}")
        try:
            return http_json("GET", self.url + "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def stop(self):
        """SIGTERM, then wait for the graceful stop."""
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def kill(self):
        """SIGKILL (kill -9): open transactions die with their connections, leases stay until they run out."""
        _kill(self.proc, self.log)


def _kill(proc, log):
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    log.close()


class RedisServer:
    """A private redis-server on its own port, which a test may stop and start again."""

    def __init__(self, name="redis"):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = os.path.join(VAR, "test", f"{name}-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.start()

    def _ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self):
        """Start (again) on the same port."""
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._ping, timeout=10, what="redis-server to answer")

    def stop(self):
        """Stop it (the service must carry on)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        wait_until(lambda: not self._ping(), timeout=10, what="redis-server to stop")


class MariaDBServer:
    """A private mariadbd (Debian's package) with its own datadir under var/test/, which a test may stop and start.

    Never the project's shared server: a test that stops this one disturbs nobody else.
    """

    SERVER_ARGS = ("--bind-address=127.0.0.1", "--skip-name-resolve", "--character-set-server=utf8mb4",
                   "--collation-server=utf8mb4_unicode_ci", "--innodb-buffer-pool-size=32M",
                   "--innodb-log-file-size=8M", "--innodb-flush-log-at-trx-commit=2", "--default-time-zone=+00:00",
                   "--max-connections=200")

    def __init__(self, name="mariadb"):
        self.port = free_port()
        self.dir = os.path.join(VAR, "test", f"{name}-{self.port}")
        self.datadir = os.path.join(self.dir, "data")
        self.tmpdir = os.path.join(self.dir, "tmp")  # its own, as scripts/servers.sh gives the project's
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.tmpdir)
        user = ["--user=root"] if os.geteuid() == 0 else []
        with open(os.path.join(self.dir, "install.log"), "wb") as log:
            subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", f"--tmpdir={self.tmpdir}",
                            *user,
                            "--auth-root-authentication-method=socket", "--skip-test-db", "--innodb-log-file-size=8M"],
                           check=True, stdout=log, stderr=subprocess.STDOUT)
        self.start()

    def _admin(self, timeout=2):
        import pymysql

        # The install gives root and the installing OS user socket authentication.
        return pymysql.connect(unix_socket=self.socket, user=getpass.getuser(), connect_timeout=timeout)

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"mariadbd exited with {self.proc.returncode}; see {self.dir}/error.log")
        try:
            self._admin(timeout=1).close()
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def start(self):
        """Start (again) on the same port and datadir."""
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        user = ["--user=root"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [binary, "--no-defaults", f"--datadir={self.datadir}", f"--tmpdir={self.tmpdir}", f"--socket={self.socket}",
             f"--port={self.port}",
             f"--pid-file={self.dir}/mysqld.pid", f"--log-error={self.dir}/error.log", *self.SERVER_ARGS, *user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, timeout=30, interval=0.1, what="the private mariadbd to answer")

    def create_database(self, name="gym", user="gym", password="gym-test-password"):
        """A database and a user for it over TCP; returns its mysql:// URL."""
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
                cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
                cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'127.0.0.1'")
            conn.commit()
        finally:
            conn.close()
        return f"mysql://{user}:{password}@127.0.0.1:{self.port}/{name}"

    def stop(self):
        """SIGTERM and wait for the clean shutdown (an outage, not a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def destroy(self):
        """Stop it and delete its datadir."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
