"""Row locks: every decision about an order, its seat or a refund is taken under them.

Lock order, as every path takes them (so no two paths ever wait on each other in a circle):
  1. the order row(s): one order by id or out_trade_no, or all of one parent's live orders in one statement
     (booking); the order's reservation is locked in the same statement (LOCK_BY_*) or right after it;
  2. the rows that hang off a locked order: its reservation, then its refunds (the order's lock already
     serialises every path on them, so their order among themselves cannot deadlock);
  3. the schedule's row (`course_schedules`): by LOCK_SCHEDULE when booking, or by the seat counter's
     conditional UPDATE (CLAIM_SEAT, GIVE_BACK_SEAT, CONFIRM_BOOKING) when a seat is confirmed or given back, or by
     lock_schedule when a freed seat is offered to the waitlist. A capacity change, joining or leaving a waitlist
     and the waitlist's own job start here, with no order locked. Where two schedules' rows are needed (a
     reschedule), the lower id first.
  4. last of all, the schedule's waitlist entries (`waitlist_entries`), only ever with that schedule's row locked:
     every decision about a kept seat (offer, lapse, take, leave) is taken under the schedule's lock.
"""
from __future__ import annotations

from types import SimpleNamespace

from models import CourseSchedule, PaymentOrder, Refund, SeatReservation, WaitlistEntry
from models.prepared import Prepared

from ..leases import LeaseLost
from .statuses import TRIAL_HOLDING, WAITLIST_LIVE, sql_in

ORDER_COLUMNS = ("id", "order_id", "user_id", "course_schedule_id", "amount_fen", "currency", "status",
                 "trade_type", "transaction_id", "prepay_id", "code_url", "description", "expires_at", "updated_at",
                 "lease_owner", "refunded_fen", "failure_reason", "created_at", "paid_at")
RESERVATION_COLUMNS = ("r_id", "reservation_id", "r_status", "payment_started", "r_expires_at", "confirmed_at")
_O, _R = PaymentOrder, SeatReservation
_RES_FIELDS = [_R.id, _R.reservation_id, _R.status, _R.payment_started, _R.expires_at, _R.confirmed_at]


# The order columns a payment start and a booking decide on (the hot reads select only these: MySQL sends a column
# definition per selected column with every answer, empty or not, and PyMySQL parses each one in Python — at 25
# columns that was a tenth of an order flow's CPU). The slow paths re-read or lock the whole row.
DECISION_COLUMNS = ("id", "order_id", "user_id", "course_schedule_id", "amount_fen", "status", "trade_type",
                    "prepay_id", "code_url", "description", "expires_at")


def _order_field(column):
    return getattr(_O, column if not column.endswith("_id") or column in ("order_id", "transaction_id", "prepay_id")
                   else column[:-3])


_ORDER_FIELDS = [_order_field(c) for c in ORDER_COLUMNS]


def with_reservation(*extra_fields, columns=ORDER_COLUMNS):
    """SELECT the order's `columns` (ORDER_COLUMNS unless named) and its reservation's RESERVATION_COLUMNS (a LEFT
    JOIN), plus extra."""
    fields = _ORDER_FIELDS if columns is ORDER_COLUMNS else [_order_field(c) for c in columns]
    return (PaymentOrder.select(*fields, *_RES_FIELDS, *extra_fields)
            .join(SeatReservation, join_type="LEFT OUTER JOIN", on=(SeatReservation.order == PaymentOrder.id)))


# The order and its reservation, both locked (step 1).
LOCK_BY_OUT_TRADE_NO = Prepared.of(with_reservation().where(PaymentOrder.order_id == "?").for_update(),
                                   ORDER_COLUMNS + RESERVATION_COLUMNS)
LOCK_BY_PK = Prepared.of(with_reservation().where(PaymentOrder.id == "?").for_update(),
                         ORDER_COLUMNS + RESERVATION_COLUMNS)
# The same, only while the given lease token still holds the order (the fencing check of leases.Lease.held).
LOCK_BY_PK_LEASED = Prepared(LOCK_BY_PK.sql.replace(
    " FOR UPDATE", " AND (`t1`.`lease_owner` = %s) AND (`t1`.`lease_until` > UTC_TIMESTAMP(6)) FOR UPDATE"),
    ORDER_COLUMNS + RESERVATION_COLUMNS)
