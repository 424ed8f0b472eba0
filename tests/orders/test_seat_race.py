"""A schedule never holds more seats than it has: the seat race, and its control.

Many parents ask for a schedule's seats at the same instant, each in a transaction of its own, through the service's
own booking.create_order. Its per-process gate is replaced by one gate per parent, as if every parent had reached a
different server process, so only the database's protection is left: the schedule's row lock, under which the seats
are counted before one is held. Exactly the capacity is held. The control takes that lock out too (the same SELECT
without FOR UPDATE) and makes every parent count the seats before any of them holds one: the schedule is oversold.
"""
import asyncio

import pytest

import errors
from models import SeatReservation
from models.prepared import Prepared
from services.accounts import tokens
from services.audit import Actor
from services.lifecycle import locks
from services.orders import booking

SEATS, PARENTS = 5, 16


@pytest.fixture
def overrides():
    return {"DB_POOL_MAX": "40"}  # every parent's transaction holds a connection at once


async def _rush(api, ctx, monkeypatch, locked: bool):
    sid = await api.schedule(capacity=SEATS)
    users = [tokens.verify(ctx.settings.secret_key, (await api.login())[0], "user") for _ in range(PARENTS)]
    monkeypatch.setattr(booking, "_schedule_gate", lambda schedule_id: asyncio.Lock())
    together = asyncio.Barrier(PARENTS)
    if not locked:
        assert booking.LOCK_AND_COUNT.sql.startswith(locks.LOCK_SCHEDULE.sql + ";")  # the lock, then the count
        unlocked = Prepared(booking.LOCK_AND_COUNT.sql.replace(" FOR UPDATE", ""))

        class CountThenWait:
            """The seats counted, then a wait until every parent has counted (the widest window of the race)."""

            async def each(self, *params):
                found = await unlocked.each(*params)
                await together.wait()
                return found

        monkeypatch.setattr(booking, "LOCK_AND_COUNT", CountThenWait())

    async def book(user_id):
        if locked:
            await together.wait()  # everyone starts at once, then queues on the row lock
        try:
            status, _ = await booking.create_order(ctx, user_id, {"course_schedule_id": sid}, None,
                                                   Actor("user", user_id=user_id))
            return status
        except errors.ServiceError as e:
            return e.code

    answers = await asyncio.gather(*[book(u) for u in users])
    held = await SeatReservation.select().where(SeatReservation.course_schedule == sid).aio_count()
    return answers, held


@pytest.mark.gen_test(timeout=90)
async def test_with_the_schedule_lock_exactly_the_capacity_is_held(api, ctx, monkeypatch):
    answers, held = await _rush(api, ctx, monkeypatch, locked=True)
    assert held == SEATS
    assert sorted(answers, key=str) == sorted([201] * SEATS + ["SOLD_OUT"] * (PARENTS - SEATS), key=str)


@pytest.mark.gen_test(timeout=90)
async def test_control_without_the_lock_the_schedule_is_oversold(api, ctx, monkeypatch):
    answers, held = await _rush(api, ctx, monkeypatch, locked=False)
    assert held == PARENTS > SEATS  # every parent got a "seat" of 5
    assert answers == [201] * PARENTS
