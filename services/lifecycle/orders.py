"""The order and its seat reservation: every status change of either, each with its audit row, and the SQL of each
transition beside it (the hot paths' one-statement forms are these transitions' implementations, not copies).

Order:       (new) -> pending -> paid | refund_required | cancelled | failed | expired
             cancelled | failed | expired -> refund_required      (a payment that arrives after all)
             paid | refund_required -> refunded                   (services.lifecycle.refunds)
Reservation: (new) -> temporary -> confirmed | cancelled | expired;  confirmed -> cancelled (refunded)
             cancelled | expired -> confirmed                     (a late payment finds its seat free)
Payment start (no status change): a pending order's temporary hold gets a WeChat Pay order and lasts to the order's
end (start_payment).

Callers run these inside services.uow.run_in_transaction holding the row locks of services.lifecycle.locks; each
change is a conditional UPDATE on the old status, so a change that lost a race raises IllegalTransition and rolls
back.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal
from types import SimpleNamespace

import errors
from models import PaymentOrder, SeatReservation, utcnow
from models.prepared import Prepared

from .. import audit
from ..formats import iso, parse_iso, yuan
from ..messages.subscribe_messages import queue_booking_message, queue_ending_message, unqueue_booking_message
from .locks import lock_reservation
from .seats import CLAIM_SEAT, GIVE_BACK_SEAT, hold_lapsed, hold_lapsed_sql
from .statuses import (
    CANCELLED, CONFIRMED, EXPIRED, FAILED, ORDER_TRANSITIONS, PAID, PENDING, REFUND_REQUIRED,
    RESERVATION_TRANSITIONS, TEMPORARY, TRIAL_HOLDING, IllegalTransition, check,
)
from .transactions import check_transaction, record_transaction
from .waitlist import seat_freed

log = logging.getLogger("gym.lifecycle")


# -- the first state ------------------------------------------------------------------------------------------------

INSERT_ORDER = Prepared(
    "INSERT INTO `payment_orders` (`order_id`, `user_id`, `course_schedule_id`, `amount`, `amount_fen`, `currency`, "
    "`status`, `payment_method`, `description`, `trial_slot`, `refunded_fen`, `check_failures`, `created_at`, "
    f"`updated_at`, `expires_at`) VALUES (%s, %s, %s, %s, %s, 'CNY', '{PENDING}', 'wechat_pay', %s, %s, 0, 0, %s, %s, "
    "%s)")
INSERT_RESERVATION = Prepared(
    "INSERT INTO `seat_reservations` (`reservation_id`, `order_id`, `course_schedule_id`, `user_id`, `seat_count`, "
    "`status`, `payment_started`, `expires_at`, `created_at`, `updated_at`) "
    f"VALUES (%s, %s, %s, %s, 1, '{TEMPORARY}', 0, %s, %s, %s)")
# Both in one round trip: the hold names the order just inserted by LAST_INSERT_ID(), kept in a user variable of the
# connection for the audit rows that may follow in the same packet. Parameters: INSERT_ORDER's, then
# INSERT_RESERVATION's without the order id.
NEW_ORDER = "@gym_new_order"
INSERT_ORDER_AND_HOLD = Prepared(INSERT_ORDER.sql + f";SET {NEW_ORDER} = LAST_INSERT_ID();" +
                                 INSERT_RESERVATION.sql.replace("VALUES (%s, %s, ", f"VALUES (%s, {NEW_ORDER}, ", 1))


async def open_order(uow, settings, user_id, schedule, actor, request_snapshot, now, last=False):
    """The first state: a pending order for one trial seat and its temporary hold (SEAT_HOLD_SECONDS).

    `last`: nothing follows in the transaction, so (when no other audit row waits to be flushed) the order, its hold,
    their audit rows and the COMMIT go in one round trip."""
    price = settings.trial_price_fen
    order = SimpleNamespace(
        id=None, order_id=uuid.uuid4().hex, user_id=user_id, course_schedule_id=schedule.id, amount_fen=price,
        currency="CNY", status=PENDING, description=f"体验课 {schedule.title}"[:127], trade_type=None, transaction_id=None,
        prepay_id=None, code_url=None, refunded_fen=0, failure_reason=None, paid_at=None, created_at=now,
        updated_at=now, expires_at=now + dt.timedelta(seconds=settings.order_expire_seconds))
    reservation = SimpleNamespace(
        reservation_id=uuid.uuid4().hex, status=TEMPORARY, payment_started=False,
        expires_at=now + dt.timedelta(seconds=settings.seat_hold_seconds), confirmed_at=None)
    params = (order.order_id, user_id, schedule.id, Decimal(price) / 100, price, order.description, user_id, now, now,
              order.expires_at, reservation.reservation_id, schedule.id, user_id, reservation.expires_at, now, now)
    rows = [("order_created", dict(entity="order", new_status=PENDING, request=request_snapshot,
                                   detail=f"schedule {schedule.id}, {yuan(price)} CNY")),
            ("seat_held", dict(entity="reservation", new_status=TEMPORARY,
                               detail=f"reservation {reservation.reservation_id} until {iso(reservation.expires_at)}"))]
    tx = uow.ending() if last else None
    if tx is not None:  # the audit rows name the order by the id the packet's first INSERT made
        audit_sql, audit_params = audit.inline([audit.row(action, actor, order=order, **fields)
                                                for action, fields in rows], NEW_ORDER)
        placed, _, held, _ = await Prepared(INSERT_ORDER_AND_HOLD.sql + ";" + audit_sql).each(
            *params, *audit_params, last_of=tx)
    else:
        placed, _, held = await INSERT_ORDER_AND_HOLD.each(*params)
    order.id, reservation.id = placed.lastrowid, held.lastrowid
    reservation.order_id = order.id
    if tx is None:
        for action, fields in rows:
            await audit.record(action, actor, order=order, **fields)
    # No status push: nobody can be subscribed to an order that did not exist, and a subscriber gets the order's
    # state from MySQL when it subscribes (realtime/ws.py).
    return order, reservation


# -- starting payment -----------------------------------------------------------------------------------------------

def payable_problem(order, reservation, trade_type, now) -> str | None:
    """Why the order cannot be paid now with `trade_type` (the Chinese message for 409 ORDER_NOT_PAYABLE), or None.

    PAYABLE_SQL below says the same in SQL (tests/orders/test_seat_rule.py holds them together).
    """
    if order.status != PENDING:
        return "订单已不是待支付状态"
    if order.trade_type and order.trade_type != trade_type:
        return "该订单已选择另一种支付方式"
    if order.expires_at <= now:
        return "订单已过期"
    if reservation is None or reservation.status != TEMPORARY:
        return "座位保留已失效"
    if hold_lapsed(reservation, now):
        return "座位保留已过期，请重新下单"
    return None


# payable_problem in SQL, on the order `o` and its reservation `r`; parameters: now, trade_type, now.
PAYABLE_SQL = (f"o.`status` = '{PENDING}' AND o.`expires_at` > %s AND (o.`trade_type` IS NULL OR o.`trade_type` = %s) "
               f"AND r.`status` = '{TEMPORARY}' AND NOT {hold_lapsed_sql('r')}")

_ORDER_AND_HOLD = "UPDATE `payment_orders` o JOIN `seat_reservations` r ON r.`order_id` = o.`id` "
_STARTED = ("o.`trade_type` = %s, o.`payment_started_at` = COALESCE(o.`payment_started_at`, %s), o.`updated_at` = %s, "
            "r.`payment_started` = 1, r.`expires_at` = o.`expires_at`, r.`updated_at` = %s ")
# The payment starts (the caller holds the order's lease and both rows locked): the hold lasts to the order's end.
# Parameters: trade_type, now x3, order id, reservation id; 2 rows when both moved.
START = Prepared(_ORDER_AND_HOLD + "SET " + _STARTED +
                 f"WHERE o.`id` = %s AND o.`status` = '{PENDING}' AND r.`id` = %s AND r.`status` = '{TEMPORARY}'")
# The usual prepay in one statement: the order's lease claimed and the payment started, only if the order is
# payable and its lease free. Parameters: token, lease microseconds, trade_type, now x3, order id, reservation id,
# then PAYABLE_SQL's (now, trade_type, now); 2 rows when all of that held.
CLAIM_AND_START = Prepared(
    _ORDER_AND_HOLD + "SET o.`lease_owner` = %s, o.`lease_until` = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND, "
    + _STARTED + "WHERE o.`id` = %s AND r.`id` = %s AND (o.`lease_until` IS NULL OR o.`lease_until` <= "
    "UTC_TIMESTAMP(6)) AND " + PAYABLE_SQL)


async def start_payment(uow, order, reservation, trade_type, actor, now, *, claim_lease=None) -> bool:
    """The payment starts: the hold lasts until the order's end and no longer lapses by time alone.

    With `claim_lease`, the order's lease is claimed in the same statement (the usual prepay): False when the
    lease is busy or the order not payable, and nothing changed (the caller then claims the lease and calls again).
    Without it the caller holds the lease and both rows locked: 409 ORDER_NOT_PAYABLE when the order cannot be paid.
    """
    first = not reservation.payment_started
    if claim_lease is not None:
        params = (claim_lease.token, int(claim_lease.seconds * 1_000_000), trade_type, now, now, now, order.id,
                  reservation.id, now, trade_type, now)
        if first:  # the claim and its audit row (written only if both rows moved) end the transaction, COMMIT too
            action, who, fields = _payment_started(order, trade_type, actor)
            audit_sql, audit_params = audit.guarded(2, action, who, **fields)
            claimed, _ = await Prepared(CLAIM_AND_START.sql + ";" + audit_sql).each(*params, *audit_params,
                                                                                     last_of=uow.ending())
            rows = claimed.rowcount
        else:
            rows = await CLAIM_AND_START.execute(*params)
        if rows != 2:
            return False
        order.trade_type = trade_type
        reservation.payment_started, reservation.expires_at = True, order.expires_at
        return True
    else:
        problem = payable_problem(order, reservation, trade_type, now)
        if problem:
            raise errors.order_not_payable(problem)
        if not first:
            return True
        if await START.execute(trade_type, now, now, now, order.id, reservation.id) != 2:
            raise IllegalTransition(f"order {order.order_id} changed under us")
    order.trade_type = trade_type
    reservation.payment_started, reservation.expires_at = True, order.expires_at
    if first:
        action, who, fields = _payment_started(order, trade_type, actor)
        await audit.record(action, who, **fields)
    return True


def _payment_started(order, trade_type, actor):
    """The payment start's audit row: (action, actor, fields)."""
    return "payment_started", actor, dict(order=order, entity="reservation", old_status=TEMPORARY,
                                          new_status=TEMPORARY, detail=f"{trade_type}; hold extended to the order's end")


