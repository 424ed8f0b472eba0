"""The one shape of a background job: start, stop, an interval, and a kick to run now."""
from __future__ import annotations

import asyncio
import logging

from models import DATABASE_UNAVAILABLE

from .tasks import cancel_and_wait

log = logging.getLogger("gym.worker")
_UNAVAILABLE = (*DATABASE_UNAVAILABLE, asyncio.TimeoutError)  # the database or a network peer is away


class BackgroundWorker:
    """Calls `run_once()` every `interval` seconds (sooner when kicked) until stopped; never dies of an error."""

    name = "worker"

    def __init__(self, interval: float):
        self.interval = interval
        self._wake = asyncio.Event()
        self._stopping = False
        self._task = None

    async def run_once(self):
        """One round of work (subclasses)."""
        raise NotImplementedError

    async def on_stop(self):
        """Called once after the loop ended (subclasses give back what they hold)."""

    def next_wait(self) -> float:
        """Seconds until the next round (subclasses may vary it)."""
        return self.interval

    def start(self):
        """Start the loop in the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    def kick(self):
        """Run a round now instead of waiting for the interval."""
        self._wake.set()

    async def stop(self, timeout: float = 10.0):
        """Stop after the current round (cancelled if it takes longer than `timeout`)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except asyncio.TimeoutError:
                log.warning("%s: the round did not end in %.0f s; cancelled", self.name, timeout)
                await cancel_and_wait(self._task, what=self.name)
            self._task = None
        try:
            await self.on_stop()
        except Exception:  # noqa: BLE001 - stopping must not fail
            log.exception("%s: stopping failed", self.name)

    async def _loop(self):
        while not self._stopping:
            try:
                await self.run_once()
            except _UNAVAILABLE as e:  # the database or a network peer is away: one line, not a traceback
                log.warning("%s: round failed, dependency unavailable: %s", self.name, e)
            except Exception:  # noqa: BLE001 - never dies; try again next round
                log.exception("%s: round failed", self.name)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.next_wait())
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
