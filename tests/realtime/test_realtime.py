"""Live order status over WebSocket: own orders only, snapshot on subscribe, pushes across processes, Redis outages."""
import asyncio
import json

import pytest
from tornado.websocket import websocket_connect

from tests.api import Api, eventually
from tests.harness import RedisServer, ServiceProcess


async def _ws(base_url, token):
    url = base_url.replace("http://", "ws://") + "/ws/orders?token=" + (token or "")
    return await websocket_connect(url)


async def _next(conn, timeout=10):
    message = await asyncio.wait_for(conn.read_message(), timeout)
    assert message is not None, f"socket closed: {conn.close_code} {conn.close_reason}"
    return json.loads(message)


async def _until_status(conn, status, timeout=15):
    while True:
        frame = await _next(conn, timeout)
        if frame.get("type") == "order.status" and frame["status"] == status:
            return frame


async def _order_with_prepay(api, capacity=5):
    _, token, _, order, _ = await api.order_in_payment(capacity=capacity)
    return token, order["order_id"]


@pytest.mark.gen_test(timeout=60)
async def test_a_bad_token_is_refused_with_4401(api, base_url):
    for token in ("", "not-a-token"):
        conn = await _ws(base_url, token)
        assert await conn.read_message() is None
        assert conn.close_code == 4401


@pytest.mark.gen_test(timeout=60)
async def test_subscribe_gets_the_snapshot_then_the_payment(api, base_url):
    token, order_id = await _order_with_prepay(api)
    conn = await _ws(base_url, token)
    conn.write_message(json.dumps({"op": "subscribe", "order_id": order_id}))
    first = await _next(conn)
    assert first["type"] == "order.status" and first["order_id"] == order_id
    assert first["status"] == "pending" and first["reservation_status"] == "temporary" and first["at"]
    await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
    paid = await _until_status(conn, "paid")
    assert paid["reservation_status"] == "confirmed"
    conn.write_message(json.dumps({"op": "ping"}))
    assert (await _next(conn))["type"] == "pong"
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_another_users_order_is_not_found(api, base_url):
    _, order_id = await _order_with_prepay(api)
    stranger, _ = await api.login()
    conn = await _ws(base_url, stranger)
    conn.write_message(json.dumps({"op": "subscribe", "order_id": order_id}))
    frame = await _next(conn)
    assert frame["type"] == "error" and frame["code"] == "NOT_FOUND"
    conn.write_message(json.dumps({"op": "subscribe", "order_id": "x" * 32}))
    assert (await _next(conn))["code"] == "NOT_FOUND"
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_cancel_is_pushed_and_a_reconnect_gets_the_snapshot(api, base_url):
    token, order_id = await _order_with_prepay(api)
    conn = await _ws(base_url, token)
    conn.write_message(json.dumps({"op": "subscribe", "order_id": order_id}))
    assert (await _next(conn))["status"] == "pending"
    conn.close()
    status, _, _ = await api.call("POST", f"/api/v1/payment/orders/{order_id}/cancel", {}, token=token)
    assert status == 200
    again = await _ws(base_url, token)
    again.write_message(json.dumps({"op": "subscribe", "order_id": order_id}))
    snap = await _next(again)
    assert snap["status"] == "cancelled" and snap["reservation_status"] == "cancelled"
    again.close()


