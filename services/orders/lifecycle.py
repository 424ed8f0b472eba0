"""The order, seat and refund state machine: every status change happens here, each with its audit row.

Order:       (new) -> pending -> paid | refund_required | cancelled | failed | expired
             cancelled | failed | expired -> refund_required      (a payment that arrives after all)
             paid | refund_required -> refunded                   (SUCCESS refunds reach the paid amount)
Reservation: (new) -> temporary -> confirmed | cancelled | expired;  confirmed -> cancelled (refunded)
             cancelled | expired -> confirmed                     (a late payment finds its seat free)
Refund:      (new) -> PROCESSING -> SUCCESS | CLOSED | ABNORMAL | REJECTED;  ABNORMAL -> SUCCESS | CLOSED

Callers run these inside services.uow.run_in_transaction holding the row locks of services.orders.seats; each change
is a conditional UPDATE on the old status, so a change that lost a race raises IllegalTransition and rolls back.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal
from types import SimpleNamespace

from peewee import fn

from models import PaymentOrder, Refund, SeatReservation, utcnow

from .. import audit
from ..messages.subscribe_messages import queue_booking_notice, queue_refund_notice, unqueue_booking_notice
from ..payments.transactions import check_transaction, record_transaction
from ..timefmt import iso, yuan
from . import statements
from .seats import lock_reservation

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
REFUND_TRANSITIONS = {
    "PROCESSING": {"SUCCESS", "CLOSED", "ABNORMAL", "REJECTED"},
    "ABNORMAL": {"SUCCESS", "CLOSED"},
}
# Orders that hold the user's one trial (see PaymentOrder.trial_slot).
TRIAL_HOLDING = {"pending", "paid"}
# Refunds that still count against what can be refunded.
REFUND_HOLDING = ("PROCESSING", "SUCCESS", "ABNORMAL")
# Orders that can be refunded.
REFUNDABLE = ("paid", "refund_required")


class IllegalTransition(Exception):
    """A status change the state machine does not allow (or one that lost a race)."""


# -- orders and seats ---------------------------------------------------------------------------------------------

async def open_order(uow, settings, user_id, schedule, actor, request_snapshot, now):
    """The first state: a pending order for one trial seat and its temporary hold (SEAT_HOLD_SECONDS)."""
    price = settings.trial_price_fen
    order = SimpleNamespace(
        order_id=uuid.uuid4().hex, user_id=user_id, course_schedule_id=schedule.id, amount_fen=price, currency="CNY",
        status="pending", description=f"体验课 {schedule.title}"[:127], trade_type=None, transaction_id=None,
        prepay_id=None, code_url=None, refunded_fen=0, failure_reason=None, paid_at=None, created_at=now,
        updated_at=now, expires_at=now + dt.timedelta(seconds=settings.order_expire_seconds))
    order.id = await statements.INSERT_ORDER.insert(
        order.order_id, user_id, schedule.id, Decimal(price) / 100, price, order.description, user_id, now, now,
        order.expires_at)
    reservation = SimpleNamespace(
        reservation_id=uuid.uuid4().hex, order_id=order.id, status="temporary", payment_started=False,
        expires_at=now + dt.timedelta(seconds=settings.seat_hold_seconds), confirmed_at=None)
    reservation.id = await statements.INSERT_RESERVATION.insert(
        reservation.reservation_id, order.id, schedule.id, user_id, reservation.expires_at, now, now)
    await audit.record("order_created", actor, order=order, new_status="pending", request=request_snapshot,
                       detail=f"schedule {schedule.id}, {yuan(price)} CNY")
    await audit.record("seat_held", actor, order=order, entity="reservation", new_status="temporary",
                       detail=f"reservation {reservation.reservation_id} until {iso(reservation.expires_at)}")
    uow.order_changed(order, reservation)
    return order, reservation


async def extend_hold(uow, order, reservation, trade_type, actor, now):
    """Payment starts: the hold lasts until the order's end and no longer lapses by time alone (both rows in one
    statement; the caller holds them locked)."""
    if await statements.EXTEND_HOLD.execute(trade_type, now, now, now, order.id, reservation.id) != 2:
        raise IllegalTransition(f"order {order.order_id} changed under us")
    reservation.payment_started, reservation.expires_at = True, order.expires_at
    order.trade_type, order.payment_started_at = trade_type, now
    await audit.record("payment_started", actor, order=order, entity="reservation", old_status="temporary",
                       new_status="temporary", detail=f"{trade_type}; hold extended to the order's end")


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
    if old == "confirmed":
        await statements.GIVE_BACK_SEAT.execute(order.course_schedule_id)
    elif new_status == "confirmed" and await statements.CLAIM_SEAT.execute(order.course_schedule_id) != 1:
        raise IllegalTransition(f"reservation {reservation.reservation_id}: no confirmed seat left")
    for key, value in changes.items():
        setattr(reservation, key, value)
    await audit.record(action, actor, order=order, entity="reservation", old_status=old, new_status=new_status,
                       detail=detail or f"reservation {reservation.reservation_id}")


async def end_order(uow, order, new_status, reason, actor, action, request=None, response=None):
    """End a pending order (cancelled / failed / expired) and free its seat at once."""
    reservation = await lock_reservation(order)
    if reservation is not None and reservation.status == "temporary":
        seat_status = "expired" if new_status == "expired" else "cancelled"
        await set_reservation_status(uow, reservation, seat_status, actor, f"seat_{seat_status}", order,
                                     detail=f"seat released: {reason}")
        uow.seat_released(reservation)
    await set_order_status(uow, order, new_status, actor, action, reservation=reservation, detail=reason,
                           failure_reason=reason, request=request, response=response)
    if new_status == "failed":
        uow.payment_failed(reason)
    return reservation


async def confirm_booking(uow, order, reservation, transaction_id, actor, source, txn, now) -> bool:
    """pending + temporary -> paid + confirmed with one of the session's confirmed seats, in one statement; False
    (nothing changed) when the session has no confirmed seat left. Call with the order and its hold locked."""
    if "paid" not in ORDER_TRANSITIONS[order.status] or "confirmed" not in RESERVATION_TRANSITIONS[reservation.status]:
        raise IllegalTransition(f"order {order.order_id}: {order.status}/{reservation.status} -> paid/confirmed")
    rows = await statements.CONFIRM_BOOKING.execute(transaction_id, now, now, now, now, order.id, reservation.id)
    if rows == 0:
        return False
    if rows != 3:
        raise IllegalTransition(f"order {order.order_id} changed under us")
    await audit.record("seat_confirmed", actor, order=order, entity="reservation", old_status=reservation.status,
                       new_status="confirmed", detail=f"reservation {reservation.reservation_id}")
    await audit.record("payment_succeeded", actor, order=order, old_status=order.status, new_status="paid",
                       detail=f"source={source}", request=txn)
    order.status, order.transaction_id, order.paid_at, order.updated_at = "paid", transaction_id, now, now
    reservation.status, reservation.confirmed_at = "confirmed", now
    uow.order_changed(order, reservation)
    return True


async def apply_payment(uow, settings, order, reservation, txn: dict, actor, source: str) -> str:
    """Apply a WeChat Pay SUCCESS transaction to the order and its reservation (both locked), exactly once.

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
    now = utcnow()
    transaction = await record_transaction(order, txn, source, now)
    await audit.record("transaction_recorded", actor, order=order, transaction=transaction, entity="transaction",
                       new_status=transaction.trade_state, request=txn, detail=f"source={source}")
    uow.payment_applied(source)
    # The seat: a pending order's temporary hold claims one of the session's confirmed seats, if any is left (the
    # counter's conditional UPDATE, in the same statement as the confirmation, is the decision and the lock).
    # Otherwise the payment has no seat to give.
    if reservation is not None and order.status == "pending" and reservation.status == "temporary":
        await queue_booking_notice(settings, order)  # before the seat is claimed: the session's lock is held less
        if await confirm_booking(uow, order, reservation, txn["transaction_id"], actor, source, txn, now):
            return "applied"
        await unqueue_booking_notice(order)
    paid_fields = dict(transaction_id=txn["transaction_id"], paid_at=now)
    if reservation is not None and reservation.status == "temporary":
        await set_reservation_status(uow, reservation, "cancelled", actor, "seat_cancelled", order,
                                     detail="paid but no seat left")
    reason = "no_seat" if order.status == "pending" else f"paid_after_{order.status}"
    await set_order_status(uow, order, "refund_required", actor, "payment_without_seat", reservation=reservation,
                           detail=reason, request=txn, failure_reason=reason, **paid_fields)
    log.warning("order %s paid with no seat to give (%s): refund_required", order.order_id, reason)
    return "no_seat"


