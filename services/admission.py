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
    """503 SERVICE_UNAVAILABLE: the budget had no slot and no room to wait (or the wait ran out)."""

    def __init__(self, retry_after: int):
        super().__init__(503, "SERVICE_UNAVAILABLE", BUSY_MESSAGE, retry_after=retry_after)


class Budget:
    """`limit` requests at once; up to `queue` more wait, first come first served, at most `wait_seconds`."""

    def __init__(self, name: str, limit: int, queue: int, wait_seconds: float, retry_after: int):
        self.name = name
        self.limit = limit
        self.queue = queue
        self.wait_seconds = wait_seconds
        self.retry_after = retry_after
        self.in_use = 0
        self._waiters: deque = deque()
        self._counters = {outcome: metrics.ADMISSION.labels(name, outcome) for outcome in OUTCOMES}

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._waiters)

    def try_enter(self) -> bool:
        """Take a slot at once if one is free and nobody waits before us."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            self._counters["admitted"].inc()
            return True
        return False

    def shed_if_full(self):
        """Raise Shed when no slot is free and the queue is full (call after try_enter failed)."""
        if len(self._waiters) >= self.queue:
            self._counters["shed_full"].inc()
            raise Shed(self.retry_after)

    async def wait(self):
        """Wait for a slot (try_enter failed, the queue has room); Shed when the wait runs out.

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
                self.leave()  # the slot was ours already: pass it on
            else:
                self._forget(waiter)
            raise
        except Shed:
            self._counters["shed_timeout"].inc()
            raise
        finally:
            timer.cancel()
        self._counters["queued"].inc()

    def leave(self):
        """Give a slot back: to the first request still waiting, else to the budget."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; in_use stays
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
