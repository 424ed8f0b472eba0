"""The WebSocket's limits (contract §2 Live status), each tried as an attacker would: a big message, too many
subscriptions, a flood of messages, too many sockets, junk, and a stranger's subscribe racing a push."""
import asyncio
import json
import logging
import time

import aiomysql
import pytest
import redis.asyncio as aioredis
from tornado.websocket import websocket_connect

from realtime.hub import CHANNEL
from tests.api import eventually


async def _ws(base_url, token):
    return await websocket_connect(base_url.replace("http://", "ws://") + "/ws/orders?token=" + token)


async def _next(conn, timeout=10):
    message = await asyncio.wait_for(conn.read_message(), timeout)
    assert message is not None, f"socket closed: {conn.close_code} {conn.close_reason}"
    return json.loads(message)


def _send(conn, **message):
    conn.write_message(json.dumps(message))


async def _orders_of_one_parent(api, count):
    """`count` orders of one parent on one session (each cancelled before the next: one open order at a time)."""
    sid = await api.schedule(capacity=5)
    token, _ = await api.login()
    ids = []
    for _ in range(count):
        status, order = await api.order(token, sid)
        assert status == 201, order
        status, _, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel", {}, token=token)
        assert status == 200
        ids.append(order["order_id"])
    return token, ids


@pytest.mark.gen_test(timeout=60)
async def test_a_message_over_4_kib_closes_the_socket_with_1009(api, base_url):
    token, _ = await api.login()
    conn = await _ws(base_url, token)
    exact = json.dumps({"op": "ping", "pad": ""})
    exact = json.dumps({"op": "ping", "pad": "x" * (4096 - len(exact))})
    assert len(exact.encode()) == 4096
    conn.write_message(exact)
    assert (await _next(conn))["type"] == "pong"  # 4,096 bytes are allowed
    conn.write_message(exact[:-2] + "x\"}")  # 4,097 bytes
    assert await asyncio.wait_for(conn.read_message(), 10) is None
    assert conn.close_code == 1009


@pytest.mark.gen_test(timeout=60)
async def test_a_megabyte_message_is_refused_without_being_read(api, base_url):
    token, _ = await api.login()
    conn = await _ws(base_url, token)
    conn.write_message(json.dumps({"op": "ping", "pad": "x" * (1 << 20)}))
    assert await asyncio.wait_for(conn.read_message(), 10) is None
    assert conn.close_code == 1009


@pytest.mark.gen_test(timeout=120)
async def test_a_socket_holds_at_most_20_subscriptions(api, base_url):
    token, ids = await _orders_of_one_parent(api, 21)
    conn = await _ws(base_url, token)
    for order_id in ids[:20]:
        _send(conn, op="subscribe", order_id=order_id)
        frame = await _next(conn)
        assert frame["type"] == "order.status" and frame["order_id"] == order_id
    _send(conn, op="subscribe", order_id=ids[0])  # one it holds: answered, adds none
    assert (await _next(conn))["order_id"] == ids[0]
    _send(conn, op="subscribe", order_id=ids[20])
    frame = await _next(conn)
    assert frame["type"] == "error" and frame["code"] == "TOO_MANY_SUBSCRIPTIONS"
    _send(conn, op="ping")  # the socket stays
    assert (await _next(conn))["type"] == "pong"
    _send(conn, op="unsubscribe", order_id=ids[5])
    _send(conn, op="subscribe", order_id=ids[20])
    frame = await _next(conn)
    assert frame["type"] == "order.status" and frame["order_id"] == ids[20]


@pytest.mark.gen_test(timeout=60)
async def test_a_message_flood_is_throttled_and_answered_once(api, base_url):
    """300 subscribes sent at once (each would cost MySQL reads): a burst is served, one RATE_LIMITED answers the
    rest, which are dropped unanswered; once the budget refills the socket serves again."""
    token, _ = await api.login()
    conn = await _ws(base_url, token)
    started = time.monotonic()
    for _ in range(300):
        _send(conn, op="subscribe", order_id="0" * 32)
    answered = asyncio.Event()

    async def probe():  # a ping every 0.15 s: the first pong comes once the flood is behind and the budget refilled
        while not answered.is_set():
            _send(conn, op="ping")
            await asyncio.sleep(0.15)

    prober = asyncio.ensure_future(probe())
    frames = []
    while (frame := await _next(conn, timeout=20))["type"] != "pong":
        frames.append(frame["code"])
    answered.set()
    await prober
    elapsed = time.monotonic() - started
    served = frames.count("NOT_FOUND")
    first_refusal = frames.index("RATE_LIMITED")
    assert 60 <= first_refusal <= served <= 60 + 10 * elapsed + 1 < 300  # a burst; the rest dropped but the refill
    assert not any(a == b == "RATE_LIMITED" for a, b in zip(frames, frames[1:]))  # never two refusals in a row


