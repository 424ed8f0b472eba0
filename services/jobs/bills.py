"""The daily bill job: after BILL_RECONCILE_HOUR (Asia/Shanghai), yesterday's bill is reconciled, and again every
BILL_RETRY_SECONDS (failures back off, up to 6 hours) until a run compared it (matched, discrepancies, no_trades).
A day the job tried keeps being tried after midnight too, within the last 90 days: a bill still not ready when its
day stops being yesterday is not left unreconciled because the calendar moved on.

Every process runs the loop; the day's lease (services/bills/reconcile.py) lets one of them work on a day at a time,
and the day's row says when it is next due, so the day is reconciled once whatever the number of processes.
"""
from __future__ import annotations

import datetime as dt
import logging

from peewee import fn

from models import BillDay, BillRun, utcnow
from telemetry.context import new_job_context

from .. import audit
from ..bills.reconcile import DAYS_BACK, actor_name, ensure_day, reconcile
from ..bills.terms import COMPARED, FAILED, NOT_READY
from ..formats import beijing, beijing_today
from ..worker import BackgroundWorker

log = logging.getLogger("gym.bills")

MAX_POLL_SECONDS = 60.0


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


class BillJob(BackgroundWorker):
    """Reconciles yesterday's bill once, after BILL_RECONCILE_HOUR, retrying until the bill is ready (after
    midnight too)."""

    name = "bills"

    def __init__(self, ctx):
        super().__init__(min(MAX_POLL_SECONDS, ctx.settings.bill_retry_seconds))
        self.ctx = ctx

    async def run_once(self):
        yesterday = due_day(self.ctx.settings)
        for day in await days_left_over() + ([yesterday] if yesterday is not None else []):
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
