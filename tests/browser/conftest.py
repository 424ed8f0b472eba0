"""Browser tests of the dev-mode demo: the service in dev mode, Debian's Chromium, playwright-core from npm."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from tests.harness import ROOT, VAR
from tests.browser.node import CHROMIUM, run_script

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
SHOTS = os.path.join(VAR, "test")


@pytest.fixture
def overrides():
    """The demo routes exist only in dev mode."""
    return {"DEV_MODE": "1"}


@pytest.fixture(scope="session")
def node_packages():
    """The locked npm packages (playwright-core, a CJK web font), installed when missing or when the lock changed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: `make test` installs it (WITH_BROWSER=1 bash scripts/bootstrap.sh, as root)")
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(BROWSER_DIR, name), "rb") as fh:
            digest.update(fh.read())
    stamp = os.path.join(BROWSER_DIR, "node_modules", ".lock-hash")
    current = open(stamp).read().strip() if os.path.exists(stamp) else None
    if current != digest.hexdigest():
        shutil.rmtree(os.path.join(BROWSER_DIR, "node_modules"), ignore_errors=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=BROWSER_DIR, check=True, timeout=600)
        with open(stamp, "w") as fh:
            fh.write(digest.hexdigest())
    return BROWSER_DIR


@pytest.fixture
def checkout(node_packages, base_url, sandbox):
    """Runs checkout.js for one scenario against the service under test; returns what the page showed."""
    os.makedirs(SHOTS, exist_ok=True)

    async def run(scenario, schedule_id, screenshot):
        return await run_script(node_packages, "checkout.js", scenario, base_url, schedule_id,
                                os.path.join(SHOTS, screenshot), sandbox.url, what=f"checkout.js {scenario}")
    return run
