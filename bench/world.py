"""The processes a scenario runs against, started from ANY checkout of the service (`--service-root`).

A World is: a database of its own on the project's MariaDB (recreated and migrated with the service root's
`manage.py`), a private redis-server (pub/sub channels are not per database, so the shared Redis would mix our
pushes with those of test runs), the service root's WeChat Pay sandbox (`python -m sandbox`) and the service itself
(`python server.py` from the service root, `WORKERS` from `--workers`). Every process it starts, and every helper
process a scenario spawns through it, is stopped when it closes, also on an error or SIGTERM; the database is
dropped unless `--keep-database`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse, urlunparse

import pymysql

BENCH_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH_ROOT)

from tests.harness import RedisServer, free_port, http_json, read_env_file, wait_until  # noqa: E402

from bench import callgrind  # noqa: E402
from bench.procstat import pid_from_file  # noqa: E402

BENCH_VAR = os.path.join(BENCH_ROOT, "var", "bench")
ADMIN, ADMIN_PASSWORD = "bench-admin", "bench-password-not-secret"
DB_PREFIX = "gym_test_bench_"  # the dev grants cover gym_test_%; the suffix is the bench's pid


def log(message):
    """A progress line on stderr, with the time since the bench started."""
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


STARTED = time.monotonic()


class ServiceRoot:
    """A checkout of the service: where server.py, manage.py and sandbox/ are, and which Python runs them."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        for name in ("server.py", "manage.py", "sandbox"):
            if not os.path.exists(os.path.join(self.path, name)):
                raise SystemExit(f"--service-root {self.path}: no {name} there")
        venv_python = os.path.join(self.path, ".venv", "bin", "python")
        self.python = venv_python if os.path.exists(venv_python) else sys.executable

    def describe(self):
        """Path, commit and whether the work tree has changes, for the figures file."""
        def git(*cmd):
            out = subprocess.run(["git", "-C", self.path, *cmd], capture_output=True, text=True)
            return out.stdout.strip() if out.returncode == 0 else None

        status = git("status", "--porcelain", "--untracked-files=no")
        return {"path": self.path, "python": self.python, "commit": git("rev-parse", "HEAD"),
                "subject": git("log", "-1", "--format=%s"), "dirty": bool(status) if status is not None else None}


def dev_env():
    """The bench checkout's var/dev.env (scripts/servers.sh writes it; started here when missing)."""
    path = os.path.join(BENCH_ROOT, "var", "dev.env")
    if not os.path.exists(path):
        subprocess.run(["bash", os.path.join(BENCH_ROOT, "scripts", "servers.sh"), "start"], check=True)
    return read_env_file(path)


def mariadb_pid():
    """The project MariaDB's pid (scripts/servers.sh writes the pid file)."""
    return pid_from_file(os.path.join(BENCH_ROOT, "var", "mysql", "mysqld.pid"))


def db_connect(url, with_db=True):
    """A plain PyMySQL connection (setup, checks and counters; never in the measured path)."""
    p = urlparse(url)
    return pymysql.connect(host=p.hostname, port=p.port or 3306, user=p.username, password=p.password,
                           database=p.path.lstrip("/") if with_db else None, autocommit=True, charset="utf8mb4")


