"""Fixtures: the test database on the project's MariaDB, Redis, the sandbox process, and the app under test."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

# First of all: telemetry.metrics chooses prometheus_client's multiprocess directory, which must happen before any
# test module imports prometheus_client, or the in-process service's /metrics would read none of its own metrics
# (whichever module pytest collected first decided it).
import telemetry.metrics  # noqa: F401
import settings as settings_module
from tests.harness import ROOMY_ADMISSION, ROOT, VAR, RedisServer, SandboxProcess, admin_sql, read_env_file

pytest_plugins = ["tests.api"]


def _dev_env():
    # Idempotent: reuses the servers that run, starts them when they do not.
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "servers.sh"), "start"], check=True,
                   stdout=subprocess.DEVNULL)
    return read_env_file(os.path.join(VAR, "dev.env"))


@pytest.fixture(scope="session")
def server_env():
    """DATABASE_URL / REDIS_URL / SECRET_KEY / DATA_KEY_FILE and AUDIT_KEY_FILE (the dev keys) for this run: a
    database of its own (never the dev data), created empty for the run and dropped after it, so parallel runs
    cannot disturb each other; the audit trail's checkpoints in a directory of the run's own too."""
    dev = _dev_env()
    base = settings_module.parse_database_url({"DATABASE_URL": dev["TEST_DATABASE_URL"]})
    name = f"gym_test_{os.getpid()}"
    admin_sql(base, [f"DROP DATABASE IF EXISTS `{name}`",
                      f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"])
    url = dev["TEST_DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    redis = RedisServer(f"session-{os.getpid()}")  # a Redis of the run's own, for the same reason
    checkpoints = os.path.join(VAR, "test", f"audit-checkpoints-{os.getpid()}")
    yield {"DATABASE_URL": url, "REDIS_URL": redis.url, "SECRET_KEY": "test-secret-key-0123456789abcdef",
           "DATA_KEY_FILE": dev["DATA_KEY_FILE"], "AUDIT_KEY_FILE": dev["AUDIT_KEY_FILE"],
           "AUDIT_CHECKPOINT_DIR": checkpoints}
    redis.stop()
    shutil.rmtree(checkpoints, ignore_errors=True)
    admin_sql(base, [f"DROP DATABASE IF EXISTS `{name}`"])


@pytest.fixture(scope="session")
def fresh_schema(server_env):
    """Create the run's tables with the project's own migrations."""
    subprocess.run([sys.executable, "manage.py", "migrate"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **server_env})
    return True


@pytest.fixture(scope="session")
def sandbox():
    """The WeChat Pay / open API sandbox, with fast notification retries."""
    state_dir = os.path.join(VAR, "test", f"sandbox-{os.getpid()}")  # one per pytest-xdist worker
    proc = SandboxProcess(state_dir, time_scale=0.01, extra_args=("--clear-state",))
    yield proc
    proc.stop()
    shutil.rmtree(state_dir, ignore_errors=True)


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
def service_env(request, server_env, sandbox, http_port, overrides, fresh_schema, tmp_path):
    """The environment the service under test starts with: the module's `overrides`, then what the test names with
    @pytest.mark.settings(...)."""
    env = {**server_env, **{k: v for k, v in sandbox.env.items() if k.startswith("WECHAT")},
           "HOST": "127.0.0.1", "PORT": str(http_port), "WECHATPAY_CERT_DIR": str(tmp_path / "certs"),
           "RATE_LIMIT_PER_MINUTE": "0", **ROOMY_ADMISSION}
    env.update(overrides)
    marker = request.node.get_closest_marker("settings")
    env.update(marker.kwargs if marker else {})
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
def http_server(request, io_loop, _unused_port, app, settings):
    """The app served as production serves it (server.make_http_server: the body limit included)."""
    from server import make_http_server

    server = make_http_server(app, settings)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=10)


@pytest.fixture
def db(io_loop, settings):
    """Only the database pool, for tests whose services run as separate processes."""
    from models import close_database, open_database

    io_loop.run_sync(lambda: open_database(settings.database, pool_max=5))
    yield
    io_loop.run_sync(close_database)
