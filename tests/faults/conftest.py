"""Fixtures of the fault tests: a database of each test's own, and service processes the test may kill."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest

import settings as settings_module
from models import close_database, open_database
from tests.harness import ROOMY_ADMISSION, ROOT, VAR, ServiceProcess, admin_sql, read_env_file

_numbers = itertools.count(1)


def _admin_sql(server_env, statements):
    admin_sql(settings_module.parse_database_url(server_env), statements)


def migrate(database_url):
    """`manage.py migrate` on a database, as an operator runs it."""
    subprocess.run([sys.executable, "manage.py", "migrate"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DATABASE_URL": database_url})


@pytest.fixture
def fault_db_url(server_env):
    """A fresh, migrated database of this test's own on the project's server, dropped after the test.

    The invariant check reads a whole database, so each fault test gets one that holds nothing but its own story.
    """
    name = f"{settings_module.parse_database_url(server_env).name}_f{next(_numbers)}"
    _admin_sql(server_env, [f"DROP DATABASE IF EXISTS `{name}`",
                            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"])
    url = server_env["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    migrate(url)
    yield url
    _admin_sql(server_env, [f"DROP DATABASE IF EXISTS `{name}`"])


@pytest.fixture
def fault_db(io_loop, fault_db_url):
    """fault_db_url, with this test process's models pointed at it (for the assertions and the invariant check)."""
    io_loop.run_sync(lambda: open_database(settings_module.parse_database_url({"DATABASE_URL": fault_db_url}),
                                           pool_max=5))
    yield fault_db_url
    io_loop.run_sync(close_database)


def service_env(sandbox, database_url, redis_url, cert_dir, **extra):
    """The environment of a service process on these servers and this sandbox."""
    env = {k: v for k, v in sandbox.env.items() if k.startswith("WECHAT")}
    env.update({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret-key-0123456789abcdef",
                "DATA_KEY_FILE": read_env_file(os.path.join(VAR, "dev.env"))["DATA_KEY_FILE"],
                "WECHATPAY_CERT_DIR": str(cert_dir), "RATE_LIMIT_PER_MINUTE": "0", **ROOMY_ADMISSION,
                "AUDIT_KEY_FILE": os.path.join(VAR, "audit_key"),
                "AUDIT_CHECKPOINT_DIR": os.path.join(os.path.dirname(str(cert_dir)), "audit-checkpoints")})
    env.update(extra)
    return env


@pytest.fixture
def services():
    """start(env, name, port=None) -> ServiceProcess; every one still running is stopped after the test."""
    started = []

    def start(env, name, port=None):
        proc = ServiceProcess(env, name=name, port=port)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.stop()
