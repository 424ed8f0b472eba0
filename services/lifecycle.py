"""The order and seat state machine: every status change happens here, under row locks, with its audit row.

Order:       pending -> paid | refund_required | cancelled | failed | expired;  paid|refund_required -> refunded
Reservation: temporary -> confirmed | cancelled | expired;                      confirmed -> cancelled
Callers run these inside services.uow.run_in_transaction and hold the order row lock (lock_order).
"""
from __future__ import annotations

import logging

from models import CourseSchedule, PaymentOrder, PaymentTransaction, SeatReservation, utcnow

from . import audit
from .leases import LeaseLost
from .notices import queue_booking_notice

log = logging.getLogger("gym.lifecycle")

ORDER_TRANSITIONS = {
    "pending": {"paid", "refund_required", "cancelled", "failed", "expired"},
    "paid": {"refunded"},
    "refund_required": {"refunded"},
    "cancelled": {"refund_required"},
    "failed": {"refund_required"},
    "expired": {"refund_required"},
}
RESERVATION_TRANSITIONS = {
    "temporary": {"confirmed", "cancelled", "expired"},
    "confirmed": {"cancelled"},
    "cancelled": {"confirmed"},
    "expired": {"confirmed"},
}
# Orders that hold the user's one trial (see PaymentOrder.trial_slot).
TRIAL_HOLDING = {"pending", "paid"}


class IllegalTransition(Exception):
    """A status change the state machine does not allow."""


async def lock_order(order_pk: int, lease=None) -> PaymentOrder:
    """The order row, locked for this transaction; with `lease`, only while that lease still holds it."""
    query = PaymentOrder.select().where(PaymentOrder.id == order_pk)
    if lease is None:
        return await query.for_update().aio_get()
    order = await query.where(lease.held()).for_update().aio_first()
    if order is None:
        raise LeaseLost(f"order {order_pk}: lease lost")
    return order


async def lock_order_by_out_trade_no(out_trade_no: str):
    """The order with this out_trade_no, locked, or None."""
    return await PaymentOrder.select().where(PaymentOrder.order_id == out_trade_no).for_update().aio_first()


async def lock_reservation(order) -> SeatReservation | None:
    """The order's reservation row, locked."""
    return await SeatReservation.select().where(SeatReservation.order == order.id).for_update().aio_first()


async def lock_schedule(schedule_pk: int) -> CourseSchedule | None:
    """The schedule row, locked: every decision about its seats is taken under this lock."""
    return await CourseSchedule.select().where(CourseSchedule.id == schedule_pk).for_update().aio_first()


def seat_taking_condition(now):
    """Reservations that occupy a seat now: confirmed, or a temporary hold still live.

    A hold with a WeChat Pay order (payment_started) stays live until the order is confirmed closed.
    """
    return (SeatReservation.status == "confirmed") | (
        (SeatReservation.status == "temporary")
        & ((SeatReservation.payment_started == True) | (SeatReservation.expires_at > now))  # noqa: E712
    )


async def seats_taken(schedule_pk: int, now=None, exclude_reservation_pk=None) -> int:
    """How many seats of the schedule are confirmed or held (read after the schedule lock)."""
    query = SeatReservation.select().where(
        (SeatReservation.course_schedule == schedule_pk) & seat_taking_condition(now or utcnow()))
    if exclude_reservation_pk is not None:
        query = query.where(SeatReservation.id != exclude_reservation_pk)
    return await query.aio_count()


async def set_order_status(uow, order, new_status, actor, action, *, reservation=None, detail=None,
                           request=None, response=None, **fields):
    """Move the order to new_status if it is still in its current one; writes the audit row."""
    old = order.status
    if new_status not in ORDER_TRANSITIONS.get(old, ()):
        raise IllegalTransition(f"order {order.order_id}: {old} -> {new_status}")
    now = utcnow()
    fields.setdefault("trial_slot", order.user_id if new_status in TRIAL_HOLDING else None)
    changes = {"status": new_status, "updated_at": now, **fields}
    rows = await PaymentOrder.update(**changes).where(
        (PaymentOrder.id == order.id) & (PaymentOrder.status == old)).aio_execute()
    if rows != 1:
        raise IllegalTransition(f"order {order.order_id} changed under us")
    for key, value in changes.items():
        setattr(order, key, value)
    await audit.record(action, actor, order=order, old_status=old, new_status=new_status, detail=detail,
                       request=request, response=response)
    uow.order_changed(order, reservation)


async def set_reservation_status(uow, reservation, new_status, actor, action, order, detail=None, **fields):
    """Move the reservation to new_status if it is still in its current one; writes the audit row."""
    old = reservation.status
    if new_status not in RESERVATION_TRANSITIONS.get(old, ()):
        raise IllegalTransition(f"reservation {reservation.reservation_id}: {old} -> {new_status}")
    now = utcnow()
    changes = {"status": new_status, "updated_at": now, **fields}
    if new_status in ("cancelled", "expired"):
        changes.setdefault("released_at", now)
    rows = await SeatReservation.update(**changes).where(
        (SeatReservation.id == reservation.id) & (SeatReservation.status == old)).aio_execute()
    if rows != 1:
        raise IllegalTransition(f"reservation {reservation.reservation_id} changed under us")
    for key, value in changes.items():
        setattr(reservation, key, value)
    await audit.record(action, actor, order=order, entity="reservation", old_status=old, new_status=new_status,
                       detail=detail or f"reservation {reservation.reservation_id}")


