"""Fixtures of the sandbox's own tests: one sandbox process, a notification receiver, wechatpayv3 clients."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.harness import VAR, SandboxProcess
from tests.sandbox.wx import Receiver


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox under test (overrides the project-wide one: its own state dir, emptied), 100x faster delays."""
    state_dir = os.path.join(VAR, "test", f"sandbox-selftest-{os.getpid()}")  # one per pytest-xdist worker
    proc = SandboxProcess(state_dir, time_scale=0.01, extra_args=("--clear-state",))
    yield proc
    proc.stop()
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_sandbox(sandbox):
    """Every test starts without faults, notification rules or changed settings."""
    sandbox.control("POST", "/sandbox/reset")


@pytest.fixture(scope="session")
def _receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def receiver(_receiver):
    """A local merchant endpoint recording every notification; scripted answers per path."""
    _receiver.clear()
    return _receiver
