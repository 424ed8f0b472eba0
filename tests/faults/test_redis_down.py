"""Redis stopped (a private one): orders, payments and notifications go on, rate limits are off, pushes come back."""
import asyncio
import json

import pytest
from tornado.websocket import websocket_connect

from tests.api import Api, eventually
from tests.faults.conftest import service_env
from tests.faults.flows import assert_invariants, assert_paid_exactly_once, order_in_payment
from tests.harness import RedisServer

LIMIT = 3


async def _subscribe(base_url, token, order_id):
    conn = await websocket_connect(base_url.replace("http://", "ws://") + "/ws/orders?token=" + token)
    conn.write_message(json.dumps({"op": "subscribe", "order_id": order_id}))
    return conn


async def _until(conn, status, timeout=20):
    while True:
        message = await asyncio.wait_for(conn.read_message(), timeout)
        assert message is not None, f"socket closed: {conn.close_code}"
        frame = json.loads(message)
        if frame.get("type") == "order.status" and frame["status"] == status:
            return frame


async def _redis_state(api):
    status, body, _ = await api.call("GET", "/readyz")
    assert status == 200, body  # MySQL answers: ready, whatever Redis does
    return body["redis"]


async def _login_statuses(api, n):
    """n logins with a junk code from this one IP: the rate limit is checked before the code is."""
    return [(await api.call("POST", "/api/v1/auth/login", {"code": "junk"}))[0] for _ in range(n)]


@pytest.mark.gen_test(timeout=90)
async def test_redis_down_payments_go_on_without_rate_limits_and_pushes_flow_again(fault_db, server_env, sandbox,
                                                                                  services, tmp_path):
    redis = RedisServer("faults-redis")
    try:
        env = service_env(sandbox, fault_db, redis.url, tmp_path / "certs", RATE_LIMIT_PER_MINUTE=str(LIMIT),
                          RECONCILE_INTERVAL_SECONDS="60")
        front = services(env, "redis-front")  # holds the WebSockets
        back = services(env, "redis-back")  # takes the API calls and WeChat Pay's notifications
        api, api_front = Api(back.url, sandbox), Api(front.url, sandbox)
        sid = await api.schedule(capacity=10)
        redis.stop()
        assert await _redis_state(api) == "down" and await _redis_state(api_front) == "down"
        assert set(await _login_statuses(api, 2 * LIMIT)) == {401}  # refused for the code, never 429
        booked = []
        for _ in range(LIMIT + 1):  # more parents than the limit, all from this IP
            token, _ = await api.login()
            booked.append((token, await order_in_payment(api, token, sid)))
        token, first = booked[0]
        conn = await _subscribe(front.url, token, first)
        assert (await _until(conn, "pending"))["order_id"] == first
        for _, order_id in booked:
            await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
        await eventually(lambda: _all_paid(api, booked), what="payments applied without Redis")
        await assert_paid_exactly_once([o for _, o in booked])

        redis.start()
        await eventually(lambda: _both_see_redis(api, api_front), timeout=20, what="both processes to see Redis")
        assert (await _until(conn, "paid"))["order_id"] == first  # re-read from MySQL when Redis came back
        token, _ = await api.login()
        _, order = await api.order(token, sid)
        live = await _subscribe(front.url, token, order["order_id"])
        await _until(live, "pending")
        status, _, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel", {}, token=token)
        assert status == 200
        assert (await _until(live, "cancelled"))["order_id"] == order["order_id"]  # through Redis, to the front
        statuses = await _login_statuses(api, 2 * LIMIT)
        assert 429 in statuses, statuses  # rate limits are back
        for c in (conn, live):
            c.close()
        await assert_invariants(60)
    finally:
        redis.stop()


async def _all_paid(api, booked):
    return all([(await api.get_order(t, o))["status"] == "paid" for t, o in booked])


async def _both_see_redis(*apis):
    return all([await _redis_state(a) == "ok" for a in apis])
