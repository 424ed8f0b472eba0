"""WeChat Pay payment notifications: verified, checked against the order, applied exactly once."""
from __future__ import annotations

import logging

import peewee
import pymysql

from models import NotificationReceipt, utcnow

from . import audit
from .lifecycle import apply_payment, lock_order_by_out_trade_no
from .uow import run_in_transaction
from .wechatpay_notify import NotificationRejected

log = logging.getLogger("gym.notify")


async def note_receipt(envelope, outcome, out_trade_no):
    now = utcnow()
    await NotificationReceipt.insert(
        event_id=str(envelope.get("id") or "")[:64] or "unknown", event_type=envelope.get("event_type", "")[:32],
        out_trade_no=out_trade_no, outcome=outcome, first_seen_at=now, last_seen_at=now,
    ).on_conflict(update={NotificationReceipt.deliveries: NotificationReceipt.deliveries + 1,
                          NotificationReceipt.last_seen_at: now,
                          NotificationReceipt.outcome: outcome}).aio_execute()


async def _apply(uow, ctx, envelope, actor):
    txn = envelope["resource"]
    out_trade_no = str(txn.get("out_trade_no") or "")[:64]
    order = await lock_order_by_out_trade_no(out_trade_no) if out_trade_no else None
    if order is None:
        await audit.record("notification_unknown_order", actor, detail=f"out_trade_no {out_trade_no!r}",
                           request=txn, error="no such order")
        outcome = "unknown_order"
    elif txn.get("trade_state") != "SUCCESS":
        await audit.record("notification_ignored", actor, order=order, old_status=order.status,
                           new_status=order.status, request=txn, detail=f"trade_state {txn.get('trade_state')}")
        outcome = "ignored"
    else:
        outcome = await apply_payment(uow, ctx.settings, order, txn, actor, "notify")
    await note_receipt(envelope, outcome, out_trade_no)
    return outcome


async def handle_notification(ctx, headers, body: bytes, actor, accepts, apply) -> str:
    """Verify a notification, then apply it in one transaction if `accepts(event_type)`.

    Returns the outcome; raises NotificationRejected (401/400 refused and audited, 503 when the database fails,
    so that WeChat Pay delivers it again).
    """
    try:
        envelope = await ctx.verifier.verify(headers, body)
    except NotificationRejected as e:
        log.warning("notification refused (%s): %s", e.status, e.reason)
        await record_refusal(ctx, actor, e, body)
        raise
    if not accepts(str(envelope.get("event_type", ""))):
        return "ignored"
    try:
        return await run_in_transaction(ctx, apply, ctx, envelope, actor)
    except (peewee.DatabaseError, pymysql.err.MySQLError, OSError) as e:
        log.error("notification not applied, WeChat Pay will redeliver: %s", e)
        raise NotificationRejected(503, "database unavailable") from e


async def handle_payment_notification(ctx, headers, body: bytes, actor) -> str:
    """Verify and apply a TRANSACTION.SUCCESS notification."""
    return await handle_notification(ctx, headers, body, actor, lambda t: t == "TRANSACTION.SUCCESS", _apply)


async def _record_refusal(uow, actor, rejection, body):
    await audit.record("notification_rejected", actor, detail=rejection.reason, error=f"HTTP {rejection.status}",
                       request={"body_bytes": len(body)})


async def record_refusal(ctx, actor, rejection, body):
    """Audit a refused notification; the refusal stands even when it cannot be recorded."""
    try:
        await run_in_transaction(ctx, _record_refusal, actor, rejection, body)
    except Exception:  # noqa: BLE001
        log.exception("recording a refused notification failed")
