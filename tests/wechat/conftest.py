"""Fixtures of the WeChat Pay key tests: a sandbox of each test's own (its keys change), the fault tests' database
and service processes."""
from __future__ import annotations

import pytest

from tests.faults.conftest import fault_db, fault_db_url, services  # noqa: F401 - fixtures shared with tests/faults
from tests.harness import private_sandbox


@pytest.fixture
def keys_sandbox(request):
    """A sandbox with keys of its own, generated afresh for this test (they change during it), 1000x faster retries
    (a notification refused until the operator's restart is redelivered within about a second of it, where at 100x
    the next try after a restart of over 2.4 s came only 6 s later; the whole schedule still lasts 87 s)."""
    yield from private_sandbox(f"keys-sandbox-{request.node.name[:40]}", time_scale=0.001)
