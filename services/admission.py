"""Admission control: each worker serves a bounded number of expensive requests at once, lets a few more wait a
bounded time for a slot, and turns the rest away at once with 503 SERVICE_UNAVAILABLE and Retry-After.

A rush beyond what one worker can serve then gets quick "try again" answers for its excess instead of slow answers
for everyone. The handlers take a slot before they read the token's user, count a rate limit or write anything,
so a request turned away leaves nothing behind; a request admitted is served to its end (its slot is given back
when its answer is finished, even when the client has gone).

Budgets are separate, so one kind of traffic never starves another: `parents` (order creation, prepay, the QR
code, login), `operators` (the operators' login: as many as the argon2 threads admit), `notifications` (WeChat
Pay's, with room for a storm and a wait well inside WeChat Pay's 5-second answer deadline). The WebSocket and the
health checks take no slot at all.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque

import errors
from telemetry import metrics

from .accounts import passwords

OPERATOR_WAIT_SECONDS = 5.0  # an operator's login is a tenth of a second or more of argon2, two at a time
NOTIFY_QUEUE = 512  # WeChat Pay may deliver a burst (redeliveries after an outage); they wait rather than fail
NOTIFY_WAIT_SECONDS = 3.0  # WeChat Pay gives up on an answer after 5 s and delivers again later
BUSY_MESSAGE = "服务繁忙，请稍后重试"
OUTCOMES = ("admitted", "queued", "shed_full", "shed_timeout")


class Shed(errors.ServiceError):
    """503 SERVICE_UNAVAILABLE: the budget had no slot and no quick wait to offer (or the wait ran out)."""

    def __init__(self, retry_after: int):
        super().__init__(503, "SERVICE_UNAVAILABLE", BUSY_MESSAGE, retry_after=retry_after)


class Budget:
    """`limit` requests at once; more wait, first come first served, while the wait they can expect is short.

    A request that finds no free slot waits only if fewer than `queue` wait already and the wait it can expect
    (those ahead of it, times how long a slot is held lately, shared among the `limit` slots) is at most half of
    `wait_seconds`; otherwise it is turned away at once. So under an overload the excess gets its answer in
    microseconds rather than after a wait, and what waits is nearly always served: a wait still longer than
    `wait_seconds` (slots held far longer than lately) is turned away then.
    """

    HOLD_SMOOTHING = 0.1  # weight of the latest slot's hold time in the running mean

    def __init__(self, name: str, limit: int, queue: int, wait_seconds: float, retry_after: int):
        self.name = name
        self.limit = limit
        self.queue = queue
        self.wait_seconds = wait_seconds
        self.retry_after = retry_after
        self.in_use = 0
        self.hold_seconds = 0.0  # running mean of how long a slot is held (0 until one is given back)
        self._waiters: deque = deque()
        self._counters = {outcome: metrics.ADMISSION.labels(name, outcome) for outcome in OUTCOMES}

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._waiters)

    async def enter(self) -> float:
        """Take a slot, waiting for one if that is expected to be quick; Shed otherwise. Returns the instant the
        slot was taken, for leave()."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            self._counters["admitted"].inc()
            return time.monotonic()
        expected = (len(self._waiters) + 1) * self.hold_seconds / self.limit
        if len(self._waiters) >= self.queue or expected > self.wait_seconds / 2:
            self._counters["shed_full"].inc()
            raise Shed(self.retry_after)
        await self._wait()
        self._counters["queued"].inc()
        return time.monotonic()

    async def _wait(self):
        """Wait until a slot is handed over; Shed when `wait_seconds` pass first.

        Cancelled, the place in the queue is given up, and a slot handed over just before is passed on: none is
        ever lost.
        """
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self.wait_seconds, self._time_out, waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._pass_on()  # the slot was ours already
            else:
                self._forget(waiter)
            raise
        except Shed:
            self._counters["shed_timeout"].inc()
            raise
        finally:
            timer.cancel()

    def leave(self, since: float):
        """Give back the slot taken at `since` (enter's answer)."""
        held = time.monotonic() - since
        self.hold_seconds += self.HOLD_SMOOTHING * (held - self.hold_seconds) if self.hold_seconds else held
        self._pass_on()

    def _pass_on(self):
        """The slot goes to the first request still waiting, else back to the budget."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # in_use stays: the slot changes hands
                return
        self.in_use -= 1

    def _time_out(self, waiter):
        if not waiter.done():
            self._forget(waiter)
            waiter.set_exception(Shed(self.retry_after))

    def _forget(self, waiter):
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass


class Admission:
    """The budgets of one worker, by name."""

    def __init__(self, settings):
        retry = settings.admission_retry_after_seconds
        queue, wait = settings.admission_queue, settings.admission_wait_seconds
        self.budgets = {
            "parents": Budget("parents", settings.admission_limit, queue, wait, retry),
            # As many as the password threads admit (services/accounts/passwords.py), turned away before the
            # rate limit is counted.
            "operators": Budget("operators", passwords.THREADS, passwords.ADMITTED - passwords.THREADS,
                                max(wait, OPERATOR_WAIT_SECONDS), retry),
            # Never less room than the parents get (a deployment that raises theirs raises this).
            "notifications": Budget("notifications", settings.admission_notify_limit, max(queue, NOTIFY_QUEUE),
                                    max(wait, NOTIFY_WAIT_SECONDS), retry),
        }

    def __getitem__(self, name) -> Budget:
        return self.budgets[name]


def budget_names():
    """The budgets' names, for the metrics' series."""
    return ("parents", "operators", "notifications")