async def release_order(uow, order, new_status, reason, actor, action, request=None, response=None):
    """End a pending order (cancelled / failed / expired) and free its seat at once."""
    reservation = await lock_reservation(order)
    if reservation is not None and reservation.status == "temporary":
        seat_status = "expired" if new_status == "expired" else "cancelled"
        await set_reservation_status(uow, reservation, seat_status, actor, f"seat_{seat_status}", order,
                                     detail=f"seat released: {reason}")
    await set_order_status(uow, order, new_status, actor, action, reservation=reservation, detail=reason,
                           failure_reason=reason, request=request, response=response)
    return reservation


def check_transaction(settings, order, txn: dict) -> str | None:
    """Why a SUCCESS transaction cannot belong to this order, or None when it matches."""
    amount = txn.get("amount") or {}
    if txn.get("appid") != settings.wechat_appid:
        return "appid mismatch"
    if txn.get("mchid") != settings.wechatpay_mchid:
        return "mchid mismatch"
    if txn.get("out_trade_no") != order.order_id:
        return "out_trade_no mismatch"
    if amount.get("total") != order.amount_fen:
        return f"amount mismatch: {amount.get('total')} != {order.amount_fen}"
    if amount.get("currency", "CNY") != order.currency:
        return "currency mismatch"
    if not txn.get("transaction_id"):
        return "no transaction_id"
    return None


async def _record_transaction(order, txn, source):
    amount = txn.get("amount") or {}
    await PaymentTransaction.insert(
        transaction_id=txn["transaction_id"], order=order.id, out_trade_no=order.order_id,
        trade_type=txn.get("trade_type") or order.trade_type or "JSAPI", trade_state=txn.get("trade_state", "SUCCESS"),
        bank_type=txn.get("bank_type"), total_fee=amount.get("total"), payer_total=amount.get("payer_total"),
        fee_type=amount.get("currency", "CNY"), openid=(txn.get("payer") or {}).get("openid"),
        success_time=txn.get("success_time"), source=source,
    ).on_conflict(update={PaymentTransaction.updated_at: utcnow()}).aio_execute()
    return await PaymentTransaction.select().where(
        PaymentTransaction.transaction_id == txn["transaction_id"]).aio_get()


async def apply_payment(uow, settings, order, txn: dict, actor, source: str) -> str:
    """Apply a WeChat Pay SUCCESS transaction to the locked order, exactly once.

    Returns 'applied', 'duplicate', 'no_seat' (order now refund_required) or 'anomaly' (nothing changed).
    """
    problem = check_transaction(settings, order, txn)
    if problem:
        await audit.record("payment_anomaly", actor, order=order, detail=problem, request=txn,
                           old_status=order.status, new_status=order.status, error=problem)
        return "anomaly"
    if order.transaction_id == txn["transaction_id"]:
        return "duplicate"
    if order.transaction_id:  # a second, different payment for one out_trade_no: never expected
        await audit.record("payment_anomaly", actor, order=order, request=txn, error="second transaction_id",
                           old_status=order.status, new_status=order.status)
        return "anomaly"
    transaction = await _record_transaction(order, txn, source)
    await audit.record("transaction_recorded", actor, order=order, transaction=transaction, entity="transaction",
                       new_status=transaction.trade_state, request=txn, detail=f"source={source}")
    now = utcnow()
    schedule = await lock_schedule(order.course_schedule_id)
    reservation = await lock_reservation(order)
    seat_ok = False
    if reservation is not None and order.status == "pending":
        others_confirmed = await SeatReservation.select().where(
            (SeatReservation.course_schedule == schedule.id) & (SeatReservation.status == "confirmed")
            & (SeatReservation.id != reservation.id)).aio_count()
        if reservation.status == "temporary":
            seat_ok = others_confirmed < schedule.capacity
        else:  # the hold was released; a seat is free only if nobody else holds it now
            taken = await seats_taken(schedule.id, now, exclude_reservation_pk=reservation.id)
            seat_ok = taken < schedule.capacity
    paid_fields = dict(transaction_id=txn["transaction_id"], paid_at=now)
    if seat_ok:
        await set_reservation_status(uow, reservation, "confirmed", actor, "seat_confirmed", order, confirmed_at=now)
        await set_order_status(uow, order, "paid", actor, "payment_succeeded", reservation=reservation,
                               detail=f"source={source}", request=txn, **paid_fields)
        await queue_booking_notice(settings, order)
        return "applied"
    if reservation is not None and reservation.status == "temporary":
        await set_reservation_status(uow, reservation, "cancelled", actor, "seat_cancelled", order,
                                     detail="paid but no seat left")
    reason = "no_seat" if order.status == "pending" else f"paid_after_{order.status}"
    await set_order_status(uow, order, "refund_required", actor, "payment_without_seat", reservation=reservation,
                           detail=reason, request=txn, failure_reason=reason, **paid_fields)
    log.warning("order %s paid with no seat to give (%s): refund_required", order.order_id, reason)
    return "no_seat"