# -- refunds ------------------------------------------------------------------------------------------------------

async def refundable_fen(order) -> int:
    """What can still be refunded: the paid amount less every refund not CLOSED or REJECTED."""
    return order.amount_fen - await _sum_refunds(order, REFUND_HOLDING)


async def _sum_refunds(order, statuses) -> int:
    rows = await Refund.select(fn.COALESCE(fn.SUM(Refund.amount_fen), 0).alias("total")).where(
        (Refund.order == order.id) & Refund.status.in_(statuses)).dicts().aio_execute()
    return int(list(rows)[0]["total"] or 0)


async def open_refund(uow, order, amount_fen, reason, operator, idem_key, actor):
    """The first state of a refund (call with the order locked, after checking what is refundable)."""
    now = utcnow()
    refund = Refund(out_refund_no=uuid.uuid4().hex, order=order.id, amount_fen=amount_fen, status="PROCESSING",
                    reason=reason, operator=operator.id, idem_key=idem_key, created_at=now, updated_at=now)
    await refund.aio_save(force_insert=True)
    await audit.record("refund_requested", actor, order=order, refund=refund, entity="refund",
                       new_status="PROCESSING", detail=f"{yuan(amount_fen)} CNY: {reason}",
                       request={"amount_fen": amount_fen, "reason": reason, "out_refund_no": refund.out_refund_no})
    return refund


