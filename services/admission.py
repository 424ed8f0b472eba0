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

TIMEOUT_FACTOR = 4  # a wait is cut off at this many times the wait a request may expect
LATE_MIN, LATE_MAX = 0.5, 1000.0  # bounds of the lateness a lane learns
LATE_HALF_LIFE = 2.0  # seconds
OPERATOR_WAIT_SECONDS = 5.0  # the longest wait (an operator's login: a tenth of a second of argon2, two at a time)
NOTIFY_QUEUE = 512  # WeChat Pay may deliver a burst (redeliveries after an outage); they wait rather than fail
NOTIFY_WAIT_SECONDS = 3.0  # the longest wait: WeChat Pay gives up on an answer after 5 s and delivers again later
BUSY_MESSAGE = "服务繁忙，请稍后重试"
OUTCOMES = ("admitted", "queued", "shed_full", "shed_timeout")


class Shed(errors.ServiceError):
    """503 SERVICE_UNAVAILABLE: the budget had no slot and no quick wait to offer (or the wait ran out)."""

    def __init__(self, retry_after: int):
        super().__init__(503, "SERVICE_UNAVAILABLE", BUSY_MESSAGE, retry_after=retry_after)


class Budget:
    """`limit` requests at once; more wait, first come first served, while the wait they can expect is short.

    A request that finds no free slot waits only if fewer than `queue` would be served before it and the wait it
    can expect (those, times how long a slot is held lately, shared among the `limit` slots, times how much longer
    than that its lane's waits have turned out lately) is at most `wait_seconds`; otherwise it is turned away at once. So under an overload the excess gets its answer in
    microseconds rather than after a wait. A wait that still lasts `timeout_seconds` (slots held far longer than
    lately) is turned away then.

    Requests that continue something under way (`ahead`: a payment for an order just made) wait in a lane of their
    own, served first: a rush spends the slots on finishing its flows rather than on starting more of them.
    """

    HOLD_SMOOTHING = 0.1  # weight of the latest slot's hold time in the running mean

    def __init__(self, name: str, limit: int, queue: int, wait_seconds: float, timeout_seconds: float,
                 retry_after: int):
        self.name = name
        self.limit = limit
        self.queue = queue
        self.wait_seconds = wait_seconds
        self.timeout_seconds = timeout_seconds
        self.retry_after = retry_after
        self.in_use = 0
        self.hold_seconds = 0.0  # running mean of how long a slot is held (0 until one is given back)
        self._late = {False: (1.0, 0.0), True: (1.0, 0.0)}  # per lane: (actual waits ÷ predicted ones, when)
        self._ahead: deque = deque()  # waiters served first
        self._waiters: deque = deque()
        self._counters = {outcome: metrics.ADMISSION.labels(name, outcome) for outcome in OUTCOMES}

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._ahead) + len(self._waiters)

    async def enter(self, ahead: bool = False) -> float:
        """Take a slot, waiting for one if that is expected to be quick; Shed otherwise. Returns the instant the
        slot was taken, for leave()."""
        if self.in_use < self.limit and not self._ahead and not self._waiters:
            self.in_use += 1
            self._counters["admitted"].inc()
            return time.monotonic()
        lane = self._ahead if ahead else self._waiters
        before = len(self._ahead) + (0 if ahead else len(self._waiters))  # those served before this one
        predicted = (before + 1) * self.hold_seconds / self.limit
        if before >= self.queue or predicted * self._lateness(ahead) > self.wait_seconds:
            self._counters["shed_full"].inc()
            raise Shed(self.retry_after)
        started = time.monotonic()
        try:
            await self._wait(lane)
        except Shed:
            self._learn(ahead, predicted, time.monotonic() - started, cut_off=True)
            raise
        self._learn(ahead, predicted, time.monotonic() - started, cut_off=False)
        self._counters["queued"].inc()
        return time.monotonic()

    def _lateness(self, ahead) -> float:
        """How much longer than predicted this lane's waits turn out lately (a later `ahead` request goes before a
        waiting one; a slot is held longer than lately): the predictions are scaled by it. It fades back to 1 with
        a half-life of LATE_HALF_LIFE seconds, so that a lane that stopped letting requests wait tries again."""
        now = time.monotonic()
        late, at = self._late[ahead]
        late = 1.0 + (late - 1.0) * 0.5 ** ((now - at) / LATE_HALF_LIFE)
        self._late[ahead] = (late, now)
        return late

    def _learn(self, ahead, predicted, waited, cut_off):
        """A wait ended: an ordinary one moves the lane's lateness a step towards what it was; one cut off sets it
        at once to at least what it was (the next ones are turned away rather than kept as long)."""
        if predicted <= 0:
            return
        ratio = min(LATE_MAX, max(LATE_MIN, waited / predicted))
        late = self._lateness(ahead)
        late = max(late, ratio) if cut_off else late + self.HOLD_SMOOTHING * (ratio - late)
        self._late[ahead] = (late, time.monotonic())

    async def _wait(self, lane):
        """Wait in `lane` until a slot is handed over; Shed when `timeout_seconds` pass first.

        Cancelled, the place in the queue is given up, and a slot handed over just before is passed on: none is
        ever lost.
        """
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        lane.append(waiter)
        timer = loop.call_later(self.timeout_seconds, self._time_out, lane, waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._pass_on()  # the slot was ours already
            else:
                self._forget(lane, waiter)
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
        """The slot goes to the first request still waiting (the `ahead` lane first), else back to the budget."""
        for lane in (self._ahead, self._waiters):
            while lane:
                waiter = lane.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # in_use stays: the slot changes hands
                    return
        self.in_use -= 1

    def _time_out(self, lane, waiter):
        if not waiter.done():
            self._forget(lane, waiter)
            waiter.set_exception(Shed(self.retry_after))

    @staticmethod
    def _forget(lane, waiter):
        try:
            lane.remove(waiter)
        except ValueError:
            pass


class Admission:
    """The budgets of one worker, by name."""

    def __init__(self, settings):
        retry = settings.admission_retry_after_seconds
        queue, wait = settings.admission_queue, settings.admission_wait_seconds
        self.budgets = {
            "parents": Budget("parents", settings.admission_limit, queue, wait, TIMEOUT_FACTOR * wait, retry),
            # As many as the password threads admit (services/accounts/passwords.py), turned away before the
            # rate limit is counted.
            "operators": Budget("operators", passwords.THREADS, passwords.ADMITTED - passwords.THREADS,
                                max(wait, OPERATOR_WAIT_SECONDS / 2), max(TIMEOUT_FACTOR * wait, OPERATOR_WAIT_SECONDS),
                                retry),
            # Never less room than the parents get (a deployment that raises theirs raises this).
            "notifications": Budget("notifications", settings.admission_notify_limit, max(queue, NOTIFY_QUEUE),
                                    max(wait, NOTIFY_WAIT_SECONDS / 2),
                                    max(TIMEOUT_FACTOR * wait, NOTIFY_WAIT_SECONDS), retry),
        }

    def __getitem__(self, name) -> Budget:
        return self.budgets[name]
