"""Fixtures: the test database on the project's MariaDB, Redis, the sandbox process, and the app under test."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

import settings as settings_module
from tests.harness import ROOT, VAR, SandboxProcess, read_env_file

pytest_plugins = ["tests.api"]


def _dev_env():
    # Idempotent: reuses the servers that run, starts them when they do not.
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "servers.sh"), "start"], check=True,
                   stdout=subprocess.DEVNULL)
    return read_env_file(os.path.join(VAR, "dev.env"))


@pytest.fixture(scope="session")
def server_env():
    """DATABASE_URL / REDIS_URL / SECRET_KEY of the test database and Redis db (never the dev data)."""
    dev = _dev_env()
    return {"DATABASE_URL": dev["TEST_DATABASE_URL"], "REDIS_URL": dev["TEST_REDIS_URL"],
            "SECRET_KEY": "test-secret-key-0123456789abcdef"}


@pytest.fixture(scope="session")
def fresh_schema(server_env):
    """Drop and recreate the test database's tables once per run."""
    subprocess.run([sys.executable, "-c", (
        "import asyncio, os\n"
        "from models import database, open_database, close_database, ALL_TABLES, SchemaMigration\n"
        "from models.migrations import migrate\n"
        "from settings import _database\n"
        "async def go():\n"
        "    await open_database(_database(os.environ), pool_max=2)\n"
        "    await database.aio_execute_sql('SET FOREIGN_KEY_CHECKS=0')\n"
        "    await database.aio_drop_tables(ALL_TABLES + [SchemaMigration], safe=True)\n"
        "    await migrate(log=lambda m: None)\n"
        "    await close_database()\n"
        "asyncio.run(go())\n")], cwd=ROOT, check=True, env={**os.environ, **server_env})
    return True


@pytest.fixture(scope="session")
def sandbox():
    """The WeChat Pay / open API sandbox, with fast notification retries."""
    proc = SandboxProcess(os.path.join(VAR, "test", "sandbox"), time_scale=0.01)
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def _reset_sandbox(request):
    """Each test starts with no faults or notification rules left by another."""
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").control("POST", "/sandbox/reset")


@pytest.fixture
def overrides():
    """Per-test settings; a test module or test overrides this fixture."""
    return {}


@pytest.fixture
def service_env(server_env, sandbox, http_port, overrides, fresh_schema, tmp_path):
    """The environment the service under test starts with."""
    env = {**server_env, **{k: v for k, v in sandbox.env.items() if k.startswith("WECHAT")},
           "HOST": "127.0.0.1", "PORT": str(http_port), "WECHATPAY_CERT_DIR": str(tmp_path / "certs"),
           "RATE_LIMIT_PER_MINUTE": "0"}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


@pytest.fixture
def settings(service_env):
    """Validated settings of the service under test."""
    return settings_module.load(service_env)


@pytest.fixture
def ctx(io_loop, settings):
    """The opened application context (DB pool, Redis, WeChat Pay client, background job)."""
    from server import close_context, open_context

    context = io_loop.run_sync(lambda: open_context(settings))
    yield context
    io_loop.run_sync(lambda: close_context(context))


@pytest.fixture
def app(ctx):
    """The Tornado application pytest-tornado serves on http_port."""
    from server import make_app

    return make_app(ctx)


@pytest.fixture
def db(io_loop, settings):
    """Only the database pool, for tests whose services run as separate processes."""
    from models import close_database, open_database

    io_loop.run_sync(lambda: open_database(settings.database, pool_max=5))
    yield
    io_loop.run_sync(close_database)
