"""Runs one of this folder's Playwright scripts (node) and returns the JSON it prints: the one runner every browser
test uses."""
from __future__ import annotations

import asyncio
import json
import os

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


async def run_script(cwd, script, *args, timeout=60, what=None):
    """`node script args...` in cwd with Debian's Chromium; its stdout parsed as JSON. An asyncio subprocess, so the
    io_loop serving an app under test keeps running meanwhile. A script that fails or overruns fails the test."""
    what = what or script
    proc = await asyncio.create_subprocess_exec(
        "node", script, *map(str, args), cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CHROMIUM_PATH": CHROMIUM})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{what} did not finish in {timeout} s") from None
    assert proc.returncode == 0, f"{what} failed:\n{err.decode(errors='replace')}"
    return json.loads(out)
