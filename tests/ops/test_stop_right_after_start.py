"""A SIGTERM in the first moments of the service stops it gracefully, at once.

It did not: the push hub's subscription was connecting, the cancellation that stops it arrived as redis-py's
`asyncio.wait_for` got its answer, and Python 3.11's wait_for returned the answer instead of the cancellation
(CPython gh-86296). The subscription went on reading, its task never ended, and the stop waited for it until the
process was killed (systemd: TimeoutStopSec). services/tasks.py cancels again until the task has ended.
"""
from __future__ import annotations

import asyncio
import subprocess

import pytest

from services.tasks import cancel_and_wait
from tests.harness import ServiceProcess


@pytest.mark.parametrize("attempt", range(3))
def test_a_sigterm_as_soon_as_it_answers_stops_it_within_seconds(service_env, attempt):
    env = {**service_env, "WORKERS": "1", "RUN_JOBS": "false"}
    env.pop("PORT")
    proc = ServiceProcess(env, name=f"stop-at-start-{attempt}")  # returns once /healthz answered
    proc.proc.terminate()
    try:
        assert proc.proc.wait(15) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running 15 s after SIGTERM; see {proc.log_path}") from None
    proc.log.close()
    with open(proc.log_path, encoding="utf-8") as f:
        log = f.read()
    assert f"worker {proc.proc.pid} stopped" in log  # the graceful path to its end, not a kill


async def _waiting_in_wait_for(inner):
    """A task like the subscription's: a wait_for, then more work (a read loop)."""
    async def task():
        await asyncio.wait_for(inner, 10)
        await asyncio.sleep(30)
    started = asyncio.get_running_loop().create_task(task())
    await asyncio.sleep(0)  # it is now waiting in wait_for
    inner.set_result("answer")  # the answer arrives ...
    return started  # ... and the cancellation comes in the same turn of the loop


@pytest.mark.gen_test(timeout=20)
async def test_control_a_plain_cancel_is_lost_in_wait_for_and_cancel_and_wait_ends_the_task():
    loop = asyncio.get_running_loop()
    task = await _waiting_in_wait_for(loop.create_future())
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    assert not done, "the control: Python 3.11's wait_for dropped the cancellation (gh-86296)"
    assert await cancel_and_wait(task, timeout=5.0)
    assert task.cancelled()

    task = await _waiting_in_wait_for(loop.create_future())
    assert await cancel_and_wait(task, timeout=5.0)  # the same moment, through the helper
    assert task.cancelled()