@pytest.mark.gen_test(timeout=120)
async def test_push_crosses_processes_and_survives_a_redis_outage(service_env, sandbox, db):
    redis = RedisServer("ws-redis")
    env = {**service_env, "REDIS_URL": redis.url, "RECONCILE_INTERVAL_SECONDS": "60"}
    env.pop("PORT")
    front = ServiceProcess(env, name="ws-front")      # holds the WebSocket
    back = ServiceProcess(env, name="ws-back")        # gets WeChat Pay's notifications
    try:
        api_back = Api(back.url, sandbox)
        sid = await api_back.schedule(capacity=5)
        token, _ = await api_back.login()
        _, order = await api_back.order(token, sid)
        assert (await api_back.prepay(token, order["order_id"]))[0] == 200   # notify_url is the back process
        conn = await _ws(front.url, token)
        conn.write_message(json.dumps({"op": "subscribe", "order_id": order["order_id"]}))
        assert (await _next(conn))["status"] == "pending"
        await api_back.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
        paid = await _until_status(conn, "paid")
        assert paid["order_id"] == order["order_id"]

        # Redis goes away: payments go on, readiness says so, and the push arrives once Redis is back.
        token2, _ = await api_back.login()
        _, order2 = await api_back.order(token2, sid)
        assert (await api_back.prepay(token2, order2["order_id"]))[0] == 200
        conn2 = await _ws(front.url, token2)
        conn2.write_message(json.dumps({"op": "subscribe", "order_id": order2["order_id"]}))
        assert (await _next(conn2))["status"] == "pending"
        redis.stop()
        status, ready, _ = await api_back.call("GET", "/readyz")
        assert status == 200 and ready == {"mysql": "ok", "redis": "down"}
        await api_back.control("POST", f"/sandbox/orders/{order2['order_id']}/pay", {"notify": True})
        await eventually(lambda: _paid(api_back, token2, order2["order_id"]), what="payment applied without Redis")
        redis.start()
        frame = await _until_status(conn2, "paid", timeout=20)
        assert frame["order_id"] == order2["order_id"]
        # And live pushes flow again after the outage.
        status, _, _ = await api_back.call("GET", "/readyz")
        token3, _ = await api_back.login()
        _, order3 = await api_back.order(token3, sid)
        conn3 = await _ws(front.url, token3)
        conn3.write_message(json.dumps({"op": "subscribe", "order_id": order3["order_id"]}))
        assert (await _next(conn3))["status"] == "pending"
        await eventually(lambda: _redis_ready(api_back), what="the back process to see Redis again")
        await api_back.call("POST", f"/api/v1/payment/orders/{order3['order_id']}/cancel", {}, token=token3)
        assert (await _until_status(conn3, "cancelled"))["order_id"] == order3["order_id"]
        for c in (conn, conn2, conn3):
            c.close()
    finally:
        front.stop()
        back.stop()
        redis.stop()


async def _paid(api, token, order_id):
    return (await api.get_order(token, order_id))["status"] == "paid"


async def _redis_ready(api):
    return (await api.call("GET", "/readyz"))[1].get("redis") == "ok"


@pytest.mark.gen_test(timeout=120)
async def test_a_push_redis_refused_reaches_the_other_process_once_redis_answers(service_env, sandbox, db):
    """Redis stalls (CLIENT PAUSE) while a payment is applied on one process: the notification is still answered
    at once, and the push reaches the client on the other process when Redis answers again — although that
    process's subscription never broke, so it has no reason to re-read anything by itself."""
    redis = RedisServer("ws-pause")
    env = {**service_env, "REDIS_URL": redis.url, "RECONCILE_INTERVAL_SECONDS": "60"}
    env.pop("PORT")
    front = ServiceProcess(env, name="ws-pause-front")
    back = ServiceProcess(env, name="ws-pause-back")
    try:
        api_back = Api(back.url, sandbox)
        sid = await api_back.schedule(capacity=5)
        token, _ = await api_back.login()
        _, order = await api_back.order(token, sid)
        assert (await api_back.prepay(token, order["order_id"]))[0] == 200
        conn = await _ws(front.url, token)
        conn.write_message(json.dumps({"op": "subscribe", "order_id": order["order_id"]}))
        assert (await _next(conn))["status"] == "pending"
        import redis as redis_sync

        admin = redis_sync.Redis.from_url(redis.url)
        admin.execute_command("CLIENT", "PAUSE", "4000", "ALL")  # every command stalls for 4 s; sockets stay up
        await api_back.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
        await eventually(lambda: _paid(api_back, token, order["order_id"]), what="payment applied while Redis stalls")
        sent = (await api_back.control("GET", f"/sandbox/notifications?out_trade_no={order['order_id']}"))["items"]
        assert sent[0]["attempts"][0]["status"] == 204 and sent[0]["attempts"][0]["elapsed_ms"] < 1500
        frame = await _until_status(conn, "paid", timeout=20)
        assert frame["order_id"] == order["order_id"] and frame["reservation_status"] == "confirmed"
        admin.close()
        conn.close()
    finally:
        front.stop()
        back.stop()
        redis.stop()
