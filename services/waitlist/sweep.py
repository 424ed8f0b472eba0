"""The waitlist's part of the reconciler's pass: the sessions whose line needs the system to act.

An offer whose time ran out is lapsed (and its seat offered to the next) by whoever next books on that session; the
sweep does it for sessions nobody books on, and offers the seats that came free without a transaction (a hold
that lapsed by its time) or while a parent was joining (services.lifecycle.waitlist: seat_freed). A session that
started has its line lapsed. Each session is handled in its own transaction under its row lock: two processes
sweeping at once offer each seat once.
"""
from __future__ import annotations

import logging

from models import utcnow
from models.prepared import Prepared

from ..lifecycle.seats import offer_lapsed_sql, taken_sql
from ..lifecycle.statuses import WAITLIST_LIVE, sql_in
from ..lifecycle.waitlist import offer_free_seats
from ..uow import run_in_transaction

log = logging.getLogger("gym.waitlist")

# Sessions with a line that has started, has a seat free, or has an offer past its time. Parameters: now x3, batch.
DUE = Prepared(
    "SELECT s.`id` FROM `course_schedules` s JOIN (SELECT DISTINCT `course_schedule_id` FROM `waitlist_entries` "
    f"WHERE {sql_in('`status`', WAITLIST_LIVE)}) l ON l.`course_schedule_id` = s.`id` "
    f"WHERE s.`starts_at` <= %s OR s.`capacity` - {taken_sql('s')} > 0 OR EXISTS (SELECT 1 FROM `waitlist_entries` w "
    f"WHERE w.`course_schedule_id` = s.`id` AND {offer_lapsed_sql('w')}) ORDER BY s.`id` LIMIT %s", ("id",))


async def _settle(uow, schedule_pk, now):
    return await offer_free_seats(uow, schedule_pk, now)


async def sweep(ctx, batch: int) -> int:
    """Settle every session whose line needs it (up to `batch`); returns the offers made."""
    now = utcnow()
    offered = 0
    for row in await DUE.objects(now, now, now, batch):
        try:
            offered += await run_in_transaction(ctx, _settle, row.id, now)
        except Exception:  # noqa: BLE001 - one session's trouble must not stop the others
            log.exception("waitlist: settling schedule %s failed", row.id)
    return offered
