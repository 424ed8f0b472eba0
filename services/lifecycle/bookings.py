"""The front desk's changes to a paid booking: moved to another session (a reschedule), and attendance marked once
its session started. Each writes its audit rows in the caller's transaction; no status changes (a rescheduled
order stays `paid`, its seat `confirmed`).

Reschedule: under the order's lock (step 1) and its reservation's (2), both schedules' rows (3, lower id first):
the seat is given back on the old session and claimed on the new one by the confirmed-seat counter, the order and
its reservation name the new session, and the old seat goes to the old session's waitlist (4) — one transaction.
"""
from __future__ import annotations

from models import SeatReservation, utcnow
from models.prepared import Prepared

from .. import audit
from ..formats import iso
from ..messages.subscribe_messages import queue_reschedule_message
from .seats import CLAIM_SEAT, GIVE_BACK_SEAT
from .statuses import CONFIRMED, PAID, IllegalTransition
from .waitlist import offer_free_seats

# The confirmed seat moves (the caller holds the order, the reservation and both schedules locked).
# Parameters: new schedule id, now, reservation id.
MOVE_SEAT = Prepared(f"UPDATE `seat_reservations` SET `course_schedule_id` = %s, `attendance` = NULL, "
                     f"`attendance_at` = NULL, `updated_at` = %s WHERE `id` = %s AND `status` = '{CONFIRMED}'")
# Parameters: new schedule id, now, order id.
MOVE_ORDER = Prepared(f"UPDATE `payment_orders` SET `course_schedule_id` = %s, `updated_at` = %s "
                      f"WHERE `id` = %s AND `status` = '{PAID}'")


async def move_booking(uow, order, reservation, old, new, actor) -> bool:
    """Move a paid, confirmed booking from schedule `old` to `new` (all four rows locked); False, and nothing
    changed, when `new` has no confirmed seat left under its capacity."""
    if order.status != PAID or reservation is None or reservation.status != CONFIRMED:
        raise IllegalTransition(f"order {order.order_id}: {order.status} cannot be rescheduled")
    if await CLAIM_SEAT.execute(new.id) != 1:
        return False
    now = utcnow()
    await GIVE_BACK_SEAT.execute(old.id)
    if await MOVE_SEAT.execute(new.id, now, reservation.id) != 1 or await MOVE_ORDER.execute(new.id, now,
                                                                                             order.id) != 1:
        raise IllegalTransition(f"order {order.order_id} changed under us")
    order.course_schedule_id, order.updated_at = new.id, now
    detail = f"schedule {old.id} ({old.title}, {iso(old.starts_at)}) -> schedule {new.id} ({new.title}, " \
             f"{iso(new.starts_at)})"
    await audit.record("order_rescheduled", actor, order=order, old_status=PAID, new_status=PAID, detail=detail)
    await audit.record("seat_moved", actor, order=order, entity="reservation", old_status=CONFIRMED,
                       new_status=CONFIRMED, detail=f"reservation {reservation.reservation_id}: {detail}")
    await queue_reschedule_message(uow.settings, order, now)
    uow.message_queued()
    uow.order_changed(order, reservation)
    await offer_free_seats(uow, old.id, now)  # the seat left behind goes to the old session's line
    return True


# Parameters: attendance (or NULL), its time (or NULL), now, reservation id.
MARK_ATTENDANCE = Prepared(f"UPDATE `seat_reservations` SET `attendance` = %s, `attendance_at` = %s, `updated_at` = %s "
                           f"WHERE `id` = %s AND `status` = '{CONFIRMED}'")


async def mark_attendance(uow, order, reservation: SeatReservation, attendance, actor):
    """Record (or clear, with None) whether the parent's child came, on a confirmed seat (order and reservation
    locked). Audited with the old and new marks (entity `attendance`: not a status of the reservation)."""
    old = reservation.attendance
    now = utcnow()
    if await MARK_ATTENDANCE.execute(attendance, now if attendance else None, now, reservation.id) != 1:
        raise IllegalTransition(f"reservation {reservation.reservation_id} is no longer confirmed")
    reservation.attendance, reservation.attendance_at = attendance, now if attendance else None
    await audit.record("attendance_marked", actor, order=order, entity="attendance", old_status=old,
                       new_status=attendance, detail=f"reservation {reservation.reservation_id}: "
                                                     f"{old or 'unmarked'} -> {attendance or 'unmarked'}")
