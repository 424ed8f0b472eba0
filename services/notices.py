"""Booking notices: the 预约成功 subscribe message, queued with the payment and sent after it, with retries.

The row is written in the payment's transaction (so no paid booking goes without one) and sent by a background
sender, never on the notification's path. Several processes may run senders: a row is claimed by lease first.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

from models import BookingNotice, CourseSchedule, User, utcnow

from .leases import DB_NOW, notice_lease
from .timefmt import CN, yuan
from .wechat_open import OpenAPIError
from .worker import BackgroundWorker

log = logging.getLogger("gym.notices")

BACKOFF_SECONDS = (2, 10, 60, 300, 1800)  # after the 1st..5th failure; then the notice is marked failed
SEND_CONCURRENCY = 8


async def queue_booking_notice(settings, order):
    """Queue the 预约成功 message for a paid order (call inside the payment's transaction)."""
    user = await User.select().where(User.id == order.user_id).aio_get()
    schedule = await CourseSchedule.select().where(CourseSchedule.id == order.course_schedule_id).aio_get()
    starts = schedule.starts_at.replace(tzinfo=dt.timezone.utc).astimezone(CN).strftime("%Y-%m-%d %H:%M")
    payload = {"thing1": {"value": schedule.title[:20]}, "time2": {"value": starts},
               "amount3": {"value": f"{yuan(order.amount_fen)}元"}, "phrase4": {"value": "预约成功"}}
    await BookingNotice.insert(order=order.id, openid=user.openid, template_id=settings.subscribe_template_id,
                               payload=json.dumps(payload, ensure_ascii=False)).on_conflict(
        update={BookingNotice.order: BookingNotice.order}).aio_execute()


class BookingNotices(BackgroundWorker):
    """Sends due notices: at once when kicked after a payment, and every few seconds for retries."""

    name = "booking-notices"

    def __init__(self, ctx, poll_seconds=2.0):
        super().__init__(poll_seconds)
        self.ctx = ctx

    async def run_once(self):
        await self.send_due()

    async def send_due(self) -> int:
        """Send every due notice this process can claim; returns how many were sent."""
        now = utcnow()
        due = [n.id for n in await BookingNotice.select(BookingNotice.id).where(
            (BookingNotice.status == "pending") & (BookingNotice.next_attempt_at <= now)
            & (BookingNotice.lease_until.is_null() | (BookingNotice.lease_until <= DB_NOW)))
            .order_by(BookingNotice.next_attempt_at).limit(200).aio_execute()]
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def claim_and_send(notice_pk):
            async with gate:  # the claim is made when its turn comes, so its lease starts then (MySQL's clock)
                lease = notice_lease(notice_pk, self.ctx.settings.notice_lease_seconds)
                if not await lease.try_claim(where=(BookingNotice.status == "pending")):
                    return 0
                lease.start_heartbeat()
                try:
                    notice = await BookingNotice.select().where(BookingNotice.id == notice_pk).aio_get()
                    return await self._send(notice, lease)
                finally:
                    await lease.end()

        # Each send is its own task with its own pooled connection (no transaction spans them).
        return sum(await asyncio.gather(*[claim_and_send(pk) for pk in due]))

    async def _send(self, notice, lease) -> int:
        attempts = notice.attempts + 1
        mine = (BookingNotice.id == notice.id) & (BookingNotice.lease_owner == lease.token)
        try:
            await self.ctx.open_api.send_subscribe_message(notice.openid, notice.template_id,
                                                          json.loads(notice.payload), page="pages/order/order")
        except OpenAPIError as e:
            final = attempts > len(BACKOFF_SECONDS) or e.errcode in (43101, 40003)  # refused / unknown user
            delay = BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]
            await BookingNotice.update(
                attempts=attempts, last_error=str(e)[:500], status="failed" if final else "pending",
                next_attempt_at=utcnow() + dt.timedelta(seconds=delay)).where(mine).aio_execute()
            log.warning("booking notice for order %s failed (attempt %d): %s", notice.order_id, attempts, e)
            return 0
        await BookingNotice.update(status="sent", attempts=attempts, sent_at=utcnow(),
                                   last_error=None).where(mine).aio_execute()
        return 1
