"""WeChat Pay's notifications (the `/callback` and `/refund-callback` URLs of contract §2): each one verified,
recorded in the notification inbox (table wechatpay_notifications) and applied in one transaction.

Payment and refund notifications share this pipeline; what applying means is theirs
(services.payments.payment_notifications, services.refunds.refund_notifications). Messages to parents are
something else: subscribe messages (services.messages).
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import weakref

import peewee
import pymysql

from models import DATABASE_UNAVAILABLE, utcnow
from models.prepared import Prepared

from .uow import run_in_transaction
from .wechat.notification_verifier import NotificationRejected

log = logging.getLogger("gym.notifications")

KINDS = ("payment", "refund")
OUTCOMES = ("applied", "duplicate", "anomaly", "ignored", "unknown_order", "refused")


RECORD_NOTIFICATION = Prepared(
    "INSERT INTO `wechatpay_notifications` (`event_id`, `event_type`, `kind`, `out_trade_no`, `outcome`, "
    "`http_status`, `reason`, `deliveries`, `first_seen_at`, `last_seen_at`) "
    "VALUES (%s, %s, %s, %s, %s, 204, %s, 1, %s, %s) "
    "ON DUPLICATE KEY UPDATE `deliveries` = `deliveries` + 1, `last_seen_at` = %s, `outcome` = %s, "
    "`reason` = COALESCE(%s, `reason`)")


async def record_notification(envelope, outcome, out_trade_no, kind):
    """Record a verified notification (one row per event id; a redelivery counts up and keeps the last outcome).

    Its reason notes a notification only the previous APIv3 key opened (the verifier's Envelope.key_note).
    """
    now = utcnow()
    reason = getattr(envelope, "key_note", None)
    await RECORD_NOTIFICATION.execute(str(envelope.get("id") or "")[:64] or "unknown",
                                      str(envelope.get("event_type", ""))[:32], kind,
                                      str(out_trade_no)[:64] if out_trade_no else None, outcome, reason, now, now,
                                      now, outcome, reason)


COUNT_REFUSALS = Prepared(
    "INSERT INTO `wechatpay_notifications` (`event_id`, `event_type`, `kind`, `out_trade_no`, `outcome`, "
    "`http_status`, `reason`, `deliveries`, `first_seen_at`, `last_seen_at`) "
    "VALUES (%s, '', %s, NULL, 'refused', %s, %s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE `deliveries` = `deliveries` + %s, `last_seen_at` = %s")


class RefusalCounts:
    """Refused notifications counted into their inbox row without queueing on it.

    Every refusal of one kind, reason and minute lands on one row. Instead of an upsert each (a flood would queue
    on that row's lock, every waiter holding a pool connection), this process keeps one upsert per row at a time:
    refusals that arrive while it runs are counted in memory and written together by the next one. Each caller
    returns once an upsert holding its refusal has committed, so the inbox shows it as soon as it is answered.
    """

    def __init__(self):
        self._pending = {}  # event_id -> [count, (kind, http_status, reason), the future of the write that takes it]
        self._writing = set()  # event ids with an upsert under way

    async def add(self, event_id, kind, http_status, reason):
        """Count one refusal; returns when it is written (raises what the write raised)."""
        entry = self._pending.get(event_id)
        if entry is None:
            entry = self._pending[event_id] = [0, (kind, http_status, reason),
                                               asyncio.get_running_loop().create_future()]
        entry[0] += 1
        if event_id not in self._writing:
            self._writing.add(event_id)
            # A context of its own: the database connection peewee-async keeps per task is not the caller's.
            asyncio.get_running_loop().create_task(self._write(event_id), context=contextvars.Context())
        await entry[2]

    async def _write(self, event_id):
        try:
            while event_id in self._pending:
                count, (kind, http_status, reason), written = self._pending.pop(event_id)
                now = utcnow()
                try:
                    await COUNT_REFUSALS.execute(event_id, kind, http_status, reason, count, now, now, count, now)
                except Exception as e:  # noqa: BLE001 - handed to the callers, who decide
                    written.set_exception(e)
                else:
                    written.set_result(None)
        finally:
            self._writing.discard(event_id)


_counts = weakref.WeakKeyDictionary()  # event loop -> its RefusalCounts (tests run several loops in turn)


async def record_refusal(kind, rejection):
    """Count a refused notification: one row per kind, reason and minute, whatever the flood (RefusalCounts).

    A refused notification is unauthenticated, so nothing in it (its id included) is trusted or kept.
    """
    now = utcnow()
    slug = re.sub(r"[^a-z0-9]+", "_", rejection.reason.lower()).strip("_")[:24] or "refused"
    loop = asyncio.get_running_loop()
    counts = _counts.get(loop)
    if counts is None:
        counts = _counts[loop] = RefusalCounts()
    try:
        await counts.add(f"refused:{kind}:{slug}:{now:%Y%m%d%H%M}", kind, rejection.status, rejection.reason[:255])
    except Exception:  # noqa: BLE001 - the refusal stands even when it cannot be counted (database down)
        log.warning("counting a refused %s notification failed", kind)


async def receive(ctx, headers, body: bytes, actor, kind, accepts, apply) -> str:
    """Verify a notification, then apply it in one transaction if `accepts(event_type)`; returns the outcome.

    Raises NotificationRejected: 401/400 refused (counted in the inbox), 503 when the database fails, so that
    WeChat Pay delivers it again.
    """
    try:
        envelope = await ctx.verifier.verify(headers, body)
    except NotificationRejected as e:
        log.warning("%s notification refused (%s): %s", kind, e.status, e.reason)
        await record_refusal(kind, e)
        ctx.count_notification(kind, "refused")
        raise
    try:
        if not accepts(str(envelope.get("event_type", ""))):
            await record_notification(envelope, "ignored", None, kind)
            outcome = "ignored"
        else:
            outcome = await run_in_transaction(ctx, apply, ctx, envelope, actor)
    except (peewee.DatabaseError, pymysql.err.MySQLError, *DATABASE_UNAVAILABLE) as e:  # any fault on our side
        log.error("%s notification not applied, WeChat Pay will redeliver: %s", kind, e)
        raise NotificationRejected(503, "database unavailable") from e
    ctx.count_notification(kind, outcome)
    return outcome
