"""The seat rule, written once as a Python check and the SQL fragment made beside it, and the schedule's seat counter.

A reservation takes a seat now when it is confirmed, or when it is a temporary hold that has not lapsed. A hold
lapses by its time alone only while no WeChat Pay order exists for it (payment not started): once one exists, only
WeChat Pay's confirmed close releases it (contract §2, Seats). `tests/orders/test_seat_rule.py` holds the Python
and SQL forms against each other over every combination of the columns they read.

The counter: `course_schedules.confirmed_seats` is the number of the schedule's confirmed reservations, kept in step
by every change to or from `confirmed`, in the same transaction, so a payment claims its seat with one conditional
UPDATE instead of counting.
"""
from __future__ import annotations

from peewee import SQL, fn
from peewee_async.aio_model import AioModelSelect

from models import SeatReservation, utcnow
from models.prepared import Prepared

from .statuses import CONFIRMED, TEMPORARY


def hold_lapsed(reservation, now) -> bool:
    """A temporary hold that never got a WeChat Pay order and whose time has run out."""
    return (reservation is not None and reservation.status == TEMPORARY and not reservation.payment_started
            and reservation.expires_at <= now)


def takes_seat(reservation, now) -> bool:
    """The reservation occupies one of its schedule's seats now."""
    return reservation.status == CONFIRMED or (reservation.status == TEMPORARY and not hold_lapsed(reservation, now))


def hold_lapsed_sql(alias: str = "r") -> str:
    """hold_lapsed in SQL, on the seat_reservations row aliased `alias`; one parameter: now."""
    return (f"({alias}.`status` = '{TEMPORARY}' AND {alias}.`payment_started` = 0 "
            f"AND {alias}.`expires_at` <= %s)")


def takes_seat_sql(alias: str = "r") -> str:
    """takes_seat in SQL, on the seat_reservations row aliased `alias`; one parameter: now."""
    return (f"({alias}.`status` = '{CONFIRMED}' OR ({alias}.`status` = '{TEMPORARY}' "
            f"AND ({alias}.`payment_started` = 1 OR {alias}.`expires_at` > %s)))")


# seat_reservations aliased `r` in peewee queries, so that the fragments above apply to them.
R = SeatReservation.alias("r")


def select_reservations(*fields) -> AioModelSelect:
    """A peewee-async SELECT from seat_reservations aliased `r` (`R`), every column unless `fields` are named."""
    return AioModelSelect(R, fields or R.get_field_aliases())


def takes_seat_where(now):
    """takes_seat as a peewee condition on `R`."""
    return SQL(takes_seat_sql("r"), [now])


def hold_lapsed_where(now):
    """hold_lapsed as a peewee condition on `R`."""
    return SQL(hold_lapsed_sql("r"), [now])


# A confirmed seat for a payment: the schedule's counter goes up only while it is under the capacity.
CLAIM_SEAT = Prepared("UPDATE `course_schedules` SET `confirmed_seats` = `confirmed_seats` + 1 "
                      "WHERE `id` = %s AND `confirmed_seats` < `capacity`")
GIVE_BACK_SEAT = Prepared("UPDATE `course_schedules` SET `confirmed_seats` = `confirmed_seats` - 1 "
                          "WHERE `id` = %s AND `confirmed_seats` > 0")

def taken_sql(schedule: str = "s") -> str:
    """The seats taken now in the course_schedules row aliased `schedule`, as one SQL expression (correlated
    subqueries); one parameter: now. What the listings, the refusals and the alternatives count."""
    return (f"(SELECT COUNT(*) FROM `seat_reservations` r WHERE r.`course_schedule_id` = {schedule}.`id` AND "
            f"{takes_seat_sql('r')})")


# Seats taken now in one schedule (read after the schedule's lock). Parameters: now, schedule id.
SEATS_TAKEN = Prepared("SELECT " + taken_sql("s") + " FROM `course_schedules` s WHERE s.`id` = %s")


async def seats_confirmed(schedule_pk: int) -> int:
    """How many seats of the schedule are confirmed (read after the schedule's lock)."""
    return await SeatReservation.select().where((SeatReservation.course_schedule == schedule_pk)
                                                & (SeatReservation.status == CONFIRMED)).aio_count()


async def taken_by_schedule(schedule_ids, now=None) -> dict:
    """Seats taken now, per schedule id (one query)."""
    if not schedule_ids:
        return {}
    rows = await (select_reservations(R.course_schedule, fn.COUNT(R.id).alias("n"))
                  .where(R.course_schedule.in_(list(schedule_ids)) & takes_seat_where(now or utcnow()))
                  .group_by(R.course_schedule).dicts().aio_execute())
    return {row["course_schedule"]: row["n"] for row in rows}
