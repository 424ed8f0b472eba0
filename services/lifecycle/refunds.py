"""The refund: its status changes, each with its audit row, and what a SUCCESS does to its order.

Refund: (new) -> PROCESSING -> SUCCESS | CLOSED | ABNORMAL | REJECTED;  ABNORMAL -> SUCCESS | CLOSED
        REJECTED | CLOSED -> SUCCESS   (WeChat Pay made it after all: applied, and flagged for finance)
A SUCCESS counts the money back (`refunded_fen`) and records when it happened (`succeeded_at`, WeChat Pay's
success_time: the refund's bill day); once the order's SUCCESS refunds reach its amount, the order ends `refunded`
and its confirmed seat is given back (services.lifecycle.orders).
Call with the order and the refund locked (services.lifecycle.locks).
"""
from __future__ import annotations

import logging
import uuid

from peewee import fn

from models import PaymentOrder, Refund, utcnow

from .. import audit
from ..formats import parse_iso, yuan
from ..messages.subscribe_messages import queue_refund_message
from .locks import lock_reservation
from .orders import set_order_status, set_reservation_status
from .waitlist import seat_freed
from .statuses import (
    CANCELLED, CONFIRMED, PROCESSING, REFUND_ENDED_WITHOUT_MONEY, REFUND_HOLDING, REFUND_TRANSITIONS, REFUNDABLE,
    REFUNDED, SUCCESS, IllegalTransition, check,
)

log = logging.getLogger("gym.lifecycle")


def refundable_fen(order_status: str, amount_fen: int, refunds) -> int:
    """What can still be refunded: the paid amount less every refund not CLOSED or REJECTED, 0 for an order that
    cannot be refunded; `refunds` are (amount_fen, status) pairs of the order's refunds."""
    if order_status not in REFUNDABLE:
        return 0
    return max(amount_fen - sum(amount for amount, status in refunds if status in REFUND_HOLDING), 0)


async def _sum_refunds(order, statuses) -> int:
    rows = await Refund.select(fn.COALESCE(fn.SUM(Refund.amount_fen), 0).alias("total")).where(
        (Refund.order == order.id) & Refund.status.in_(statuses)).dicts().aio_execute()
    return int(list(rows)[0]["total"] or 0)


async def refunds_of(order) -> list[tuple[int, str]]:
    """(amount_fen, status) of each of the order's refunds (read under the order's lock by the refund's opening)."""
    return [(r.amount_fen, r.status) for r in await Refund.select(Refund.amount_fen, Refund.status).where(
        Refund.order == order.id).aio_execute()]


async def open_refund(uow, order, amount_fen, reason, operator, idem_key, actor):
    """The first state of a refund (call with the order locked, after checking what is refundable)."""
    now = utcnow()
    refund = Refund(out_refund_no=uuid.uuid4().hex, order=order.id, amount_fen=amount_fen, status=PROCESSING,
                    reason=reason, operator=operator.id, idem_key=idem_key, created_at=now, updated_at=now)
    await refund.aio_save(force_insert=True)
    await audit.record("refund_requested", actor, order=order, refund=refund, entity="refund",
                       new_status=PROCESSING, detail=f"{yuan(amount_fen)} CNY: {reason}",
                       request={"amount_fen": amount_fen, "reason": reason, "out_refund_no": refund.out_refund_no})
    return refund


async def set_refund_status(uow, settings, refund, order, new_status, actor, action, *, detail=None, request=None,
                            **fields):
    """Move the refund to new_status if it is still in its current one; a SUCCESS counts the money back and,
    once the whole amount is back, ends the order `refunded` and frees its seat."""
    old = refund.status
    check(REFUND_TRANSITIONS, "refund", refund.out_refund_no, old, new_status)
    now = utcnow()
    changes = {"status": new_status, "updated_at": now, **fields}
    if new_status == SUCCESS:
        changes["succeeded_at"] = succeeded_at(changes.get("success_time"), now)
        if old in REFUND_ENDED_WITHOUT_MONEY:
            changes["success_after"] = old
    rows = await Refund.update(**changes).where((Refund.id == refund.id) & (Refund.status == old)).aio_execute()
    if rows != 1:
        raise IllegalTransition(f"refund {refund.out_refund_no} changed under us")
    for key, value in changes.items():
        setattr(refund, key, value)
    await audit.record(action, actor, order=order, refund=refund, entity="refund", old_status=old,
                       new_status=new_status, detail=detail, request=request)
    uow.refund_changed(refund)
    if new_status == SUCCESS and old in REFUND_ENDED_WITHOUT_MONEY:
        log.warning("refund %s was %s but WeChat Pay made it: applied, flagged for finance", refund.out_refund_no, old)
        await audit.record(f"refund_success_after_{old.lower()}", actor, order=order, refund=refund, entity="refund",
                           old_status=old, new_status=SUCCESS,
                           detail=f"WeChat Pay made the refund we held as {old}: the money left; for finance to check")
    if new_status == SUCCESS:
        await _money_back(uow, settings, order, refund, actor)


def succeeded_at(success_time, now):
    """When a refund succeeded, as naive UTC: WeChat Pay's success_time, or `now` when it gave none we can read."""
    try:
        return parse_iso(success_time) if success_time else now
    except ValueError:
        return now


async def _money_back(uow, settings, order, refund, actor):
    refunded = await _sum_refunds(order, (SUCCESS,))
    await PaymentOrder.update(refunded_fen=refunded, updated_at=utcnow()).where(
        PaymentOrder.id == order.id).aio_execute()
    order.refunded_fen = refunded
    await queue_refund_message(settings, order, refund)
    if refunded < order.amount_fen or order.status not in REFUNDABLE:
        return
    reservation = await lock_reservation(order)
    if reservation is not None and reservation.status == CONFIRMED:
        await set_reservation_status(uow, reservation, CANCELLED, actor, "seat_cancelled", order,
                                     detail="order refunded")
        uow.seat_released(reservation)
    await set_order_status(uow, order, REFUNDED, actor, "order_refunded", reservation=reservation,
                           detail=f"{yuan(refunded)} CNY refunded")
    if reservation is not None and reservation.status == CANCELLED:
        await seat_freed(uow, order.course_schedule_id)  # the waitlist's next in line, in this transaction