@pytest.mark.gen_test(timeout=60)
async def test_a_sixth_socket_closes_the_users_oldest_with_4429(api, base_url):
    token, _ = await api.login()
    other, _ = await api.login()
    bystander = await _ws(base_url, other)
    conns = [await _ws(base_url, token) for _ in range(5)]
    for conn in conns:
        _send(conn, op="ping")
        assert (await _next(conn))["type"] == "pong"
    sixth = await _ws(base_url, token)
    assert await asyncio.wait_for(conns[0].read_message(), 10) is None
    assert conns[0].close_code == 4429
    for conn in [*conns[1:], sixth, bystander]:
        _send(conn, op="ping")
        assert (await _next(conn))["type"] == "pong"
    seventh = await _ws(base_url, token)
    assert await asyncio.wait_for(conns[1].read_message(), 10) is None
    assert conns[1].close_code == 4429
    seventh.close()


@pytest.mark.gen_test(timeout=60)
async def test_junk_is_answered_and_never_logged_as_an_error(api, base_url, caplog):
    sid = await api.schedule()
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    conn = await _ws(base_url, token)
    deep = "[" * 2000 + "]" * 2000  # 2,000 levels within the 4 KiB a message may have
    junk = [
        ("not json", "INVALID_REQUEST"), ("[1, 2]", "INVALID_REQUEST"), ("null", "INVALID_REQUEST"),
        (deep, "INVALID_REQUEST"), ('{"a":' * 600 + "1" + "}" * 600, "INVALID_REQUEST"),
        (json.dumps({"op": ["subscribe"]}), "INVALID_REQUEST"), (json.dumps({"op": "drop tables"}), "INVALID_REQUEST"),
        (json.dumps({"op": "unsubscribe", "order_id": ["a"]}), "INVALID_REQUEST"),
        (json.dumps({"op": "unsubscribe", "order_id": {"a": 1}}), "INVALID_REQUEST"),
        (json.dumps({"op": "subscribe", "order_id": ["a"]}), "NOT_FOUND"),
        (json.dumps({"op": "subscribe", "order_id": {"$gt": ""}}), "NOT_FOUND"),
        (json.dumps({"op": "subscribe", "order_id": 12345}), "NOT_FOUND"),
        (json.dumps({"op": "subscribe"}), "NOT_FOUND"), ('{"op": "ping", "x": NaN}', "INVALID_REQUEST"),
        ("9" * 4000, "INVALID_REQUEST"),
    ]
    with caplog.at_level(logging.INFO):
        for message, code in junk:
            conn.write_message(message)
            frame = await _next(conn)
            assert frame["type"] == "error" and frame["code"] == code, (message[:40], frame)
        conn.write_message(b"\xff\xfe binary junk", binary=True)
        assert (await _next(conn))["code"] == "INVALID_REQUEST"
        _send(conn, op="subscribe", order_id=order["order_id"])  # the socket still serves
        assert (await _next(conn))["status"] == "pending"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.gen_test(timeout=60)
async def test_a_strangers_subscribe_never_receives_a_push_of_that_order(api, base_url, settings):
    """The stranger's subscribe is held in its ownership read (the orders table locked), while a push of the
    victim's order goes out. Control: the owner, subscribed already, receives that push; the stranger gets only
    NOT_FOUND. (Registered before the check, as the socket once was, the stranger received it.)"""
    sid = await api.schedule()
    owner, _ = await api.login()
    _, order = await api.order(owner, sid)
    order_id = order["order_id"]
    stranger, _ = await api.login()
    victim = await _ws(base_url, owner)
    _send(victim, op="subscribe", order_id=order_id)
    assert (await _next(victim))["status"] == "pending"
    attacker = await _ws(base_url, stranger)
    _send(attacker, op="ping")
    assert (await _next(attacker))["type"] == "pong"

    db = settings.database
    locker = await aiomysql.connect(host=db.host, port=db.port, user=db.user, password=db.password, db=db.name)
    watcher = await aiomysql.connect(host=db.host, port=db.port, user=db.user, password=db.password, db=db.name)
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        async with locker.cursor() as cur:
            await cur.execute("LOCK TABLES `payment_orders` WRITE")
        _send(attacker, op="subscribe", order_id=order_id)

        async def ownership_read_waits():
            async with watcher.cursor() as cur:
                await cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting%%' "
                                  "AND INFO LIKE %s", (f"%{order_id}%",))
                return (await cur.fetchone())[0] >= 1

        await eventually(ownership_read_waits, what="the stranger's subscribe to wait on the locked table")
        push = {"type": "order.status", "order_id": order_id, "status": "paid", "reservation_status": "confirmed",
                "at": "2030-01-01T00:00:00+08:00"}
        await redis.publish(CHANNEL, json.dumps(push))
        assert await _next(victim) == push  # the control: the push went out while the stranger's read waited
    finally:
        async with locker.cursor() as cur:
            await cur.execute("UNLOCK TABLES")
        locker.close()
        watcher.close()
        await redis.aclose()
    frame = await _next(attacker)
    assert frame["type"] == "error" and frame["code"] == "NOT_FOUND", frame
    _send(attacker, op="ping")
    assert (await _next(attacker))["type"] == "pong"  # and nothing came in between
