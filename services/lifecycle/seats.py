"""The seat rule, written once as a Python check and the SQL fragment made beside it, and the schedule's seat counter.

A reservation takes a seat now when it is confirmed, or when it is a temporary hold that has not lapsed. A hold
lapses by its time alone only while no WeChat Pay order exists for it (payment not started): once one exists, only
WeChat Pay's confirmed close releases it (contract §2, Seats). A waitlist entry `offered` keeps a seat for its
parent alone (contract §2, Waitlist): it counts as taken, once, until the entry moves on — `booked` (its order's
hold then counts instead, in the same transaction), `lapsed` or `left`. An offer past its time still keeps its seat
until it is lapsed under the schedule's lock (services.lifecycle.waitlist), which passes the seat to the next in
line first: a stranger never finds it free in between. `tests/orders/test_seat_rule.py` holds the Python and SQL
forms against each other over every combination of the columns they read.

The counter: `course_schedules.confirmed_seats` is the number of the schedule's confirmed reservations, kept in step
by every change to or from `confirmed`, in the same transaction, so a payment claims its seat with one conditional
UPDATE instead of counting.
"""
from __future__ import annotations

from peewee import SQL, fn
from peewee_async.aio_model import AioModelSelect

from models import SeatReservation, WaitlistEntry, utcnow
from models.prepared import Prepared

from .statuses import CONFIRMED, OFFERED, TEMPORARY, WAITLIST_LIVE, sql_in


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


def kept_seat(entry) -> bool:
    """The waitlist entry keeps one of its schedule's seats for its parent (an offer not yet taken, lapsed or left)."""
    return entry.status == OFFERED


def offer_lapsed(entry, now) -> bool:
    """An offer whose time has run out (it keeps its seat until it is lapsed under the schedule's lock)."""
    return entry.status == OFFERED and entry.offer_expires_at <= now


def kept_seat_sql(alias: str = "w") -> str:
    """kept_seat in SQL, on the waitlist_entries row aliased `alias`; no parameter."""
    return f"({alias}.`status` = '{OFFERED}')"


def offer_lapsed_sql(alias: str = "w") -> str:
    """offer_lapsed in SQL, on the waitlist_entries row aliased `alias`; one parameter: now."""
    return f"({alias}.`status` = '{OFFERED}' AND {alias}.`offer_expires_at` <= %s)"


# seat_reservations aliased `r` and waitlist_entries `w` in peewee queries, so that the fragments above apply to them.
R = SeatReservation.alias("r")
W = WaitlistEntry.alias("w")


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
    """The seats taken now in the course_schedules row aliased `schedule` — reservations taking a seat plus seats
    kept for waitlist offers — as one SQL expression (correlated subqueries); one parameter: now. What the listings,
    the refusals, the alternatives and the booking under the schedule's lock count."""
    return (f"((SELECT COUNT(*) FROM `seat_reservations` r WHERE r.`course_schedule_id` = {schedule}.`id` AND "
            f"{takes_seat_sql('r')}) + (SELECT COUNT(*) FROM `waitlist_entries` w WHERE w.`course_schedule_id` = "
            f"{schedule}.`id` AND {kept_seat_sql('w')}))")


def live_entries_sql(schedule: str = "s") -> str:
    """How many waitlist entries of the schedule aliased `schedule` are still in the line; no parameter."""
    return (f"(SELECT COUNT(*) FROM `waitlist_entries` w WHERE w.`course_schedule_id` = {schedule}.`id` AND "
            f"{sql_in('w.`status`', WAITLIST_LIVE)})")


# Seats taken now in one schedule, and its live waitlist entries (read after the schedule's lock: booking offers
# freed seats to the line first when there is one). Parameters: now, schedule id.
SEATS_TAKEN = Prepared("SELECT " + taken_sql("s") + ", " + live_entries_sql("s") +
                       " FROM `course_schedules` s WHERE s.`id` = %s")


async def seats_confirmed(schedule_pk: int) -> int:
    """How many seats of the schedule are confirmed (read after the schedule's lock)."""
    return await SeatReservation.select().where((SeatReservation.course_schedule == schedule_pk)
                                                & (SeatReservation.status == CONFIRMED)).aio_count()


async def taken_by_schedule(schedule_ids, now=None) -> dict:
    """Seats taken now (reservations taking one, and seats kept for waitlist offers), per schedule id (two
    queries)."""
    if not schedule_ids:
        return {}
    rows = await (select_reservations(R.course_schedule, fn.COUNT(R.id).alias("n"))
                  .where(R.course_schedule.in_(list(schedule_ids)) & takes_seat_where(now or utcnow()))
                  .group_by(R.course_schedule).dicts().aio_execute())
    taken = {row["course_schedule"]: row["n"] for row in rows}
    for schedule_id, kept in await kept_by_schedule(schedule_ids):
        taken[schedule_id] = taken.get(schedule_id, 0) + kept
    return taken


async def kept_by_schedule(schedule_ids) -> list[tuple[int, int]]:
    """(schedule id, seats kept for waitlist offers) of the schedules that keep any."""
    rows = await (AioModelSelect(W, [W.course_schedule, fn.COUNT(W.id).alias("n")])
                  .where(W.course_schedule.in_(list(schedule_ids)) & SQL(kept_seat_sql("w")))
                  .group_by(W.course_schedule).dicts().aio_execute())
    return [(row["course_schedule"], row["n"]) for row in rows]