# -- status changes -------------------------------------------------------------------------------------------------

async def set_order_status(uow, order, new_status, actor, action, *, reservation=None, detail=None,
                           request=None, response=None, **fields):
    """Move the order to new_status if it is still in its current one; writes the audit row."""
    old = order.status
    check(ORDER_TRANSITIONS, "order", order.order_id, old, new_status)
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
    """Move the reservation to new_status if it is still in its current one, the schedule's confirmed-seat counter
    with it; writes the audit row."""
    old = reservation.status
    check(RESERVATION_TRANSITIONS, "reservation", reservation.reservation_id, old, new_status)
    now = utcnow()
    changes = {"status": new_status, "updated_at": now, **fields}
    if new_status in (CANCELLED, EXPIRED):
        changes.setdefault("released_at", now)
    rows = await SeatReservation.update(**changes).where(
        (SeatReservation.id == reservation.id) & (SeatReservation.status == old)).aio_execute()
    if rows != 1:
        raise IllegalTransition(f"reservation {reservation.reservation_id} changed under us")
    if old == CONFIRMED:
        await GIVE_BACK_SEAT.execute(order.course_schedule_id)
    elif new_status == CONFIRMED and await CLAIM_SEAT.execute(order.course_schedule_id) != 1:
        raise IllegalTransition(f"reservation {reservation.reservation_id}: no confirmed seat left")
    for key, value in changes.items():
        setattr(reservation, key, value)
    await audit.record(action, actor, order=order, entity="reservation", old_status=old, new_status=new_status,
                       detail=detail or f"reservation {reservation.reservation_id}")


