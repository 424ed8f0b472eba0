"""Subscribe messages to parents: 预约成功 when a booking is paid, 退款通知 when a refund succeeds, 候补成功 when a
seat is kept for a parent on a waitlist, 课程改期 when the front desk moves a booking, and 支付失败 / 订单已过期 when an
order ends without a payment (failed / expired; a parent's own cancel is not told: they did it themselves).

The row is written in the transaction of the change (so no paid booking or refund goes without one) and sent by a
background sender, never on the path of the request or notification that caused it. Several processes may run
senders: a batch of due rows is claimed in one statement by a lease token, renewed while the batch is sent, and the
openid and the message's text are read with the batch (one query), not in the payment's transaction. The openid is
decrypted only to address the message and never stored here (the order names the parent).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets

from models import SubscribeMessage, personal_data, utcnow
from models.prepared import Prepared
from telemetry.context import new_job_context

from ..leases import Lease
from ..formats import beijing_minute, yuan
from ..wechat.open_api import OpenAPIError
from ..worker import BackgroundWorker

log = logging.getLogger("gym.messages")

MESSAGE_KINDS = ("booking", "refund", "waitlist", "reschedule", "payment_failed", "order_expired")
# The orders' endings a parent is told of, by the kind of their message (a cancelled order is the parent's own act).
ENDING_KINDS = {"failed": "payment_failed", "expired": "order_expired"}
BACKOFF_SECONDS = (2, 10, 60, 300, 1800)  # after the 1st..5th failure; then the message is marked failed
SEND_CONCURRENCY = 8
# A session's page (it needs the session: alone it shows 课程不存在), and 我的订单 with each order's story.
SESSION_PAGE, ORDERS_PAGE = "pages/order/order", "pages/orders/orders"


# Queued in the transaction of the change: a single INSERT (the openid and the text are read when it is sent).
QUEUE = Prepared(
    "INSERT INTO `subscribe_messages` (`dedupe_key`, `kind`, `order_id`, `refund_id`, `waitlist_entry_id`, "
    "`template_id`, `status`, `attempts`, `next_attempt_at`, `created_at`) "
    "VALUES (%s, %s, %s, %s, %s, %s, 'pending', 0, %s, %s) ON DUPLICATE KEY UPDATE `id` = `id`")
# A batch of due messages, claimed in one statement by a token (MySQL's clock times the claim).
CLAIM_DUE = Prepared(
    "UPDATE `subscribe_messages` SET `lease_owner` = %s, `lease_until` = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND "
    "WHERE `status` = 'pending' AND `next_attempt_at` <= %s "
    "AND (`lease_until` IS NULL OR `lease_until` <= UTC_TIMESTAMP(6)) ORDER BY `next_attempt_at` LIMIT %s")
# A message is about an order (and its schedule) or, for 候补成功, a waitlist entry (and its schedule).
CLAIMED = Prepared(
    "SELECT m.`id`, m.`kind`, m.`order_id`, m.`template_id`, m.`attempts`, u.`openid_encrypted`, s.`id`, "
    "s.`title`, s.`starts_at`, o.`amount_fen`, r.`amount_fen`, o.`order_id`, w.`offer_expires_at` "
    "FROM `subscribe_messages` m LEFT JOIN `payment_orders` o ON o.`id` = m.`order_id` "
    "LEFT JOIN `waitlist_entries` w ON w.`id` = m.`waitlist_entry_id` "
    "JOIN `users` u ON u.`id` = COALESCE(o.`user_id`, w.`user_id`) "
    "JOIN `course_schedules` s ON s.`id` = COALESCE(o.`course_schedule_id`, w.`course_schedule_id`) "
    "LEFT JOIN `refunds` r ON r.`id` = m.`refund_id` "
    "WHERE m.`lease_owner` = %s AND m.`status` = 'pending'",
    ("id", "kind", "order_pk", "template_id", "attempts", "openid_encrypted", "schedule_id", "title", "starts_at",
     "order_fen", "refund_fen", "order_id", "offer_expires_at"))
MARK_SENT = Prepared(
    "UPDATE `subscribe_messages` SET `status` = 'sent', `attempts` = `attempts` + 1, `sent_at` = %s, "
    "`payload` = %s, `last_error` = NULL, `lease_owner` = NULL, `lease_until` = NULL "
    "WHERE `id` = %s AND `lease_owner` = %s")
MARK_FAILED = Prepared(
    "UPDATE `subscribe_messages` SET `status` = %s, `attempts` = `attempts` + 1, `next_attempt_at` = %s, "
    "`payload` = %s, `last_error` = %s, `lease_owner` = NULL, `lease_until` = NULL "
    "WHERE `id` = %s AND `lease_owner` = %s")
BATCH = 100


async def queue_booking_message(settings, order):
    """Queue 预约成功 for a paid order (call inside the payment's transaction)."""
    now = utcnow()
    await QUEUE.execute(f"booking:{order.id}", "booking", order.id, None, None, settings.subscribe_template_id, now,
                        now)


async def unqueue_booking_message(order):
    """Take back a 预约成功 queued in this transaction (the payment found no seat after all)."""
    await SubscribeMessage.delete().where(SubscribeMessage.dedupe_key == f"booking:{order.id}").aio_execute()


async def queue_refund_message(settings, order, refund):
    """Queue 退款通知 for a refund that succeeded (call inside the refund's transaction)."""
    now = utcnow()
    await QUEUE.execute(f"refund:{refund.id}", "refund", order.id, refund.id, None, settings.refund_template_id, now,
                        now)


async def queue_waitlist_message(settings, entry):
    """Queue 候补成功 for a waitlist entry a seat is now kept for (call inside the offer's transaction)."""
    now = utcnow()
    await QUEUE.execute(f"waitlist:{entry.id}", "waitlist", None, None, entry.id, settings.waitlist_template_id, now,
                        now)


async def queue_reschedule_message(settings, order, now):
    """Queue 课程改期 for a paid booking moved to another session (call inside the reschedule's transaction; the
    message names the session the order is on when it is sent)."""
    key = f"reschedule:{order.id}:{now.strftime('%Y%m%d%H%M%S%f')}"
    await QUEUE.execute(key, "reschedule", order.id, None, None, settings.reschedule_template_id, now, now)


async def queue_ending_message(settings, order):
    """Queue 支付失败 or 订单已过期 for an order that just ended `failed` or `expired` (call inside the transaction of
    that change); an order ends once, so its key is its own."""
    kind = ENDING_KINDS[order.status]
    template = settings.payment_failed_template_id if kind == "payment_failed" else settings.order_expired_template_id
    now = utcnow()
    await QUEUE.execute(f"{kind}:{order.id}", kind, order.id, None, None, template, now, now)


def page_of(message) -> str:
    """The mini-program page a tap on the message opens: the session a seat is kept in (or that an order which
    ended unpaid was for, to book it again), else 我的订单, where the order's story is."""
    if message.kind in ("waitlist", *ENDING_KINDS.values()):
        return f"{SESSION_PAGE}?scheduleId={message.schedule_id}"
    return ORDERS_PAGE


def compose(message) -> dict:
    """The template data of a claimed message (its schedule and amounts read with the batch)."""
    if message.kind == "waitlist":
        return {"thing1": {"value": message.title[:20]}, "time2": {"value": beijing_minute(message.starts_at)},
                "time3": {"value": beijing_minute(message.offer_expires_at)}, "phrase4": {"value": "候补成功"},
                "thing5": {"value": "名额已为您保留，请在保留时间内完成预约"}}
    if message.kind == "reschedule":
        return {"thing1": {"value": message.title[:20]}, "time2": {"value": beijing_minute(message.starts_at)},
                "phrase3": {"value": "课程已改期"}, "thing4": {"value": "前台已为您调整到新的上课时间"}}
    if message.kind in ENDING_KINDS.values():
        ended, note = (("支付失败", "名额已释放，可重新预约") if message.kind == "payment_failed"
                       else ("订单已过期", "未在规定时间内支付，名额已释放"))
        return {"thing1": {"value": message.title[:20]}, "time2": {"value": beijing_minute(message.starts_at)},
                "amount3": {"value": f"{yuan(message.order_fen)}元"}, "phrase4": {"value": ended},
                "thing5": {"value": note}}
    if message.kind == "refund":
        return {"thing1": {"value": message.title[:20]}, "amount2": {"value": f"{yuan(message.refund_fen or 0)}元"},
                "time3": {"value": beijing_minute(utcnow())}, "phrase4": {"value": "退款成功"},
                "thing5": {"value": "款项将原路退回您的微信支付账户"}}
    return {"thing1": {"value": message.title[:20]}, "time2": {"value": beijing_minute(message.starts_at)},
            "amount3": {"value": f"{yuan(message.order_fen)}元"}, "phrase4": {"value": "预约成功"}}


class MessageSender(BackgroundWorker):
    """Sends due messages: at once when kicked after a commit, and every few seconds for retries."""

    name = "subscribe-messages"

    def __init__(self, ctx, poll_seconds=2.0):
        super().__init__(poll_seconds)
        self.ctx = ctx

    async def run_once(self):
        new_job_context("messages")
        while await self.send_due() == BATCH:
            pass  # a full batch: there may be more due now

    async def send_due(self) -> int:
        """Claim a batch of due messages (one statement) and send them, SEND_CONCURRENCY at a time; returns how
        many were claimed."""
        token = secrets.token_hex(16)
        seconds = self.ctx.settings.message_lease_seconds
        claimed = await CLAIM_DUE.execute(token, int(seconds * 1_000_000), utcnow(), BATCH)
        if not claimed:
            return 0
        lease = Lease(SubscribeMessage, SubscribeMessage.lease_owner, token, seconds)
        lease.token = token  # the batch's rows carry this token: renewing and releasing act on all of them
        lease.start_heartbeat()
        try:
            gate = asyncio.Semaphore(SEND_CONCURRENCY)

            async def one(message):
                async with gate:
                    await self._send(message, token)

            # Each send is its own task with its own pooled connection (no transaction spans them).
            await asyncio.gather(*[one(m) for m in await CLAIMED.objects(token)])
        finally:
            await lease.end()  # anything not marked (a crash mid-batch) is free for the next round
        return claimed

    async def _send(self, message, token):
        payload = compose(message)
        text = json.dumps(payload, ensure_ascii=False)
        attempts = message.attempts + 1
        try:
            openid = personal_data.decrypt(message.openid_encrypted)
        except personal_data.PersonalDataError as e:  # a row under a key no longer loaded: a person must look
            await MARK_FAILED.execute("failed", utcnow(), text, str(e)[:500], message.id, token)
            log.error("%s message for order %s not sent: %s", message.kind, message.order_id, e)
            self.ctx.count_message(message.kind, "failed")
            return
        try:
            await self.ctx.open_api.send_subscribe_message(openid, message.template_id, payload,
                                                           page=page_of(message))
        except OpenAPIError as e:
            final = attempts > len(BACKOFF_SECONDS) or e.errcode in (43101, 40003)  # refused / unknown user
            delay = BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]
            error = str(e).replace(openid, personal_data.mask_value(openid))  # never the openid, if WeChat echoes it
            await MARK_FAILED.execute("failed" if final else "pending", utcnow() + dt.timedelta(seconds=delay),
                                      text, error[:500], message.id, token)
            log.warning("%s message for order %s failed (attempt %d): %s", message.kind, message.order_id,
                        attempts, error)
            self.ctx.count_message(message.kind, "failed" if final else "retry")
            return
        await MARK_SENT.execute(utcnow(), text, message.id, token)
        self.ctx.count_message(message.kind, "sent")
