"""The background job: find payments whose notification is late (掉单), expire holds and orders, and settle the
waitlists whose offers lapsed or that have a seat come free.

Runs in every server process; a job lease lets one process work at a time, and each order is worked on under its
own lease, so no order is ever handled twice at once. Nothing that has a WeChat Pay order is released before
WeChat Pay confirms it closed; a paid answer wins. An order WeChat Pay cannot be asked about backs off, and the
least recently checked orders come first, so a stuck order never starves the others.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from peewee import fn

from models import JobLease, PaymentOrder, SeatReservation, utcnow
from telemetry import metrics
from telemetry.context import bind_order, new_job_context

from .. import audit
from ..leases import LeaseLost, ensure_job_row, job_lease, order_lease, refund_lease
from ..lifecycle.seats import R, hold_lapsed, hold_lapsed_where
from ..lifecycle.statuses import EXPIRED, FAILED, PENDING, TRADE_ENDED, TRADE_FAILED, TRADE_PAID
from ..payments.checkout import close_and_release, settle_from_wechat
from ..refunds.refunds import check_refund, refund_checked, refunds_to_check
from ..retry import backoff_seconds
from ..waitlist.sweep import sweep as waitlist_sweep
from ..wechat.pay_gateway import PaymentGatewayError
from ..worker import BackgroundWorker

log = logging.getLogger("gym.reconcile")

JOB = "reconcile"
CONCURRENCY = 8


def _due(now):
    return PaymentOrder.next_check_at.is_null() | (PaymentOrder.next_check_at <= now)


async def _lapsed_unstarted(now, batch):
    """Pending orders without a WeChat Pay order whose hold or order has run out: expired without any call."""
    return [o.id for o in await PaymentOrder.select(PaymentOrder.id).join(
        R, on=(R.order == PaymentOrder.id)).where(
        (PaymentOrder.status == PENDING) & PaymentOrder.trade_type.is_null() & _due(now)
        & (hold_lapsed_where(now) | (PaymentOrder.expires_at <= now)))
        .order_by(R.expires_at).limit(batch).aio_execute()]


async def _started_to_check(now, overdue, batch):
    """Pending orders with a WeChat Pay order, past their end or not heard of for `overdue` seconds, least
    recently checked first."""
    stale = now - dt.timedelta(seconds=overdue)
    return [o.id for o in await PaymentOrder.select(PaymentOrder.id).where(
        (PaymentOrder.status == PENDING) & PaymentOrder.trade_type.is_null(False) & _due(now)
        & ((PaymentOrder.expires_at <= now) | (PaymentOrder.payment_started_at <= stale)))
        .order_by(fn.COALESCE(PaymentOrder.next_check_at, PaymentOrder.payment_started_at))
        .limit(batch).aio_execute()]


async def check_order(ctx, order_pk, lease):
    """Query WeChat Pay about one pending order and act on the answer (call under the order's lease)."""
    now = utcnow()
    order = await PaymentOrder.select().where(PaymentOrder.id == order_pk).aio_get()
    bind_order(order.order_id)
    if order.status != PENDING:
        return
    if not order.trade_type:
        reservation = await SeatReservation.select().where(SeatReservation.order == order.id).aio_first()
        if order.expires_at <= now or hold_lapsed(reservation, now):
            await close_and_release(ctx, order_pk, EXPIRED, "seat_hold_lapsed" if order.expires_at > now
                                    else "order_expired", audit.SYSTEM, "order_expired", lease)
        return
    state = await settle_from_wechat(ctx, order_pk, audit.SYSTEM, source="query")
    if state in TRADE_PAID:
        return
    if state == TRADE_FAILED:
        await close_and_release(ctx, order_pk, FAILED, "payment_error", audit.SYSTEM, "payment_failed", lease)
    elif state in TRADE_ENDED or order.expires_at <= now:
        await close_and_release(ctx, order_pk, EXPIRED, "order_expired", audit.SYSTEM, "order_expired", lease)


async def _checked(order_pk, interval, failed: bool):
    """Note the check; a failed one backs off (services.retry)."""
    order = await PaymentOrder.select(PaymentOrder.check_failures).where(PaymentOrder.id == order_pk).aio_first()
    failures = (order.check_failures + 1) if (failed and order) else 0
    delay = backoff_seconds(interval, failures)
    now = utcnow()
    await PaymentOrder.update(last_checked_at=now, check_failures=failures,
                              next_check_at=now + dt.timedelta(seconds=delay)).where(
        PaymentOrder.id == order_pk).aio_execute()


async def _work_on(ctx, what, pk, lease, check, checked, gate) -> int:
    """Check one order or refund under its own lease (skipped if someone is on it), then note the check."""
    async with gate:
        if not await lease.try_claim():
            return 0  # a request or another process is on it
        lease.start_heartbeat()
        failed = False
        try:
            await check(ctx, pk, lease)
        except PaymentGatewayError as e:
            failed = True
            log.warning("reconcile: WeChat Pay unavailable for %s %s: %s", what, pk, e)
        except LeaseLost:
            log.warning("reconcile: lost the lease on %s %s; it is retried next pass", what, pk)
        except Exception:  # noqa: BLE001 - one bad order or refund must not stop the others
            failed = True
            log.exception("reconcile: %s %s failed", what, pk)
        finally:
            try:
                await checked(pk, ctx.settings.reconcile_interval_seconds, failed)
            finally:
                await lease.end()
        return 1


async def run_pass(ctx) -> int:
    """One pass over the orders and refunds that need attention; returns how many were worked on."""
    settings = ctx.settings
    now = utcnow()
    overdue = max(settings.reconcile_interval_seconds, 1.0)
    batch = settings.reconcile_batch
    candidates = await _lapsed_unstarted(now, batch) + await _started_to_check(now, overdue, batch)
    refunds = await refunds_to_check(now, overdue, batch)
    gate = asyncio.Semaphore(CONCURRENCY)
    work = [_work_on(ctx, "order", pk, order_lease(pk, seconds=15), check_order, _checked, gate)
            for pk in dict.fromkeys(candidates)]
    work += [_work_on(ctx, "refund", pk, refund_lease(pk, seconds=15), check_refund, refund_checked, gate)
             for pk in refunds]
    done = sum(await asyncio.gather(*work))
    return done + await waitlist_sweep(ctx, batch)  # after the expiries above freed their seats


class Reconciler(BackgroundWorker):
    """Runs run_pass every RECONCILE_INTERVAL_SECONDS while this process holds the job lease."""

    name = "reconcile"

    def __init__(self, ctx):
        super().__init__(ctx.settings.reconcile_interval_seconds)
        self.ctx = ctx
        # Renewed every round (and by a heartbeat during a pass); if its holder dies, another process takes over
        # within about two intervals, as the others try every half interval.
        self.lease = job_lease(JOB, seconds=max(self.interval * 1.5, 3.0))
        self.holding = False

    async def run_once(self):
        if not self.holding:
            await ensure_job_row(JOB)
            self.holding = await self.lease.try_claim()
        else:
            self.holding = await self.lease.renew()
        if not self.holding:
            return
        self.lease.start_heartbeat()
        new_job_context("reconcile")
        try:
            await run_pass(self.ctx)
            metrics.RECONCILE_LAST_SUCCESS.set(time.time())
            await JobLease.update(runs=JobLease.runs + 1).where(
                (JobLease.name == JOB) & (JobLease.owner == self.lease.token)).aio_execute()
        finally:
            await self.lease.stop_heartbeat()

    def next_wait(self) -> float:
        return self.interval if self.holding else self.interval / 2

    async def on_stop(self):
        if self.holding:
            await self.lease.release()
            self.holding = False