def query(url, sql, args=None, with_db=True):
    """All rows of one statement."""
    conn = db_connect(url, with_db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def global_status(url):
    """MariaDB's global statement counters (every client's, not only ours)."""
    return {name: int(value) for name, value in query(
        url, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_select', 'Com_insert', 'Com_update', "
        "'Com_delete', 'Com_commit', 'Com_begin', 'Com_rollback')", with_db=False)}


def drop_stale_databases(url):
    """Drop gym_test_bench_<pid> databases whose bench process is gone (a bench killed with SIGKILL)."""
    conn = db_connect(url, with_db=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (DB_PREFIX.replace("_", "\\_") + "%",))
            for (name,) in cur.fetchall():
                suffix = name[len(DB_PREFIX):].split("_")[0]
                if suffix.isdigit() and not os.path.exists(f"/proc/{suffix}"):
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


class Proc:
    """A child process with its log file; stop() sends SIGTERM (the whole group), then SIGKILL."""

    def __init__(self, cmd, cwd, env, log_path, ready=None, what="process", ready_timeout=60):
        self.what = what
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        if ready is not None:
            wait_until(lambda: self._check(ready), timeout=ready_timeout, what=f"{what} to start (log {log_path})")

    def _check(self, ready):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.what} exited with {self.proc.returncode}; see {self.log_path}")
        try:
            return ready()
        except OSError:
            return False

    def stop(self, timeout=20):
        """SIGTERM, wait, SIGKILL the group if it does not go."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        try:  # worker processes the service forked, should any outlive it
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()


def healthy(url):
    """A GET of `url` answers 200."""
    return lambda: http_json("GET", url, timeout=1)[0] == 200


class World:
    """Database, private Redis, sandbox and service for one scenario; a context manager."""

    def __init__(self, args, name, scenario_env=None):
        self.args = args
        self.name = name
        self.scenario_env = dict(scenario_env or {})  # the scenario's own service settings (--env overrides them)
        self.root = ServiceRoot(args.service_root)
        self.dev = dev_env()
        test_url = urlparse(self.dev["TEST_DATABASE_URL"])
        self.db_name = f"{DB_PREFIX}{os.getpid()}_{name}"[:64]
        self.db_url = urlunparse(test_url._replace(path="/" + self.db_name))
        self.admin_db_url = self.dev["TEST_DATABASE_URL"]
        self.run_dir = os.path.join(BENCH_VAR, f"run-{os.getpid()}")
        os.makedirs(self.run_dir, exist_ok=True)
        self.started = []  # stopped in reverse order
        self.children = []  # helper processes a scenario spawned (asyncio), killed if still running
        self.redis = self.sandbox = self.service = self.sqlcount = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """Everything, in order; the service last."""
        drop_stale_databases(self.admin_db_url)
        self.recreate_database()
        self.redis = RedisServer(f"bench-redis-{self.name}")
        self.started.append(self.redis)
        state = os.path.join(self.run_dir, "sandbox")
        port = free_port()
        self.sandbox = Proc([self.root.python, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port),
                             "--state-dir", state, "--time-scale", "1.0"], self.root.path, self._base_env(),
                            self.log_path("sandbox"),
                            ready=healthy(f"http://127.0.0.1:{port}/sandbox/health"), what="sandbox")
        self.sandbox.url, self.sandbox.state_dir = f"http://127.0.0.1:{port}", state
        self.sandbox.env = read_env_file(os.path.join(state, "service.env"))
        self.sandbox.env.update(WECHAT_API_BASE=self.sandbox.url, WECHATPAY_GATEWAY=self.sandbox.url)
        self.started.append(self.sandbox)
        db_url = self.db_url
        if self.args.count_sql:
            db_url = self.start_sqlcount()
        self.start_service(db_url)

    def restart_service(self):
        """A fresh service process on the same database (what the setup left in the old one's heap goes)."""
        self.started.remove(self.service)
        self.service.stop()
        self.start_service(self._service_db_url)

    def start_sqlcount(self):
        """The counting proxy; returns the DATABASE_URL that goes through it."""
        target = urlparse(self.db_url)
        port = free_port()
        self.sqlcount = subprocess.Popen(
            [sys.executable, os.path.join(BENCH_ROOT, "bench", "sqlcount.py"), "--listen-port", str(port),
             "--target-host", target.hostname, "--target-port", str(target.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert json.loads(self.sqlcount.stdout.readline())["event"] == "ready"
        netloc = f"{target.username}:{target.password}@127.0.0.1:{port}"
        return urlunparse(target._replace(netloc=netloc))

    def sql_counts(self):
        """The proxy's counters so far, or None without --count-sql."""
        if self.sqlcount is None:
            return None
        self.sqlcount.stdin.write("snap\n")
        self.sqlcount.stdin.flush()
        return json.loads(self.sqlcount.stdout.readline())

    def start_service(self, db_url):
        """`python server.py` from the service root, on a free port."""
        self._service_db_url = db_url
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = self.service_env(db_url, port)
        command = [self.root.python, "server.py"]
        self.cpu_profile = None
        if getattr(self.args, "cpu_profile", False):
            self.cpu_profile = os.path.join(BENCH_VAR, f"cpuprofile-{self.name}-{time.strftime('%Y%m%d-%H%M%S')}.prof")
            command = [self.root.python, os.path.join(BENCH_ROOT, "bench", "cpuprofile.py"), self.cpu_profile,
                       "server.py"]
        self.instructions = None
        if getattr(self.args, "count_instructions", False):
            if self.args.workers != 1 or self.cpu_profile:
                raise SystemExit("--count-instructions: one process (--workers 1), without --cpu-profile")
            out = os.path.join(BENCH_VAR, f"callgrind-{self.name}-{time.strftime('%Y%m%d-%H%M%S')}.out")
            command = callgrind.command(out, command)
        self.service = Proc(command, self.root.path, env,
                            self.log_path("service"),
                            ready=healthy(url + "/healthz"), what="service",
                            ready_timeout=300 if getattr(self.args, "count_instructions", False) else 60)
        if getattr(self.args, "count_instructions", False):
            self.instructions = callgrind.Instructions(self.service.pid, out, env["HOST"])
        self.service.url = url
        self.started.append(self.service)
        log(f"{self.name}: service pid {self.service.pid} on {url} from {self.root.path} "
            f"(WORKERS={self.args.workers}); log {self.service.log_path}")

    def service_env(self, db_url, port):
        """The environment the service runs with on this World's servers."""
        url = f"http://127.0.0.1:{port}"
        env = {**self._base_env(),
               "DATABASE_URL": db_url, "REDIS_URL": self.redis.url,
               "SECRET_KEY": "bench-secret-key-0123456789abcdef-not-a-secret",
               **{k: v for k, v in self.sandbox.env.items() if k.startswith("WECHAT")},
               "WECHATPAY_CERT_DIR": os.path.join(self.run_dir, "certs"),
               "DATA_KEY_FILE": self.dev["DATA_KEY_FILE"], "AUDIT_KEY_FILE": self.dev["AUDIT_KEY_FILE"],
               "AUDIT_CHECKPOINT_DIR": os.path.join(self.run_dir, "audit-checkpoints"),
               "WECHATPAY_NOTIFY_URL": f"{url}/api/v1/payment/wxpay/callback",
               "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": str(self.args.workers),
               "RATE_LIMIT_PER_MINUTE": "0", "RECONCILE_INTERVAL_SECONDS": "3600",
               # The holds must outlive any slow run: a lapsed hold would not be the thing measured.
               "SEAT_HOLD_SECONDS": "3600", "ORDER_EXPIRE_SECONDS": "3600",
               # Notifications are signed before the clock starts; a slow run must not make them stale.
               "NOTIFY_TOLERANCE_SECONDS": "1800",
               **self.scenario_env}
        for item in self.args.env or ():
            key, _, value = item.partition("=")
            env[key] = value
        return env

    def scenario_settings(self):
        """The scenario's own service settings as the service got them (an --env of the same key wins)."""
        given = dict(item.partition("=")[::2] for item in self.args.env or ())
        return {k: given.get(k, v) for k, v in self.scenario_env.items()}

    def log_path(self, what):
        """var/bench/logs/<pid>-<scenario>-<what>.log (kept after the run)."""
        os.makedirs(os.path.join(BENCH_VAR, "logs"), exist_ok=True)
        return os.path.join(BENCH_VAR, "logs", f"{os.getpid()}-{self.name}-{what}.log")

    def _base_env(self):
        """This environment without what the World sets itself, plus the dev keys (DATA_KEY_FILE, ...) that
        var/dev.env names: the service, its manage.py and the sandbox start with them."""
        keys = {k: v for k, v in self.dev.items() if k.endswith("_KEY_FILE")}
        own = ("WECHAT", "DATABASE", "REDIS", "WORKERS", "PYTHONPATH", "VIRTUAL_ENV")
        return {**keys, **{k: v for k, v in os.environ.items() if not k.startswith(own)}}

    def recreate_database(self):
        """Drop and create our database, migrate it with the service root's manage.py, add the operator."""
        conn = db_connect(self.admin_db_url, with_db=False)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.db_name}`")
            cur.execute(f"CREATE DATABASE `{self.db_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        conn.close()
        env = {**self._base_env(), "DATABASE_URL": self.db_url}
        manage = [self.root.python, "manage.py"]
        subprocess.run([*manage, "migrate"], cwd=self.root.path, env=env, check=True, stdout=subprocess.DEVNULL)
        password_file = os.path.join(self.run_dir, "admin_password")
        with open(password_file, "w", encoding="utf-8") as fh:
            fh.write(ADMIN_PASSWORD)
        subprocess.run([*manage, "create-operator", "--username", ADMIN, "--password-file", password_file,
                        "--role", "admin"], cwd=self.root.path, env=env, check=True, stdout=subprocess.DEVNULL)

    def close(self):
        """Stop every process (children first), then drop the database."""
        for pid in self.children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.sqlcount is not None and self.sqlcount.poll() is None:
            self.started.insert(0, _Popen(self.sqlcount))  # stopped after the service
        for proc in reversed(self.started):
            try:
                proc.stop()
            except Exception as e:  # noqa: BLE001 - stop the others regardless
                log(f"stopping {type(proc).__name__} failed: {e}")
        self.started.clear()
        if not self.args.keep_database:
            try:
                conn = db_connect(self.admin_db_url, with_db=False)
                with conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{self.db_name}`")
                conn.close()
            except pymysql.MySQLError as e:
                log(f"dropping {self.db_name} failed: {e}")

    # -- what scenarios need -------------------------------------------------------------------------
    def pids(self):
        """The processes whose CPU is read: name -> (pid, whole process tree?)."""
        out = {"service": (self.service.pid, True), "mariadb": (mariadb_pid(), False),
               "redis": (self.redis.proc.pid, False), "sandbox": (self.sandbox.pid, False),
               "bench": (os.getpid(), False)}
        if self.sqlcount is not None:
            out["sqlcount proxy"] = (self.sqlcount.pid, False)
        return out

    def raise_capacity(self, schedule_id, capacity):
        """The admin API stops at 1,000 seats; a scenario that needs more sets them with one UPDATE."""
        query(self.db_url, "UPDATE course_schedules SET capacity = %s WHERE id = %s", (capacity, schedule_id))


class _Popen:
    """stop() for a bare Popen."""

    def __init__(self, proc):
        self.proc = proc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
