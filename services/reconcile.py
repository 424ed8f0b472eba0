"""The background job: find payments whose notification is late (掉单), and expire holds and orders.

Runs in every server process; a job lease lets one process work at a time, and each order is worked on under its
own lease, so no order is ever handled twice at once. Nothing that has a WeChat Pay order is released before
WeChat Pay confirms it closed; a paid answer wins.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging

from models import PaymentOrder, SeatReservation, utcnow

from . import audit
from .leases import release_job, try_claim_job, try_claim_order, release_order
from .payments import close_and_release, settle_from_wechat
from .wechatpay import PaymentGatewayError

log = logging.getLogger("gym.reconcile")

BATCH = 100
JOB = "reconcile"


async def _lapsed_unstarted(now):
    return list(await PaymentOrder.select(PaymentOrder.id).join(
        SeatReservation, on=(SeatReservation.order == PaymentOrder.id)).where(
        (PaymentOrder.status == "pending") & (SeatReservation.payment_started == False)  # noqa: E712
        & ((SeatReservation.expires_at <= now) | (PaymentOrder.expires_at <= now))).limit(BATCH).aio_execute())


async def _started_to_check(now, overdue):
    """Pending orders with a WeChat Pay order: past their end, or not heard of for `overdue` seconds."""
    stale = now - dt.timedelta(seconds=overdue)
    return list(await PaymentOrder.select(PaymentOrder.id).where(
        (PaymentOrder.status == "pending") & PaymentOrder.trade_type.is_null(False)
        & ((PaymentOrder.expires_at <= now)
           | ((PaymentOrder.payment_started_at <= stale)
              & (PaymentOrder.last_checked_at.is_null() | (PaymentOrder.last_checked_at <= stale)))))
        .order_by(PaymentOrder.expires_at).limit(BATCH).aio_execute())


async def check_order(ctx, order_pk):
    """Query WeChat Pay about one pending order and act on the answer (call under the order's lease)."""
    now = utcnow()
    order = await PaymentOrder.select().where(PaymentOrder.id == order_pk).aio_get()
    if order.status != "pending":
        return
    if not order.trade_type:
        if order.expires_at <= now or await _hold_lapsed(order, now):
            await close_and_release(ctx, order_pk, "expired", "seat_hold_lapsed" if order.expires_at > now
                                    else "order_expired", audit.SYSTEM, "order_expired")
        return
    state = await settle_from_wechat(ctx, order_pk, audit.SYSTEM, source="query")
    await PaymentOrder.update(last_checked_at=utcnow()).where(PaymentOrder.id == order_pk).aio_execute()
    if state in ("SUCCESS", "REFUND"):
        return
    if state == "PAYERROR":
        await close_and_release(ctx, order_pk, "failed", "payment_error", audit.SYSTEM, "payment_failed")
    elif state in ("CLOSED", "REVOKED") or order.expires_at <= now:
        await close_and_release(ctx, order_pk, "expired", "order_expired", audit.SYSTEM, "order_expired")


async def _hold_lapsed(order, now):
    reservation = await SeatReservation.select().where(SeatReservation.order == order.id).aio_first()
    return reservation is not None and not reservation.payment_started and reservation.expires_at <= now


async def run_once(ctx) -> int:
    """One pass over the orders that need attention; returns how many were worked on."""
    settings = ctx.settings
    now = utcnow()
    overdue = max(settings.reconcile_interval_seconds, 1.0)
    candidates = [o.id for o in await _lapsed_unstarted(now)] + [o.id for o in await _started_to_check(now, overdue)]
    worked = 0
    for order_pk in dict.fromkeys(candidates):
        if not await try_claim_order(order_pk, ctx.instance_id, seconds=60):
            continue  # a request or another process is on it
        try:
            await check_order(ctx, order_pk)
            worked += 1
        except PaymentGatewayError as e:
            log.warning("reconcile: WeChat Pay unavailable for order %s: %s", order_pk, e)
        except Exception:  # noqa: BLE001 - one bad order must not stop the others
            log.exception("reconcile: order %s failed", order_pk)
        finally:
            await release_order(order_pk, ctx.instance_id)
    return worked


class Reconciler:
    """Runs run_once every RECONCILE_INTERVAL_SECONDS while this process holds the job lease."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.interval = ctx.settings.reconcile_interval_seconds
        self._task = None
        self._stopping = asyncio.Event()

    def start(self):
        """Start the loop in the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self):
        """Stop after the current pass."""
        self._stopping.set()
        if self._task:
            await self._task
            try:
                await release_job(JOB, self.ctx.instance_id)
            except Exception:  # noqa: BLE001
                pass

    async def _loop(self):
        while not self._stopping.is_set():
            try:
                if await try_claim_job(JOB, self.ctx.instance_id, seconds=max(self.interval * 3, 30)):
                    await run_once(self.ctx)
            except Exception:  # noqa: BLE001 - the database may be down; try again next interval
                log.exception("reconcile pass failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass
