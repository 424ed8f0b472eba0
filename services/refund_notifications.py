"""WeChat Pay refund notifications (REFUND.SUCCESS / ABNORMAL / CLOSED): verified, matched, applied once."""
from __future__ import annotations

import logging

from models import PaymentOrder, Refund, utcnow

from . import audit
from .lifecycle import lock_order, lock_reservation, set_order_status, set_reservation_status
from .notifications import handle_notification, note_receipt

log = logging.getLogger("gym.refund_notify")

FINAL = {"SUCCESS", "CLOSED"}


async def _apply(uow, ctx, envelope, actor):
    data = envelope["resource"]
    out_refund_no = str(data.get("out_refund_no") or "")[:64]
    refund = await Refund.select().where(Refund.out_refund_no == out_refund_no).for_update().aio_first()
    if refund is None:
        await audit.record("refund_notification_unknown", actor, entity="refund", request=data,
                           error=f"no refund {out_refund_no!r}")
        await note_receipt(envelope, "unknown_order", data.get("out_trade_no"), "refund")
        return "unknown_order"
    order = await lock_order(refund.order_id)
    amount = data.get("amount") or {}
    problem = None
    if data.get("out_trade_no") != order.order_id:
        problem = "out_trade_no mismatch"
    elif amount.get("refund") != refund.amount_fen:
        problem = f"refund amount mismatch: {amount.get('refund')} != {refund.amount_fen}"
    elif data.get("mchid") not in (None, ctx.settings.wechatpay_mchid):
        problem = "mchid mismatch"
    new = data.get("refund_status")
    if problem or new not in ("SUCCESS", "ABNORMAL", "CLOSED"):
        problem = problem or f"unknown refund_status {new!r}"
        await audit.record("refund_anomaly", actor, order=order, refund=refund, entity="refund", request=data,
                           error=problem, old_status=refund.status, new_status=refund.status)
        outcome = "anomaly"
    elif refund.status == new or refund.status in FINAL:
        outcome = "duplicate"
    else:
        await Refund.update(status=new, refund_id=data.get("refund_id"), success_time=data.get("success_time"),
                            updated_at=utcnow()).where(Refund.id == refund.id).aio_execute()
        await audit.record(f"refund_{new.lower()}", actor, order=order, refund=refund, entity="refund",
                           old_status=refund.status, new_status=new, request=data)
        if new == "SUCCESS":
            await _refunded(uow, order, refund, actor)
        outcome = "applied"
    await note_receipt(envelope, outcome, order.order_id, "refund")
    return outcome


async def _refunded(uow, order, refund, actor):
    """Count the money back; a fully refunded order is `refunded` and its seat is given back."""
    refunded = order.refunded_fen + refund.amount_fen
    await PaymentOrder.update(refunded_fen=refunded).where(PaymentOrder.id == order.id).aio_execute()
    order.refunded_fen = refunded
    if refunded >= order.amount_fen and order.status in ("paid", "refund_required"):
        reservation = await lock_reservation(order)
        if reservation is not None and reservation.status == "confirmed":
            await set_reservation_status(uow, reservation, "cancelled", actor, "seat_cancelled", order,
                                         detail="order refunded")
        await set_order_status(uow, order, "refunded", actor, "order_refunded", reservation=reservation,
                               refunded_fen=refunded)


async def handle_refund_notification(ctx, headers, body: bytes, actor) -> str:
    """Verify and apply a REFUND.* notification."""
    return await handle_notification(ctx, headers, body, actor, "refund", lambda t: t.startswith("REFUND."), _apply)
