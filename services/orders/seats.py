"""Row locks and seat counting: every decision about an order, its seat or a refund is taken under these locks.

Lock order, always: schedule, then order, then reservation, then refund (a path that needs several takes them in
this order, so two paths never wait on each other).
"""
from __future__ import annotations

from peewee import fn

from models import CourseSchedule, PaymentOrder, Refund, SeatReservation, utcnow

from ..leases import LeaseLost


async def lock_schedule(schedule_pk: int) -> CourseSchedule | None:
    """The schedule row, locked: every decision about its seats is taken under this lock."""
    return await CourseSchedule.select().where(CourseSchedule.id == schedule_pk).for_update().aio_first()


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


async def lock_refund(refund_pk: int, lease=None) -> Refund:
    """The refund row, locked; with `lease`, only while that lease still holds it."""
    query = Refund.select().where(Refund.id == refund_pk)
    if lease is not None:
        query = query.where(lease.held())
    refund = await query.for_update().aio_first()
    if refund is None:
        raise LeaseLost(f"refund {refund_pk}: lease lost")
    return refund


def lapsed_hold_condition(now):
    """SQL: a temporary hold that never got a WeChat Pay order and whose time has run out."""
    return ((SeatReservation.status == "temporary") & (SeatReservation.payment_started == False)  # noqa: E712
            & (SeatReservation.expires_at <= now))


def hold_lapsed(reservation, now) -> bool:
    """The same as lapsed_hold_condition, for a reservation already read."""
    return (reservation is not None and reservation.status == "temporary" and not reservation.payment_started
            and reservation.expires_at <= now)


def seat_taking_condition(now):
    """SQL: reservations that occupy a seat now — confirmed, or a temporary hold that has not lapsed.

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


async def seats_confirmed(schedule_pk: int, exclude_reservation_pk=None) -> int:
    """How many seats of the schedule are confirmed (read after the schedule lock)."""
    query = SeatReservation.select().where((SeatReservation.course_schedule == schedule_pk)
                                           & (SeatReservation.status == "confirmed"))
    if exclude_reservation_pk is not None:
        query = query.where(SeatReservation.id != exclude_reservation_pk)
    return await query.aio_count()


async def taken_by_schedule(schedule_ids) -> dict:
    """Seats confirmed or held now, per schedule id (one query)."""
    if not schedule_ids:
        return {}
    rows = await (SeatReservation
                  .select(SeatReservation.course_schedule, fn.COUNT(SeatReservation.id).alias("n"))
                  .where(SeatReservation.course_schedule.in_(list(schedule_ids)) & seat_taking_condition(utcnow()))
                  .group_by(SeatReservation.course_schedule).dicts().aio_execute())
    return {row["course_schedule"]: row["n"] for row in rows}
