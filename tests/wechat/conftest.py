"""Fixtures of the WeChat Pay key tests: a sandbox of each test's own (its keys change), the fault tests' database
and service processes."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.faults.conftest import fault_db, fault_db_url, services  # noqa: F401 - fixtures shared with tests/faults
from tests.harness import VAR, SandboxProcess


@pytest.fixture
def keys_sandbox(request):
    """A sandbox with keys of its own, generated afresh for this test (they change during it), 100x faster retries."""
    state_dir = os.path.join(VAR, "test", f"keys-sandbox-{os.getpid()}-{request.node.name[:40]}")
    shutil.rmtree(state_dir, ignore_errors=True)
    proc = SandboxProcess(state_dir, time_scale=0.01)
    yield proc
    proc.stop()
    shutil.rmtree(state_dir, ignore_errors=True)
