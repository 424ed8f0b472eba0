"""Rescheduling a paid booking to another upcoming session (contract §2 Operators): one transaction, audited, the
parent told with a subscribe message, the seat left behind offered to that session's waitlist."""
from __future__ import annotations

import errors
from models import PaymentOrder, SeatReservation, utcnow

from ..accounts import roles
from ..backoffice import queries
from ..formats import is_order_id
from ..lifecycle.bookings import move_booking
from ..lifecycle.locks import lock_order_with_reservation, lock_schedules
from ..lifecycle.seats import SEATS_TAKEN
from ..lifecycle.statuses import ATTENDED, CONFIRMED, PAID
from ..lifecycle.waitlist import offer_free_seats
from ..orders import alternatives
from ..orders.booking import parse_schedule_id
from ..uow import run_in_transaction

SOLD_OUT = object()  # the target was full: SOLD_OUT is raised, with its alternatives, after the transaction


def not_reschedulable(why="该订单不能改期"):
    """409 ORDER_NOT_RESCHEDULABLE."""
    return errors.ServiceError(409, "ORDER_NOT_RESCHEDULABLE", why)


async def _reschedule(uow, order_pk, target_id, actor):
    now = utcnow()
    order, reservation = await lock_order_with_reservation(order_pk)
    if order.status != PAID or reservation is None or reservation.status != CONFIRMED:
        raise not_reschedulable("只有已支付且座位已确认的订单可以改期")
    seat = await SeatReservation.select(SeatReservation.attendance).where(SeatReservation.id == reservation.id).aio_get()
    if seat.attendance == ATTENDED:
        raise not_reschedulable("该预约已登记到课，不能改期")
    if target_id == order.course_schedule_id:
        raise errors.invalid_request("请选择另一个课程", field="course_schedule_id")
    locked = await lock_schedules(order.course_schedule_id, target_id)
    target = locked.get(target_id)
    if target is None:
        raise errors.not_found("课程不存在")
    if target.starts_at <= now:
        raise errors.invalid_request("只能改到未开始的课程", field="course_schedule_id")
    await offer_free_seats(uow, target.id, now)  # a seat come free there belongs to its line first
    taken, _ = (await SEATS_TAKEN.rows(now, target.id))[0]
    if taken >= target.capacity or not await move_booking(uow, order, reservation, locked[order.course_schedule_id],
                                                          target, actor):
        return SOLD_OUT
    return order


async def reschedule(ctx, order_id: str, body: dict, actor, role: str) -> dict:
    """POST /api/v1/admin/orders/{order_id}/reschedule: the admin order, now on the session asked for, as `role`
    may see it."""
    target_id = parse_schedule_id(body.get("course_schedule_id"))
    order = await PaymentOrder.select(PaymentOrder.id, PaymentOrder.course_schedule).where(
        PaymentOrder.order_id == order_id).aio_first() if is_order_id(order_id) else None
    if order is None:
        raise errors.not_found("订单不存在")
    result = await run_in_transaction(ctx, _reschedule, order.id, target_id, actor)
    if result is SOLD_OUT:
        raise await alternatives.sold_out(target_id, leave_out=order.course_schedule_id)
    [view] = await queries.admin_orders([await PaymentOrder.aio_get(PaymentOrder.id == order.id)])
    return roles.visible_order(role, view)
