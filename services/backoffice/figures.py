"""Today's figures for the back office's home page (the day as the gym lives it: Beijing time)."""
from __future__ import annotations


import datetime as dt

from peewee import fn

from models import PaymentOrder, Refund, WechatPayNotification, utcnow

from ..formats import beijing_today, day_bounds, yuan
from ..lifecycle.statuses import ABNORMAL, MONEY_TAKEN, PENDING, PROCESSING, REFUND_REQUIRED, SUCCESS


async def _one(query):
    rows = list(await query.dicts().aio_execute())
    return rows[0] if rows else {}


async def today() -> dict:
    """Bookings and money today, and what waits for a person now."""
    day = beijing_today()
    start, end = day_bounds(day)
    paid = await _one(PaymentOrder.select(fn.COUNT(PaymentOrder.id).alias("n"),
                                          fn.COALESCE(fn.SUM(PaymentOrder.amount_fen), 0).alias("fen"))
                      .where(PaymentOrder.paid_at.between(start, end) & PaymentOrder.status.in_(MONEY_TAKEN)))
    created = await PaymentOrder.select().where(PaymentOrder.created_at.between(start, end)).aio_count()
    refunded = await _one(Refund.select(fn.COUNT(Refund.id).alias("n"),
                                        fn.COALESCE(fn.SUM(Refund.amount_fen), 0).alias("fen"))
                          .where((Refund.status == SUCCESS) & Refund.updated_at.between(start, end)))
    refused = await _one(WechatPayNotification.select(fn.COALESCE(fn.SUM(WechatPayNotification.deliveries), 0)
                                                    .alias("n"))
                         .where((WechatPayNotification.outcome == "refused")
                                & WechatPayNotification.last_seen_at.between(start, end)))
    return {
        "day": day.isoformat(),
        "orders_created": created,
        "bookings_paid": int(paid.get("n") or 0),
        "paid_fen": int(paid.get("fen") or 0), "paid": yuan(int(paid.get("fen") or 0)),
        "refunds_succeeded": int(refunded.get("n") or 0),
        "refunded_fen": int(refunded.get("fen") or 0), "refunded": yuan(int(refunded.get("fen") or 0)),
        "refused_notifications": int(refused.get("n") or 0),
        "refund_required_waiting": await PaymentOrder.select().where(
            PaymentOrder.status == REFUND_REQUIRED).aio_count(),
        "abnormal_refunds": await Refund.select().where(Refund.status == ABNORMAL).aio_count(),
        # Refunds WeChat Pay made after we held them refused or closed (last 90 days): finance checks each one.
        "late_refunds": await Refund.select().where(
            Refund.success_after.is_null(False) & (Refund.succeeded_at >= utcnow() - dt.timedelta(days=90))
        ).aio_count(),
        "processing_refunds": await Refund.select().where(Refund.status == PROCESSING).aio_count(),
        "pending_orders": await PaymentOrder.select().where(PaymentOrder.status == PENDING).aio_count(),
    }
