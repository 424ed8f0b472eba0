"""The day report for the accountant: a day's payments (by payment date: WeChat Pay's success_time), refunds, WeChat
Pay's fees from its bill, the net, the bookings and the paid orders still waiting for a refund.

Its payments and refunds are the ledger's day (services.bills.ledger), the very figures the reconciliation compares,
so the report's totals and the reconciliation's `ledger` always agree; the fees are the bill's own summary."""
from __future__ import annotations

from models import SeatReservation

from ..lifecycle.statuses import REFUND_REQUIRED
from . import ledger
from .terms import COMPARED
from .views import last_run


async def day_report(day) -> dict:
    """The report of one Beijing day."""
    payments, refunds = await ledger.payments_of(day), await ledger.refunds_of(day)
    order_pks = [p.order_pk for p in payments.values()]
    booked = await SeatReservation.select().where(
        SeatReservation.order.in_(order_pks or [0]) & SeatReservation.confirmed_at.is_null(False)).aio_count()
    run = await last_run(day)
    compared = run if run is not None and run.status in COMPARED else None
    payments_fen = sum(p.amount_fen for p in payments.values())
    refunds_fen = sum(r.amount_fen for r in refunds.values())
    fees_fen = compared.wechat_fees_fen if compared else None
    return {
        "day": day.isoformat(),
        "payments": len(payments), "payments_fen": payments_fen,
        "refunds": len(refunds), "refunds_fen": refunds_fen,
        "fees_fen": fees_fen,
        "net_fen": payments_fen - refunds_fen - fees_fen if fees_fen is not None else None,
        "bookings": booked,
        "refund_required_waiting": sum(1 for p in payments.values() if p.status == REFUND_REQUIRED),
        "reconciliation": run,
    }