# One parent's live orders (the trial-holding ones) with their reservations, locked: one trial, one open order
# (DECISION_COLUMNS of the order: a booking that answers with one of them reads it whole).
LIVE_ORDERS = Prepared(Prepared.of(with_reservation(columns=DECISION_COLUMNS).where(PaymentOrder.user == "?")
                                   .for_update()).sql.replace(
    " FOR UPDATE", f" AND {sql_in('`t1`.`status`', TRIAL_HOLDING)} FOR UPDATE"), DECISION_COLUMNS + RESERVATION_COLUMNS)
# The schedule's row (step 3), when booking.
LOCK_SCHEDULE = Prepared.of(
    CourseSchedule.select(CourseSchedule.id, CourseSchedule.title, CourseSchedule.starts_at, CourseSchedule.capacity)
    .where(CourseSchedule.id == 0).for_update(), ("id", "title", "starts_at", "capacity"))


def split(row):
    """(order, reservation) objects from a row of ORDER_COLUMNS + RESERVATION_COLUMNS (reservation None if none)."""
    if row is None:
        return None, None
    reservation = None
    if row.r_id is not None:
        reservation = SimpleNamespace(id=row.r_id, reservation_id=row.reservation_id, status=row.r_status,
                                      payment_started=bool(row.payment_started), expires_at=row.r_expires_at,
                                      confirmed_at=row.confirmed_at, order_id=row.id)
    return row, reservation


async def lock_order(order_pk: int, lease=None) -> PaymentOrder:
    """The order row, locked (step 1); with `lease`, only while that lease still holds it (else LeaseLost)."""
    query = PaymentOrder.select().where(PaymentOrder.id == order_pk)
    if lease is None:
        return await query.for_update().aio_get()
    order = await query.where(lease.held()).for_update().aio_first()
    if order is None:
        raise LeaseLost(f"order {order_pk}: lease lost")
    return order


async def lock_order_with_reservation(order_pk: int, lease=None):
    """(order, reservation), both locked in one statement (step 1); with `lease`, only while it holds the order."""
    row = await (LOCK_BY_PK_LEASED.first(order_pk, lease.token) if lease is not None else LOCK_BY_PK.first(order_pk))
    if row is None:
        raise LeaseLost(f"order {order_pk}: lease lost") if lease is not None else LookupError(order_pk)
    return split(row)


async def lock_reservation(order) -> SeatReservation | None:
    """The locked order's reservation row, locked (step 2)."""
    return await SeatReservation.select().where(SeatReservation.order == order.id).for_update().aio_first()


async def lock_refund(refund_pk: int, lease=None) -> Refund:
    """A refund row of a locked order, locked (step 2); with `lease`, only while that lease still holds it."""
    query = Refund.select().where(Refund.id == refund_pk)
    if lease is not None:
        query = query.where(lease.held())
    refund = await query.for_update().aio_first()
    if refund is None:
        raise LeaseLost(f"refund {refund_pk}: lease lost")
    return refund


async def lock_schedule(schedule_pk: int) -> CourseSchedule | None:
    """The schedule's row, locked (step 3; alone, for a capacity change)."""
    return await CourseSchedule.select().where(CourseSchedule.id == schedule_pk).for_update().aio_first()


async def lock_schedules(*schedule_pks) -> dict:
    """Several schedules' rows, locked lowest id first (step 3); {id: schedule} of those that exist."""
    found = {}
    for pk in sorted(set(schedule_pks)):
        schedule = await lock_schedule(pk)
        if schedule is not None:
            found[pk] = schedule
    return found


async def lock_live_entries(schedule_pk: int) -> list[WaitlistEntry]:
    """The schedule's waitlist entries still in the line, first in line first, locked (step 4: the schedule's row
    is locked already)."""
    return list(await WaitlistEntry.select().where(
        (WaitlistEntry.course_schedule == schedule_pk) & WaitlistEntry.status.in_(WAITLIST_LIVE))
        .order_by(WaitlistEntry.id).for_update().aio_execute())


async def lock_entry(entry_pk: int) -> WaitlistEntry | None:
    """One waitlist entry, locked (step 4: its schedule's row is locked already)."""
    return await WaitlistEntry.select().where(WaitlistEntry.id == entry_pk).for_update().aio_first()


async def lock_by_reservation_id(reservation_id: str):
    """(order, reservation) of a reservation's public id, locked in the lock order (the order first, step 1, then
    its reservation, step 2); (None, None) when unknown."""
    seen = await SeatReservation.select(SeatReservation.order).where(
        SeatReservation.reservation_id == reservation_id).aio_first()
    if seen is None:
        return None, None
    order = await PaymentOrder.select().where(PaymentOrder.id == seen.order_id).for_update().aio_get()
    return order, await lock_reservation(order)
