"""WeChat Pay payment notifications (TRANSACTION.SUCCESS): matched to the order and applied exactly once."""
from __future__ import annotations

from telemetry.context import bind_order

from .. import audit
from ..lifecycle.locks import LOCK_BY_OUT_TRADE_NO, split
from ..lifecycle.orders import apply_payment
from ..notifications import record_notification, receive


async def _apply(uow, ctx, envelope, actor):
    txn = envelope["resource"]
    out_trade_no = str(txn.get("out_trade_no") or "")[:64]
    bind_order(out_trade_no or None)
    order, reservation = split(await LOCK_BY_OUT_TRADE_NO.first(out_trade_no)) if out_trade_no else (None, None)
    if order is None:
        await audit.record("notification_unknown_order", actor, detail=f"out_trade_no {out_trade_no!r}",
                           request=txn, error="no such order")
        outcome = "unknown_order"
    elif txn.get("trade_state") != "SUCCESS":
        await audit.record("notification_ignored", actor, order=order, old_status=order.status,
                           new_status=order.status, request=txn, detail=f"trade_state {txn.get('trade_state')}")
        outcome = "ignored"
    else:
        outcome = await apply_payment(uow, ctx.settings, order, reservation, txn, actor, "notify")
        outcome = "applied" if outcome == "no_seat" else outcome  # applied: the order is now refund_required
    await record_notification(envelope, outcome, out_trade_no, "payment")
    return outcome


async def handle_payment_notification(ctx, headers, body: bytes, actor) -> str:
    """Verify and apply a TRANSACTION.SUCCESS notification."""
    return await receive(ctx, headers, body, actor, "payment", lambda t: t == "TRANSACTION.SUCCESS", _apply)
