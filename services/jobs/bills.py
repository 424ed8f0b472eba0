"""The daily bill job: after BILL_RECONCILE_HOUR (Asia/Shanghai), yesterday's bill is reconciled, and again every
BILL_RETRY_SECONDS (failures back off, up to 6 hours) until a run compared it (matched, discrepancies, no_trades).

Every process runs the loop; the day's lease (services/bills/reconcile.py) lets one of them work on a day at a time,
and the day's row says when it is next due, so the day is reconciled once whatever the number of processes.
"""
from __future__ import annotations

import datetime as dt
import logging

from models import BillDay, utcnow
from telemetry.context import new_job_context

from .. import audit
from ..formats import beijing, beijing_today
from ..bills.reconcile import ensure_day, reconcile
from ..bills.terms import COMPARED
from ..worker import BackgroundWorker

log = logging.getLogger("gym.bills")

MAX_POLL_SECONDS = 60.0


def due_day(settings, now=None):
    """The day the job should reconcile now (yesterday, once the hour has come), or None."""
    now = now or utcnow()
    if beijing(now).hour < settings.bill_reconcile_hour:
        return None
    return beijing_today(now) - dt.timedelta(days=1)


class BillJob(BackgroundWorker):
    """Reconciles yesterday's bill once, after BILL_RECONCILE_HOUR, retrying until the bill is ready."""

    name = "bills"

    def __init__(self, ctx):
        super().__init__(min(MAX_POLL_SECONDS, ctx.settings.bill_retry_seconds))
        self.ctx = ctx

    async def run_once(self):
        day = due_day(self.ctx.settings)
        if day is None:
            return
        row = await BillDay.select().where(BillDay.bill_date == day).aio_first()
        if row is not None and (row.status in COMPARED or (row.next_attempt_at and row.next_attempt_at > utcnow())):
            return
        if row is None:
            await ensure_day(day)
        new_job_context("bills")
        run = await reconcile(self.ctx, day, audit.SYSTEM, wait=None)
        if run is not None:
            log.info("bill job: %s is %s", day, run.status)
