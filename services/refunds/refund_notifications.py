"""WeChat Pay refund notifications (REFUND.SUCCESS / ABNORMAL / CLOSED): matched to our refund, applied once."""
from __future__ import annotations

from models import Refund
from telemetry.context import bind_order

from .. import audit
from ..lifecycle.locks import lock_order, lock_refund
from ..notifications import record_notification, receive
from .refunds import settle


async def _apply(uow, ctx, envelope, actor):
    data = envelope["resource"]
    out_refund_no = str(data.get("out_refund_no") or "")[:64]
    known = await Refund.select(Refund.id, Refund.order).where(Refund.out_refund_no == out_refund_no).aio_first()
    if known is None:
        await audit.record("refund_notification_unknown", actor, entity="refund", request=data,
                           error=f"no refund {out_refund_no!r}")
        await record_notification(envelope, "unknown_order", data.get("out_trade_no"), "refund")
        return "unknown_order"
    order = await lock_order(known.order_id)
    bind_order(order.order_id)
    refund = await lock_refund(known.id)
    outcome = await settle(uow, ctx.settings, order, refund, data, actor, "notify")
    await record_notification(envelope, outcome, order.order_id, "refund")
    return outcome


async def handle_refund_notification(ctx, headers, body: bytes, actor) -> str:
    """Verify and apply a REFUND.* notification."""
    return await receive(ctx, headers, body, actor, "refund", lambda t: t.startswith("REFUND."), _apply)
