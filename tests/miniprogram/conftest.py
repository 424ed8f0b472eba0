"""The mini-program's tests: jest + miniprogram-simulate (npm, pinned by tests/miniprogram/package-lock.json)."""
from __future__ import annotations

import pytest

from tests.miniprogram.jest_run import ensure_packages


@pytest.fixture(scope="session")
def jest_dir():
    """tests/miniprogram with its locked npm packages installed (scripts/bootstrap.sh does the same for `make test`)."""
    return ensure_packages()
