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

from .timefmt import CN, yuan
from .wechat_open import OpenAPIError

log = logging.getLogger("gym.notices")

BACKOFF_SECONDS = (2, 10, 60, 300, 1800)  # after the 1st..5th failure; then the notice is marked failed
LEASE_SECONDS = 30
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


class BookingNotices:
    """Sends due notices: at once when kicked after a payment, and every few seconds for retries."""

    def __init__(self, ctx, poll_seconds=2.0):
        self.ctx = ctx
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task = None
        self._stopping = False

    def start(self):
        """Start the sender loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def kick(self):
        """A payment was committed: look for notices now."""
        self._wake.set()

    async def stop(self):
        """Stop the sender loop."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task

    async def _loop(self):
        while not self._stopping:
            try:
                await self.send_due()
            except Exception:  # noqa: BLE001 - the database may be down; retry on the next round
                log.exception("sending booking notices failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def send_due(self) -> int:
        """Send every due notice this process can claim; returns how many were sent."""
        now = utcnow()
        due = list(await BookingNotice.select().where(
            (BookingNotice.status == "pending") & (BookingNotice.next_attempt_at <= now)
            & (BookingNotice.lease_until.is_null() | (BookingNotice.lease_until < now))).limit(200).aio_execute())
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def claim_and_send(notice):
            async with gate:
                claimed = await BookingNotice.update(lease_until=now + dt.timedelta(seconds=LEASE_SECONDS)).where(
                    (BookingNotice.id == notice.id) & (BookingNotice.status == "pending")
                    & (BookingNotice.lease_until.is_null() | (BookingNotice.lease_until < now))).aio_execute()
                return await self._send(notice) if claimed == 1 else 0

        # Each send is its own task with its own pooled connection (no transaction spans them).
        return sum(await asyncio.gather(*[claim_and_send(n) for n in due]))

    async def _send(self, notice) -> int:
        attempts = notice.attempts + 1
        try:
            await self.ctx.open_api.send_subscribe_message(notice.openid, notice.template_id,
                                                          json.loads(notice.payload), page="pages/order/order")
        except OpenAPIError as e:
            final = attempts > len(BACKOFF_SECONDS) or e.errcode in (43101, 40003)  # refused / unknown user
            delay = BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]
            await BookingNotice.update(
                attempts=attempts, last_error=str(e)[:500], lease_until=None,
                status="failed" if final else "pending",
                next_attempt_at=utcnow() + dt.timedelta(seconds=delay)).where(
                BookingNotice.id == notice.id).aio_execute()
            log.warning("booking notice for order %s failed (attempt %d): %s", notice.order_id, attempts, e)
            return 0
        await BookingNotice.update(status="sent", attempts=attempts, sent_at=utcnow(), lease_until=None,
                                   last_error=None).where(BookingNotice.id == notice.id).aio_execute()
        return 1