async def end_order(uow, order, new_status, reason, actor, action, request=None, response=None):
    """End a pending order (cancelled / failed / expired) and free its seat at once (kept for the waitlist's next
    in line, if anyone waits). A failed or expired order's parent is told (支付失败 / 订单已过期, queued in this
    transaction); a cancelled one was the parent's own act."""
    reservation = await lock_reservation(order)
    released = reservation is not None and reservation.status == TEMPORARY
    if released:
        seat_status = EXPIRED if new_status == EXPIRED else CANCELLED
        await set_reservation_status(uow, reservation, seat_status, actor, f"seat_{seat_status}", order,
                                     detail=f"seat released: {reason}")
        uow.seat_released(reservation)
    await set_order_status(uow, order, new_status, actor, action, reservation=reservation, detail=reason,
                           failure_reason=reason, request=request, response=response)
    if new_status == FAILED:
        uow.payment_failed(reason)
    if new_status in (FAILED, EXPIRED):
        await queue_ending_message(uow.settings, order)
        uow.message_queued()
    if released:
        await seat_freed(uow, order.course_schedule_id)
    return reservation


# pending order + temporary hold -> paid + confirmed, and one of the schedule's confirmed seats claimed, in one
# statement: 3 rows when all moved, 0 when the schedule has no confirmed seat left (the order and hold being locked
# and checked before). The schedule's row is locked last (lock order step 3), for as little time as the transaction
# has left. Parameters: transaction_id, now x4, order id, reservation id.
CONFIRM_BOOKING = Prepared(
    _ORDER_AND_HOLD + "JOIN `course_schedules` s ON s.`id` = o.`course_schedule_id` "
    f"SET o.`status` = '{PAID}', o.`trial_slot` = o.`user_id`, o.`transaction_id` = %s, o.`paid_at` = %s, "
    f"o.`updated_at` = %s, r.`status` = '{CONFIRMED}', r.`confirmed_at` = %s, r.`updated_at` = %s, "
    "s.`confirmed_seats` = s.`confirmed_seats` + 1 "
    f"WHERE o.`id` = %s AND o.`status` = '{PENDING}' AND r.`id` = %s AND r.`status` = '{TEMPORARY}' "
    "AND s.`confirmed_seats` < s.`capacity`")


