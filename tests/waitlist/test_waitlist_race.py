"""The seat kept for an offered parent is theirs: the race of that parent against a stranger, and its control.

A session's one seat is freed and kept for the first in line. The offered parent and a stranger ask for it at the
same instant, each in a transaction of its own, through the service's own booking.create_order, with its
per-process gate replaced by one gate per request (as if each had reached a different server process): only the
database's protection is left, the kept seat counted as taken under the schedule's lock. The parent gets the seat,
the stranger SOLD_OUT, every round, and also when the stranger asks first. The control takes the kept seat out of
the count (the same statements without it): the stranger, asking first, takes the seat kept for the parent, and the
parent's own order then makes two holds on one seat.
"""
import asyncio

import pytest

import errors
from models import SeatReservation
from models.prepared import Prepared
from services.accounts import tokens
from services.audit import Actor
from services.lifecycle import seats
from services.orders import booking
from tests.waitlist.helpers import cancel, full_session, in_line, statuses

ROUNDS = 4


@pytest.fixture
def overrides():
    return {"RUN_JOBS": "0"}


def _without_kept_seats(statement: Prepared) -> Prepared:
    """The same statement, counting no seat kept for a waitlist offer."""
    kept = (" + (SELECT COUNT(*) FROM `waitlist_entries` w WHERE w.`course_schedule_id` = s.`id` AND "
            f"{seats.kept_seat_sql('w')})")
    assert kept in statement.sql
    return Prepared(statement.sql.replace(kept, ""), statement.columns)


async def _round(api, ctx, monkeypatch, protected: bool, together: bool):
    sid, [(holder, held)] = await full_session(api)
    [(waiter, _, _)] = await in_line(api, sid, 1)
    await cancel(api, holder, held)
    assert await statuses(sid) == ["offered"]
    stranger, _ = await api.login()
    parent_id, stranger_id = [tokens.verify(ctx.settings.secret_key, t, "user") for t in (waiter, stranger)]
    monkeypatch.setattr(booking, "_schedule_gate", lambda schedule_id: asyncio.Lock())
    if not protected:
        monkeypatch.setattr(booking, "PRECHECK", _without_kept_seats(booking.PRECHECK))
        monkeypatch.setattr(booking, "SEATS_TAKEN", _without_kept_seats(seats.SEATS_TAKEN))
    barrier = asyncio.Barrier(2)

    async def book(user_id):
        if together:
            await barrier.wait()  # both start at once, then queue on the schedule's row lock
        try:
            status, _ = await booking.create_order(ctx, user_id, {"course_schedule_id": sid}, None,
                                                   Actor("user", user_id=user_id))
            return status
        except errors.ServiceError as e:
            return e.code

    if together:
        parent, stranger_answer = await asyncio.gather(book(parent_id), book(stranger_id))
    else:  # the stranger first
        stranger_answer = await book(stranger_id)
        parent = await book(parent_id)
    monkeypatch.undo()
    held_now = await SeatReservation.select().where((SeatReservation.course_schedule == sid) & (
        SeatReservation.status == "temporary")).aio_count()
    return (parent, stranger_answer), held_now, await statuses(sid)


@pytest.mark.gen_test(timeout=180)
async def test_the_offered_parent_wins_the_kept_seat_every_time(api, ctx, monkeypatch):
    for together in [True] * ROUNDS + [False]:
        (parent, stranger), held, line = await _round(api, ctx, monkeypatch, protected=True, together=together)
        assert (parent, stranger) == (201, "SOLD_OUT"), together
        assert held == 1 and line == ["booked"]


@pytest.mark.gen_test(timeout=120)
async def test_control_without_the_kept_seat_counted_a_stranger_takes_it(api, ctx, monkeypatch):
    (parent, stranger), held, _ = await _round(api, ctx, monkeypatch, protected=False, together=False)
    assert stranger == 201  # the seat kept for the parent went to whoever asked first
    assert parent == 201 and held == 2  # and with the parent's order, one seat of one is held twice
