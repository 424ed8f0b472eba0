"""Today's figures for the back office's home page (the day as the gym lives it: Beijing time)."""
from __future__ import annotations

import datetime as dt

from peewee import fn

from models import NotificationReceipt, PaymentOrder, Refund, utcnow

from ..timefmt import CN, yuan

PAID_STATES = ("paid", "refund_required", "refunded")


def today_bounds(now=None):
    """The start and end of today in Beijing, as naive UTC."""
    now = now or utcnow()
    local = now.replace(tzinfo=dt.timezone.utc).astimezone(CN)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    to_utc = lambda t: t.astimezone(dt.timezone.utc).replace(tzinfo=None)  # noqa: E731
    return to_utc(start), to_utc(start + dt.timedelta(days=1))


async def _one(query):
    rows = list(await query.dicts().aio_execute())
    return rows[0] if rows else {}


async def today() -> dict:
    """Bookings and money today, and what waits for a person now."""
    start, end = today_bounds()
    paid = await _one(PaymentOrder.select(fn.COUNT(PaymentOrder.id).alias("n"),
                                          fn.COALESCE(fn.SUM(PaymentOrder.amount_fen), 0).alias("fen"))
                      .where(PaymentOrder.paid_at.between(start, end) & PaymentOrder.status.in_(PAID_STATES)))
    created = await PaymentOrder.select().where(PaymentOrder.created_at.between(start, end)).aio_count()
    refunded = await _one(Refund.select(fn.COUNT(Refund.id).alias("n"),
                                        fn.COALESCE(fn.SUM(Refund.amount_fen), 0).alias("fen"))
                          .where((Refund.status == "SUCCESS") & Refund.updated_at.between(start, end)))
    refused = await _one(NotificationReceipt.select(fn.COALESCE(fn.SUM(NotificationReceipt.deliveries), 0)
                                                    .alias("n"))
                         .where((NotificationReceipt.outcome == "refused")
                                & NotificationReceipt.last_seen_at.between(start, end)))
    return {
        "day": start.replace(tzinfo=dt.timezone.utc).astimezone(CN).date().isoformat(),
        "orders_created": created,
        "bookings_paid": int(paid.get("n") or 0),
        "paid_fen": int(paid.get("fen") or 0), "paid": yuan(int(paid.get("fen") or 0)),
        "refunds_succeeded": int(refunded.get("n") or 0),
        "refunded_fen": int(refunded.get("fen") or 0), "refunded": yuan(int(refunded.get("fen") or 0)),
        "refused_notifications": int(refused.get("n") or 0),
        "refund_required_waiting": await PaymentOrder.select().where(
            PaymentOrder.status == "refund_required").aio_count(),
        "abnormal_refunds": await Refund.select().where(Refund.status == "ABNORMAL").aio_count(),
        "processing_refunds": await Refund.select().where(Refund.status == "PROCESSING").aio_count(),
        "pending_orders": await PaymentOrder.select().where(PaymentOrder.status == "pending").aio_count(),
    }
