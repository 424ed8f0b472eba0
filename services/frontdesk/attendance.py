"""Attendance on the roster (contract §2 Operators): a confirmed seat of a session that has started is marked
attended or no-show (or cleared), audited; and the no-show rate the home page shows."""
from __future__ import annotations

import datetime as dt

from peewee import fn

import errors
from models import CourseSchedule, SeatReservation, utcnow

from ..backoffice import queries
from ..formats import is_order_id
from ..lifecycle.bookings import mark_attendance
from ..lifecycle.locks import lock_by_reservation_id
from ..lifecycle.statuses import ATTENDANCE, ATTENDED, CONFIRMED, NO_SHOW
from ..uow import run_in_transaction

RATE_DAYS = 30


def not_markable(why):
    """409 ATTENDANCE_NOT_ALLOWED: the seat is not a confirmed one of a session that has started."""
    return errors.ServiceError(409, "ATTENDANCE_NOT_ALLOWED", why)


def parse_attendance(body: dict):
    """`attendance`: attended, no_show or null (clears the mark); 400 otherwise (the field must be there)."""
    if "attendance" not in body:
        raise errors.invalid_request("attendance 必填（attended、no_show 或 null）", field="attendance")
    value = body["attendance"]
    if value is not None and value not in ATTENDANCE:
        raise errors.invalid_request("attendance 必须是 attended、no_show 或 null", field="attendance")
    return value


async def _mark(uow, reservation_id, attendance, actor):
    order, reservation = await lock_by_reservation_id(reservation_id)
    if reservation is None:
        raise errors.not_found("预约不存在")
    if reservation.status != CONFIRMED:
        raise not_markable("只有已确认的预约可以登记到课")
    schedule = await CourseSchedule.select(CourseSchedule.starts_at).where(
        CourseSchedule.id == reservation.course_schedule_id).aio_get()
    if schedule.starts_at > utcnow():
        raise not_markable("课程开始后才能登记到课")
    if reservation.attendance != attendance:
        await mark_attendance(uow, order, reservation, attendance, actor)
    return reservation.id


async def mark(ctx, reservation_id: str, body: dict, actor) -> dict:
    """PATCH /api/v1/admin/reservations/{reservation_id}: the roster item, its attendance as now marked."""
    attendance = parse_attendance(body)
    if not is_order_id(reservation_id):  # the same 32-hex shape as an order id
        raise errors.not_found("预约不存在")
    reservation_pk = await run_in_transaction(ctx, _mark, reservation_id, attendance, actor)
    return await queries.roster_item(reservation_pk)


async def no_show_rate(now=None) -> dict:
    """Of the seats marked in sessions that started in the last RATE_DAYS days: how many were no-shows."""
    now = now or utcnow()
    since = now - dt.timedelta(days=RATE_DAYS)
    rows = await (SeatReservation.select(SeatReservation.attendance, fn.COUNT(SeatReservation.id).alias("n"))
                  .join(CourseSchedule, on=(SeatReservation.course_schedule == CourseSchedule.id))
                  .where((SeatReservation.status == CONFIRMED) & SeatReservation.attendance.is_null(False)
                         & CourseSchedule.starts_at.between(since, now))
                  .group_by(SeatReservation.attendance).dicts().aio_execute())
    counts = {row["attendance"]: row["n"] for row in rows}
    marked = counts.get(ATTENDED, 0) + counts.get(NO_SHOW, 0)
    return {"days": RATE_DAYS, "marked": marked, "no_show": counts.get(NO_SHOW, 0),
            "rate": (counts.get(NO_SHOW, 0) / marked) if marked else None}