async def set_refund_status(uow, settings, refund, order, new_status, actor, action, *, detail=None, request=None,
                            **fields):
    """Move the refund to new_status if it is still in its current one; a SUCCESS counts the money back and,
    once the whole amount is back, ends the order `refunded` and frees its seat. Call with the order and the
    refund locked."""
    old = refund.status
    if new_status not in REFUND_TRANSITIONS.get(old, ()):
        raise IllegalTransition(f"refund {refund.out_refund_no}: {old} -> {new_status}")
    changes = {"status": new_status, "updated_at": utcnow(), **fields}
    rows = await Refund.update(**changes).where((Refund.id == refund.id) & (Refund.status == old)).aio_execute()
    if rows != 1:
        raise IllegalTransition(f"refund {refund.out_refund_no} changed under us")
    for key, value in changes.items():
        setattr(refund, key, value)
    await audit.record(action, actor, order=order, refund=refund, entity="refund", old_status=old,
                       new_status=new_status, detail=detail, request=request)
    uow.refund_changed(refund)
    if new_status == "SUCCESS":
        await _money_back(uow, settings, order, refund, actor)


async def _money_back(uow, settings, order, refund, actor):
    refunded = await _sum_refunds(order, ("SUCCESS",))
    await PaymentOrder.update(refunded_fen=refunded, updated_at=utcnow()).where(
        PaymentOrder.id == order.id).aio_execute()
    order.refunded_fen = refunded
    await queue_refund_notice(settings, order, refund)
    if refunded < order.amount_fen or order.status not in REFUNDABLE:
        return
    reservation = await lock_reservation(order)
    if reservation is not None and reservation.status == "confirmed":
        await set_reservation_status(uow, reservation, "cancelled", actor, "seat_cancelled", order,
                                     detail="order refunded")
        uow.seat_released(reservation)
    await set_order_status(uow, order, "refunded", actor, "order_refunded", reservation=reservation,
                           detail=f"{yuan(refunded)} CNY refunded")
