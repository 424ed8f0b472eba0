"""Stopping a background task: cancel it and wait until it has ended, cancelling again when a cancellation was lost.

On Python 3.11 a cancellation can be lost: `asyncio.wait_for` returns its inner call's result instead of raising
CancelledError when the cancellation arrives in the same turn of the loop as the inner call's answer (CPython
gh-86296, fixed in 3.12 by rewriting wait_for over asyncio.timeout). redis-py's connect and aiomysql's reads use
wait_for, so a `task.cancel(); await task` at the wrong moment waited forever: a SIGTERM in the first moments of the
service, while the push hub's subscription was connecting, hung its graceful stop until systemd's kill
(tests/ops/test_stop_right_after_start.py). The task is cancelled again every RECANCEL_SECONDS while it runs, so a
lost cancellation costs that long, never the stop; a task that is only cleaning up (a finally's close) finishes
well within it.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("gym.tasks")

RECANCEL_SECONDS = 0.5


async def cancel_and_wait(task: asyncio.Task | None, timeout: float = 10.0, what: str = "a task") -> bool:
    """Cancel `task` and wait until it has ended (at most `timeout` seconds); True when it has.

    Its exception, if it ended with one, is retrieved and logged at debug (stopping must not fail)."""
    if task is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("%s did not end %.0f s after being cancelled", what, timeout)
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, remaining))
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s ended with %r while stopping", what, task.exception())
    return True
