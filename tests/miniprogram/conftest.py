"""The mini-program's tests: jest + miniprogram-simulate (npm, pinned by tests/miniprogram/package-lock.json)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from tests.harness import ROOT

MINIPROGRAM_TESTS = os.path.join(ROOT, "tests", "miniprogram")


def _lock_digest():
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(MINIPROGRAM_TESTS, name), "rb") as fh:
            digest.update(fh.read())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def jest_dir():
    """tests/miniprogram with its locked npm packages, installed (npm ci) when missing or when the lock changed;
    scripts/bootstrap.sh does the same for `make test` and writes the same stamp."""
    stamp = os.path.join(MINIPROGRAM_TESTS, "node_modules", ".lock-hash")
    current = open(stamp).read().strip() if os.path.exists(stamp) else None
    if current != _lock_digest():
        shutil.rmtree(os.path.join(MINIPROGRAM_TESTS, "node_modules"), ignore_errors=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=MINIPROGRAM_TESTS, check=True,
                       timeout=600)
        with open(stamp, "w") as fh:
            fh.write(_lock_digest())
    return MINIPROGRAM_TESTS


def jest_command(*args):
    """jest from the locked packages (not npx, which could fetch another), on CI's terms."""
    return ["node", os.path.join("node_modules", "jest", "bin", "jest.js"), "--ci", *args]
