"""The daily bill job: after BILL_RECONCILE_HOUR (Asia/Shanghai), yesterday's bill is reconciled, and again every
BILL_RETRY_SECONDS (failures back off, up to 6 hours) until a run compared it (matched, discrepancies, no_trades).
A day the job tried keeps being tried after midnight too, within the last 90 days: a bill still not ready when its
day stops being yesterday is not left unreconciled because the calendar moved on. A day it never tried (the service
was down from that day's hour until the next day's) is caught up within CATCH_UP_DAYS before yesterday, from the
day of the first order on; an older gap is an operator's (the back office reconciles any of the last 90 days).

Every process runs the loop; the day's lease (services/bills/reconcile.py) lets one of them work on a day at a time,
and the day's row says when it is next due, so the day is reconciled once whatever the number of processes.
"""
from __future__ import annotations

import datetime as dt
import logging

from peewee import fn

from models import BillDay, BillRun, PaymentOrder, utcnow
from telemetry.context import new_job_context

from .. import audit
from ..bills.reconcile import DAYS_BACK, actor_name, ensure_day, reconcile
from ..bills.terms import COMPARED, FAILED, NOT_READY
from ..formats import beijing, beijing_today
from ..worker import BackgroundWorker

log = logging.getLogger("gym.bills")

MAX_POLL_SECONDS = 60.0
CATCH_UP_DAYS = 7  # a long weekend's outage and more; longer ones are noticed and mended by hand


def due_day(settings, now=None):
    """The day the job should reconcile now (yesterday, once the hour has come), or None."""
    now = now or utcnow()
    if beijing(now).hour < settings.bill_reconcile_hour:
        return None
    return beijing_today(now) - dt.timedelta(days=1)


async def days_left_over(now=None) -> list:
    """The days before yesterday, within the last 90, that the job tried and could not compare yet (not ready, or
    failed), oldest first."""
    today = beijing_today(now or utcnow())
    tried = BillRun.select(BillRun.id).where((BillRun.bill_date == BillDay.bill_date)
                                             & (BillRun.actor == actor_name(audit.SYSTEM, None)))
    rows = await BillDay.select(BillDay.bill_date).where(
        (BillDay.bill_date >= today - dt.timedelta(days=DAYS_BACK)) & (BillDay.bill_date < today - dt.timedelta(days=1))
        & BillDay.status.in_((NOT_READY, FAILED)) & fn.EXISTS(tried)).order_by(BillDay.bill_date).aio_execute()
    return [row.bill_date for row in rows]


async def days_never_tried(now=None) -> list:
    """The days of the CATCH_UP_DAYS before yesterday that have no bill day at all (nobody ever reconciled them),
    from the day of the first order on (before it there was nothing to reconcile), oldest first."""
    today = beijing_today(now or utcnow())
    first_order = await PaymentOrder.select(fn.MIN(PaymentOrder.created_at)).aio_scalar()
    if first_order is None:
        return []
    start = max(today - dt.timedelta(days=CATCH_UP_DAYS + 1), beijing(first_order).date())
    end = today - dt.timedelta(days=1)  # yesterday is due_day's
    if start >= end:
        return []
    known = {row.bill_date for row in await BillDay.select(BillDay.bill_date).where(
        (BillDay.bill_date >= start) & (BillDay.bill_date < end)).aio_execute()}
    return [start + dt.timedelta(days=n) for n in range((end - start).days)
            if start + dt.timedelta(days=n) not in known]


class BillJob(BackgroundWorker):
    """Reconciles yesterday's bill once, after BILL_RECONCILE_HOUR, retrying until the bill is ready (after
    midnight too)."""

    name = "bills"

    def __init__(self, ctx):
        super().__init__(min(MAX_POLL_SECONDS, ctx.settings.bill_retry_seconds))
        self.ctx = ctx

    async def run_once(self):
        yesterday = due_day(self.ctx.settings)
        earlier = sorted(set(await days_left_over()) | set(await days_never_tried()))
        for day in earlier + ([yesterday] if yesterday is not None else []):
            await self.reconcile_if_due(day)

    async def reconcile_if_due(self, day):
        """Reconcile `day` unless it is compared, not due again yet, or under way in another process."""
        row = await BillDay.select().where(BillDay.bill_date == day).aio_first()
        if row is not None and (row.status in COMPARED or (row.next_attempt_at and row.next_attempt_at > utcnow())):
            return
        if row is None:
            await ensure_day(day)
        new_job_context("bills")
        run = await reconcile(self.ctx, day, audit.SYSTEM, wait=None)
        if run is not None:
            log.info("bill job: %s is %s", day, run.status)
