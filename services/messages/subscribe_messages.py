"""Subscribe messages to parents: 预约成功 when a booking is paid, 退款通知 when a refund succeeds.

The row is written in the transaction of the change (so no paid booking or refund goes without one) and sent by a
background sender, never on the path of the request or notification that caused it. Several processes may run
senders: a row is claimed by lease, when its send starts, first.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

from models import CourseSchedule, SubscribeMessage, User, utcnow
from telemetry.context import new_job_context

from ..leases import DB_NOW, Lease
from ..timefmt import CN, yuan
from ..wechat.open_api import OpenAPIError
from ..worker import BackgroundWorker

log = logging.getLogger("gym.messages")

BACKOFF_SECONDS = (2, 10, 60, 300, 1800)  # after the 1st..5th failure; then the message is marked failed
SEND_CONCURRENCY = 8
PAGE = "pages/order/order"


async def _queue(dedupe_key, kind, order, template_id, payload, refund=None):
    user = await User.select().where(User.id == order.user_id).aio_get()
    await SubscribeMessage.insert(
        dedupe_key=dedupe_key, kind=kind, order=order.id, refund=refund.id if refund is not None else None,
        openid=user.openid, template_id=template_id, payload=json.dumps(payload, ensure_ascii=False),
    ).on_conflict(update={SubscribeMessage.dedupe_key: SubscribeMessage.dedupe_key}).aio_execute()


async def _schedule_of(order):
    return await CourseSchedule.select().where(CourseSchedule.id == order.course_schedule_id).aio_get()


def _cn_time(when) -> str:
    return when.replace(tzinfo=dt.timezone.utc).astimezone(CN).strftime("%Y-%m-%d %H:%M")


async def queue_booking_notice(settings, order):
    """Queue 预约成功 for a paid order (call inside the payment's transaction)."""
    schedule = await _schedule_of(order)
    payload = {"thing1": {"value": schedule.title[:20]}, "time2": {"value": _cn_time(schedule.starts_at)},
               "amount3": {"value": f"{yuan(order.amount_fen)}元"}, "phrase4": {"value": "预约成功"}}
    await _queue(f"booking:{order.id}", "booking", order, settings.subscribe_template_id, payload)


async def queue_refund_notice(settings, order, refund):
    """Queue 退款通知 for a refund that succeeded (call inside the refund's transaction)."""
    schedule = await _schedule_of(order)
    payload = {"thing1": {"value": schedule.title[:20]}, "amount2": {"value": f"{yuan(refund.amount_fen)}元"},
               "time3": {"value": _cn_time(utcnow())}, "phrase4": {"value": "退款成功"},
               "thing5": {"value": "款项将原路退回您的微信支付账户"}}
    await _queue(f"refund:{refund.id}", "refund", order, settings.refund_template_id, payload, refund)


def message_lease(message_pk: int, seconds: float) -> Lease:
    """A lease on one subscribe message while it is being sent."""
    return Lease(SubscribeMessage, SubscribeMessage.id, message_pk, seconds)


class MessageSender(BackgroundWorker):
    """Sends due messages: at once when kicked after a commit, and every few seconds for retries."""

    name = "subscribe-messages"

    def __init__(self, ctx, poll_seconds=2.0):
        super().__init__(poll_seconds)
        self.ctx = ctx

    async def run_once(self):
        new_job_context("messages")
        await self.send_due()

    async def send_due(self) -> int:
        """Send every due message this process can claim; returns how many were sent."""
        now = utcnow()
        due = [m.id for m in await SubscribeMessage.select(SubscribeMessage.id).where(
            (SubscribeMessage.status == "pending") & (SubscribeMessage.next_attempt_at <= now)
            & (SubscribeMessage.lease_until.is_null() | (SubscribeMessage.lease_until <= DB_NOW)))
            .order_by(SubscribeMessage.next_attempt_at).limit(200).aio_execute()]
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def claim_and_send(message_pk):
            async with gate:  # the claim is made when its turn comes, so its lease starts then (MySQL's clock)
                lease = message_lease(message_pk, self.ctx.settings.notice_lease_seconds)
                if not await lease.try_claim(where=(SubscribeMessage.status == "pending")):
                    return 0
                lease.start_heartbeat()
                try:
                    message = await SubscribeMessage.select().where(SubscribeMessage.id == message_pk).aio_get()
                    return await self._send(message, lease)
                finally:
                    await lease.end()

        # Each send is its own task with its own pooled connection (no transaction spans them).
        return sum(await asyncio.gather(*[claim_and_send(pk) for pk in due]))

    async def _send(self, message, lease) -> int:
        attempts = message.attempts + 1
        mine = (SubscribeMessage.id == message.id) & (SubscribeMessage.lease_owner == lease.token)
        try:
            await self.ctx.open_api.send_subscribe_message(message.openid, message.template_id,
                                                          json.loads(message.payload), page=PAGE)
        except OpenAPIError as e:
            final = attempts > len(BACKOFF_SECONDS) or e.errcode in (43101, 40003)  # refused / unknown user
            delay = BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]
            await SubscribeMessage.update(
                attempts=attempts, last_error=str(e)[:500], status="failed" if final else "pending",
                next_attempt_at=utcnow() + dt.timedelta(seconds=delay)).where(mine).aio_execute()
            log.warning("%s message for order %s failed (attempt %d): %s", message.kind, message.order_id,
                        attempts, e)
            self.ctx.count_message(message.kind, "failed" if final else "retry")
            return 0
        await SubscribeMessage.update(status="sent", attempts=attempts, sent_at=utcnow(),
                                      last_error=None).where(mine).aio_execute()
        self.ctx.count_message(message.kind, "sent")
        return 1