async def confirm_booking(uow, order, reservation, transaction_id, actor, source, txn, now, paid_at) -> bool:
    """pending + temporary -> paid + confirmed with one of the schedule's confirmed seats, in one statement; False
    (nothing changed) when the schedule has no confirmed seat left. Call with the order and its hold locked."""
    if order.status != PENDING or reservation.status != TEMPORARY:
        raise IllegalTransition(f"order {order.order_id}: {order.status}/{reservation.status} -> paid/confirmed")
    rows = await CONFIRM_BOOKING.execute(transaction_id, paid_at, now, now, now, order.id, reservation.id)
    if rows == 0:
        return False
    if rows != 3:
        raise IllegalTransition(f"order {order.order_id} changed under us")
    await audit.record("seat_confirmed", actor, order=order, entity="reservation", old_status=reservation.status,
                       new_status=CONFIRMED, detail=f"reservation {reservation.reservation_id}")
    await audit.record("payment_succeeded", actor, order=order, old_status=order.status, new_status=PAID,
                       detail=f"source={source}", request=txn)
    order.status, order.transaction_id, order.paid_at, order.updated_at = PAID, transaction_id, paid_at, now
    reservation.status, reservation.confirmed_at = CONFIRMED, now
    uow.order_changed(order, reservation)
    return True


def paid_at_of(txn: dict, now):
    """When the money was taken, as naive UTC: WeChat Pay's success_time (it decides the payment's bill day, contract
    §2), or `now` when the transaction carries none we can read."""
    try:
        return parse_iso(txn.get("success_time"))
    except (ValueError, TypeError):
        return now


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
    paid_at = paid_at_of(txn, now)
    transaction = await record_transaction(order, txn, source, now)
    await audit.record("transaction_recorded", actor, order=order, transaction=transaction, entity="transaction",
                       new_status=transaction.trade_state, request=txn, detail=f"source={source}")
    uow.payment_applied(source)
    # The seat: a pending order's temporary hold claims one of the schedule's confirmed seats, if any is left (the
    # counter's conditional UPDATE, in the same statement as the confirmation, is the decision and the lock).
    # Otherwise the payment has no seat to give.
    if reservation is not None and order.status == PENDING and reservation.status == TEMPORARY:
        await queue_booking_message(settings, order)  # before the seat is claimed: the schedule's lock is held less
        if await confirm_booking(uow, order, reservation, txn["transaction_id"], actor, source, txn, now, paid_at):
            return "applied"
        await unqueue_booking_message(order)
    if reservation is not None and reservation.status == TEMPORARY:
        await set_reservation_status(uow, reservation, CANCELLED, actor, "seat_cancelled", order,
                                     detail="paid but no seat left")
    reason = "no_seat" if order.status == PENDING else f"paid_after_{order.status}"
    await set_order_status(uow, order, REFUND_REQUIRED, actor, "payment_without_seat", reservation=reservation,
                           detail=reason, request=txn, failure_reason=reason, transaction_id=txn["transaction_id"],
                           paid_at=paid_at)
    log.warning("order %s paid with no seat to give (%s): refund_required", order.order_id, reason)
    return "no_seat"
