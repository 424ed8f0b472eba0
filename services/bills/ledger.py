"""The ledger's day, as WeChat Pay's bill counts it (contract §2): the payments whose `paid_at` (WeChat Pay's
success_time) and the SUCCESS refunds whose `succeeded_at` (their success_time) fall in that day, Asia/Shanghai.
The reconciliation compares the bill with it, and the day report shows it, so the two always agree."""
from __future__ import annotations

from dataclasses import dataclass

from models import PaymentOrder, Refund

from ..formats import day_bounds
from ..lifecycle.statuses import MONEY_TAKEN, SUCCESS


@dataclass(frozen=True)
class LedgerPayment:
    """A payment of the day."""

    order_pk: int
    out_trade_no: str
    transaction_id: str | None
    amount_fen: int
    status: str  # the order's, as the API spells it


@dataclass(frozen=True)
class LedgerRefund:
    """A SUCCESS refund of the day."""

    refund_pk: int
    order_pk: int
    out_refund_no: str
    out_trade_no: str
    refund_id: str | None
    amount_fen: int
    status: str


async def payments_of(day) -> dict[str, LedgerPayment]:
    """The day's payments by out_trade_no."""
    start, end = day_bounds(day)
    rows = await PaymentOrder.select(PaymentOrder.id, PaymentOrder.order_id, PaymentOrder.transaction_id,
                                     PaymentOrder.amount_fen, PaymentOrder.status).where(
        (PaymentOrder.paid_at >= start) & (PaymentOrder.paid_at < end)
        & PaymentOrder.status.in_(MONEY_TAKEN)).order_by(PaymentOrder.id).aio_execute()
    return {o.order_id: LedgerPayment(o.id, o.order_id, o.transaction_id, o.amount_fen, o.status) for o in rows}


async def refunds_of(day) -> dict[str, LedgerRefund]:
    """The day's SUCCESS refunds by out_refund_no."""
    start, end = day_bounds(day)
    rows = await Refund.select(Refund.id, Refund.order, Refund.out_refund_no, Refund.refund_id, Refund.amount_fen,
                               Refund.status, PaymentOrder.order_id.alias("out_trade_no")).join(
        PaymentOrder, on=(PaymentOrder.id == Refund.order)).where(
        (Refund.status == SUCCESS) & (Refund.succeeded_at >= start) & (Refund.succeeded_at < end)
    ).order_by(Refund.id).objects().aio_execute()
    return {r.out_refund_no: LedgerRefund(r.id, r.order_id, r.out_refund_no, r.out_trade_no, r.refund_id,
                                          r.amount_fen, r.status) for r in rows}


async def totals(day) -> dict:
    """{"payments", "payments_fen", "refunds", "refunds_fen"} of the ledger's day."""
    payments, refunds = await payments_of(day), await refunds_of(day)
    return {"payments": len(payments), "payments_fen": sum(p.amount_fen for p in payments.values()),
            "refunds": len(refunds), "refunds_fen": sum(r.amount_fen for r in refunds.values())}
