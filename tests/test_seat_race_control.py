"""The control for the seat race: the same check-then-insert oversells without the schedule row lock."""
import asyncio

import aiomysql
import pytest

import settings as settings_module

SEATS = 5
USERS = 30


async def _connect(db):
    return await aiomysql.connect(host=db.host, port=db.port, user=db.user, password=db.password, db=db.name,
                                  autocommit=False, init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")


async def _race(db, locked: bool) -> int:
    setup = await _connect(db)
    async with setup.cursor() as cur:
        await cur.execute("CREATE TABLE IF NOT EXISTS race_control_seats (id INT PRIMARY KEY, capacity INT)")
        await cur.execute("CREATE TABLE IF NOT EXISTS race_control_holds (id INT AUTO_INCREMENT PRIMARY KEY, "
                          "seat_id INT, user_id INT)")
        await cur.execute("DELETE FROM race_control_holds")
        await cur.execute("REPLACE INTO race_control_seats VALUES (1, %s)", (SEATS,))
    await setup.commit()
    conns = [await _connect(db) for _ in range(USERS)]
    barrier = asyncio.Barrier(USERS)

    async def book(conn, user_id):
        async with conn.cursor() as cur:
            await conn.begin()
            if locked:
                await barrier.wait()  # everyone starts together, then queues on the row lock
                await cur.execute("SELECT capacity FROM race_control_seats WHERE id = 1 FOR UPDATE")
            else:
                await cur.execute("SELECT capacity FROM race_control_seats WHERE id = 1")
            (capacity,) = await cur.fetchone()
            await cur.execute("SELECT COUNT(*) FROM race_control_holds WHERE seat_id = 1")
            (taken,) = await cur.fetchone()
            if not locked:
                await barrier.wait()  # everyone has read the count before anyone writes
            if taken < capacity:
                await cur.execute("INSERT INTO race_control_holds (seat_id, user_id) VALUES (1, %s)", (user_id,))
        await conn.commit()

    try:
        await asyncio.gather(*[book(c, i) for i, c in enumerate(conns)])
        async with setup.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM race_control_holds")
            (holds,) = await cur.fetchone()
        await setup.commit()
        return holds
    finally:
        for c in conns + [setup]:
            c.close()


@pytest.fixture
def db(server_env):
    return settings_module.parse_database_url(server_env)


@pytest.mark.gen_test(timeout=60)
async def test_without_the_lock_the_race_oversells(db, fresh_schema):
    assert await _race(db, locked=False) == USERS  # every one of the 30 got a "seat" of 5


@pytest.mark.gen_test(timeout=60)
async def test_with_the_lock_exactly_the_capacity_is_held(db, fresh_schema):
    assert await _race(db, locked=True) == SEATS
