"""Where the mini-program's jest suite lives, its locked npm packages, and how jest is started."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

from tests.harness import ROOT

MINIPROGRAM_TESTS = os.path.join(ROOT, "tests", "miniprogram")


def _lock_digest():
    # The same stamp as scripts/bootstrap.sh writes: sha256 of package.json then package-lock.json, 16 hex digits.
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(MINIPROGRAM_TESTS, name), "rb") as fh:
            digest.update(fh.read())
    return digest.hexdigest()[:16]


def ensure_packages():
    """npm ci from the lock when node_modules is missing or was installed from another lock; returns the folder."""
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
