"""A flood of forged notifications never queues on the inbox row that counts them.

Every refusal of one kind, reason and minute is counted on one row. The test holds that row's lock (as a long
transaction or a busy server would) and sends 30 forgeries at once with a pool of 4 connections: at most one
statement of the service waits on the row, the pool stays free for everyone else (a parent's request is answered
while the lock is held), and once the lock goes every forgery is answered 401 and counted, exactly. (With one upsert
per refusal, as before, the forgeries took every pool connection and the parent's request waited: tried.)
"""
import asyncio
import datetime as dt
import time

import aiomysql
import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.api import Api, eventually
from tests.forge import Forger

FORGERIES = 30


@pytest.fixture
def overrides():
    return {"DB_POOL_MAX": "4"}


async def _connect(settings):
    db = settings.database
    return await aiomysql.connect(host=db.host, port=db.port, user=db.user, password=db.password, db=db.name,
                                  autocommit=False)


async def _inbox_refusals(api, admin):
    status, body, _ = await api.call("GET", "/api/v1/admin/notifications?outcome=refused&limit=200", token=admin)
    assert status == 200, body
    return body["items"]


@pytest.mark.gen_test(timeout=120)
async def test_a_forgery_flood_on_a_locked_counter_row_holds_one_connection(api, sandbox, settings):
    admin = await api.admin_token()
    forger = Forger(sandbox.state_dir, sandbox.env)
    stranger = Forger.stranger_key()

    def forgery():
        body = forger.body(forger.transaction("f" * 32))
        return body, forger.headers(body, key=stranger)

    # The whole test within one minute of the clock (the counting row is per minute).
    await eventually(lambda: dt.datetime.now(dt.timezone.utc).second < 30, timeout=40, what="a fresh minute")
    body, headers = forgery()
    status, answer, _ = await api.call("POST", "/api/v1/payment/wxpay/callback", raw=body, headers=headers)
    assert status == 401 and answer["code"] == "FAIL"
    row = next(r for r in await _inbox_refusals(api, admin) if r["reason"] == answer["message"])  # newest first
    before = row["deliveries"]

    locker, watcher = await _connect(settings), await _connect(settings)
    try:
        async with locker.cursor() as cur:
            await cur.execute("SELECT `id` FROM `wechatpay_notifications` WHERE `id` = %s FOR UPDATE", (row["id"],))
        crowd = Api(api.base_url)
        crowd.http = AsyncHTTPClient(force_instance=True, max_clients=FORGERIES)  # every forgery at once
        flood = [asyncio.ensure_future(crowd.call("POST", "/api/v1/payment/wxpay/callback", raw=b, headers=h))
                 for b, h in (forgery() for _ in range(FORGERIES))]

        async def waiting_on_the_row():
            async with watcher.cursor() as cur:
                await cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                  "WHERE INFO LIKE 'INSERT INTO `wechatpay_notifications`%%refused%%'")
                return (await cur.fetchone())[0]

        await eventually(lambda: waiting_on_the_row(), what="the counting upsert to wait on the locked row")
        started = time.monotonic()
        status, _, _ = await api.call("GET", "/api/v1/courses/schedules")  # a parent, needing a pool connection
        assert status == 200 and time.monotonic() - started < 5
        assert await waiting_on_the_row() == 1  # one statement waits on the row, however many forgeries wait
        assert not any(f.done() for f in flood)  # each is answered only once its refusal is written
    finally:
        await locker.rollback()
        locker.close()
        watcher.close()
    answers = await asyncio.gather(*flood)
    assert [a[0] for a in answers] == [401] * FORGERIES
    row_now = next(r for r in await _inbox_refusals(api, admin) if r["id"] == row["id"])
    assert row_now["deliveries"] == before + FORGERIES
