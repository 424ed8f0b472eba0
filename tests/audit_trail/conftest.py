"""Fixtures of the audit-trail tests: a database of each test's own (the verdict reads a whole table), the service as
processes on it, and the two verifiers (the API and `manage.py verify-audit`)."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

import settings as settings_module
from models import close_database, database, open_database
from tests.api import Api
from tests.harness import ROOMY_ADMISSION, ROOT, ServiceProcess, admin_sql

_numbers = itertools.count(1)
VERIFY = "/api/v1/admin/audit/verify"


@pytest.fixture
def trail_db(io_loop, server_env):
    """A fresh database migrated by `manage.py migrate`, with this test process's models pointed at it (for the
    tampering by SQL and the assertions); dropped after the test."""
    base = settings_module.parse_database_url(server_env)
    name = f"{base.name}_a{next(_numbers)}"
    admin_sql(base, [f"DROP DATABASE IF EXISTS `{name}`",
                     f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"])
    url = server_env["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    subprocess.run([sys.executable, "manage.py", "migrate"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DATABASE_URL": url})
    io_loop.run_sync(lambda: open_database(settings_module.parse_database_url({"DATABASE_URL": url}), pool_max=5))
    yield url
    io_loop.run_sync(close_database)
    admin_sql(base, [f"DROP DATABASE IF EXISTS `{name}`"])


@pytest.fixture
def trail_env(server_env, sandbox, trail_db, tmp_path):
    """The environment of a service process on trail_db (checkpoints in this test's own directory)."""
    return {**{k: v for k, v in sandbox.env.items() if k.startswith("WECHAT")},
            "DATABASE_URL": trail_db, "REDIS_URL": server_env["REDIS_URL"], "SECRET_KEY": server_env["SECRET_KEY"],
            "DATA_KEY_FILE": server_env["DATA_KEY_FILE"], "AUDIT_KEY_FILE": server_env["AUDIT_KEY_FILE"],
            "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
            "WECHATPAY_CERT_DIR": str(tmp_path / "certs"), "RATE_LIMIT_PER_MINUTE": "0",
            "RECONCILE_INTERVAL_SECONDS": "60", **ROOMY_ADMISSION}


@pytest.fixture
def services():
    """start(env, name) -> ServiceProcess; every one still running is stopped after the test."""
    started = []

    def start(env, name="audit"):
        proc = ServiceProcess(env, name=name)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.stop()


@pytest.fixture
def client(sandbox):
    """api(proc) -> the test client bound to that service process and the sandbox."""
    return lambda proc: Api(proc.url, sandbox)


async def verdict(api, token) -> dict:
    """GET /api/v1/admin/audit/verify as an operator."""
    status, body, _ = await api.call("GET", VERIFY, token=token)
    assert status == 200, body
    return body


def verify_cli(env, **extra) -> tuple[int, dict]:
    """`python manage.py verify-audit` with the service's environment: (exit code, the object it printed)."""
    run = subprocess.run([sys.executable, "manage.py", "verify-audit"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, **env, **extra})
    assert run.returncode in (0, 1), f"verify-audit exited {run.returncode}: {run.stdout}{run.stderr}"
    return run.returncode, json.loads(run.stdout)


async def rows(sql, params=()):
    """Every row of a query, as dicts."""
    async def fetch(db, cursor):
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in await cursor.fetchall()]

    return await database.aio_execute_sql(sql, params, fetch_results=fetch)


async def execute(sql, params=()) -> int:
    """Run a statement as someone with write access to the database would; rows changed."""
    async def count(db, cursor):
        return cursor.rowcount

    return await database.aio_execute_sql(sql, params, fetch_results=count)
