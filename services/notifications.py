"""WeChat Pay payment notifications: verified, checked against the order, applied exactly once."""
from __future__ import annotations

import logging
import re

import peewee
import pymysql

from models import NotificationReceipt, utcnow

from . import audit
from .lifecycle import apply_payment, lock_order_by_out_trade_no
from .uow import run_in_transaction
from .wechatpay_notify import NotificationRejected

log = logging.getLogger("gym.notify")


async def note_receipt(envelope, outcome, out_trade_no, kind="payment"):
    """Record a verified notification in the inbox (one row per event id; a redelivery counts up)."""
    now = utcnow()
    await NotificationReceipt.insert(
        event_id=str(envelope.get("id") or "")[:64] or "unknown", event_type=str(envelope.get("event_type", ""))[:32],
        kind=kind, out_trade_no=out_trade_no, outcome=outcome, http_status=204, first_seen_at=now, last_seen_at=now,
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
        outcome = "applied" if outcome == "no_seat" else outcome  # applied: the order is now refund_required
    await note_receipt(envelope, outcome, out_trade_no)
    return outcome


async def handle_notification(ctx, headers, body: bytes, actor, kind, accepts, apply) -> str:
    """Verify a notification, then apply it in one transaction if `accepts(event_type)`.

    Returns the outcome; raises NotificationRejected (401/400 refused and counted in the inbox, 503 when the
    database fails, so that WeChat Pay delivers it again).
    """
    try:
        envelope = await ctx.verifier.verify(headers, body)
    except NotificationRejected as e:
        log.warning("%s notification refused (%s): %s", kind, e.status, e.reason)
        await record_refusal(kind, e)
        raise
    if not accepts(str(envelope.get("event_type", ""))):
        try:
            await note_receipt(envelope, "ignored", None, kind)
        except Exception:  # noqa: BLE001 - the answer stands
            log.exception("recording an ignored notification failed")
        return "ignored"
    try:
        return await run_in_transaction(ctx, apply, ctx, envelope, actor)
    except (peewee.DatabaseError, pymysql.err.MySQLError, OSError) as e:
        log.error("notification not applied, WeChat Pay will redeliver: %s", e)
        raise NotificationRejected(503, "database unavailable") from e


async def handle_payment_notification(ctx, headers, body: bytes, actor) -> str:
    """Verify and apply a TRANSACTION.SUCCESS notification."""
    return await handle_notification(ctx, headers, body, actor, "payment",
                                     lambda t: t == "TRANSACTION.SUCCESS", _apply)


async def record_refusal(kind, rejection):
    """Count a refused notification in the inbox: one row per kind, reason and minute, whatever the flood.

    A refused notification is unauthenticated, so nothing in it (its id included) is trusted or kept.
    """
    now = utcnow()
    slug = re.sub(r"[^a-z0-9]+", "_", rejection.reason.lower()).strip("_")[:24] or "refused"
    try:
        await NotificationReceipt.insert(
            event_id=f"refused:{kind}:{slug}:{now:%Y%m%d%H%M}", event_type="", kind=kind, out_trade_no=None,
            outcome="refused", http_status=rejection.status, reason=rejection.reason[:255], first_seen_at=now,
            last_seen_at=now,
        ).on_conflict(update={NotificationReceipt.deliveries: NotificationReceipt.deliveries + 1,
                              NotificationReceipt.last_seen_at: now}).aio_execute()
    except Exception:  # noqa: BLE001 - the refusal stands even when it cannot be counted (database down)
        log.warning("counting a refused notification failed")
