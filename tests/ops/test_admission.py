"""Admission control through HTTP: a full budget turns the excess away at once with 503 SERVICE_UNAVAILABLE and
Retry-After, before anything is written; what was admitted or queued is served to its end; WeChat Pay's
notifications, the WebSocket, the health checks and the operators' login go on while the parents' budget is full.

The budget is held by a controllable slow path, not by timing: prepays whose WeChat Pay call the sandbox holds
(`hold` fault) until the test releases them.
"""
from __future__ import annotations

import asyncio
import json
import re
import time

import pymysql
import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.simple_httpclient import HTTPTimeoutError
from tornado.websocket import websocket_connect

from services.accounts.operators import provision_operator
from tests.api import Api, eventually
from tests.contract.test_openapi import _resolve, check_schema, operation

JSAPI = "/v3/pay/transactions/jsapi"
QUICK = 1.0  # a shed answer is given at once; a held request would take until the test releases it
WAIT = 4.0


def _busy(status, body, headers, retry_after, documented=None):
    """The contract's 503 of a request turned away, as docs/openapi.yaml documents it for `documented`."""
    assert status == 503, (status, body)
    assert body == {"error": {"code": "SERVICE_UNAVAILABLE", "message": "服务繁忙，请稍后重试"}}, body
    assert headers.get("Retry-After") == str(retry_after)
    if documented:
        response = _resolve(operation(*documented)["responses"]["503"])
        assert "Retry-After" in response["headers"], documented
        check_schema(body, response["content"]["application/json"]["schema"], f"{documented}: 503")


async def _timed(call):
    started = time.monotonic()
    result = await call
    return (*result, time.monotonic() - started)


async def _gauge(api, budget, state):
    """gym_admission_requests{budget, state} as /metrics reads it now."""
    _, text, _ = await api.call("GET", "/metrics")
    text = text.decode() if isinstance(text, bytes) else text
    found = re.search(rf'^gym_admission_requests{{budget="{budget}",state="{state}"}} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def _held(api):
    return (await api.control("GET", "/sandbox/faults"))["held"]


async def _held_is(api, n):
    return await _held(api) == n


def _own_client(api):
    """A client of its own, so that the requests held open do not use up the shared one's ten connections."""
    held = Api(api.base_url, api.sandbox, api.redis_url)
    held.http = AsyncHTTPClient(force_instance=True, max_clients=32)
    return held


async def _ordered(api, sid):
    token, _ = await api.login()
    status, order = await api.order(token, sid)
    assert status == 201, order
    return token, order["order_id"]


async def _wechat_has(api, order_id):
    status, _, _ = await api.call("GET", f"/sandbox/orders/{order_id}", base=api.sandbox.url)
    return status == 200


class TestAFullParentsBudget:
    @pytest.fixture
    def overrides(self):
        return {"ADMISSION_LIMIT": "2", "ADMISSION_QUEUE": "1", "ADMISSION_WAIT_SECONDS": "60",
                "ADMISSION_RETRY_AFTER_SECONDS": "3"}

    @pytest.mark.gen_test(timeout=120)
    async def test_sheds_at_once_leaves_nothing_behind_and_starves_nothing_else(self, api, base_url):
        sid = await api.schedule(capacity=10)
        _, paying_token, _, paying, _ = await api.order_in_payment()
        (a_token, a), (b_token, b), (c_token, c), (d_token, d) = [await _ordered(api, sid) for _ in range(4)]
        x_token, _ = await api.login()
        code = (await api.control("POST", "/sandbox/wx/login", {}))["code"]
        await provision_operator("op-admission", "correct-horse-battery", "staff")

        # Two prepays hold the parents' two slots (WeChat Pay holds their calls); a third waits for a slot.
        await api.control("POST", "/sandbox/faults", {"path_prefix": JSAPI, "hold": True, "count": 2})
        held = _own_client(api)
        first = [asyncio.ensure_future(held.prepay(token, oid)) for token, oid in ((a_token, a), (b_token, b))]
        await eventually(lambda: _held_is(api, 2), what="two prepays held at WeChat Pay")
        queued = asyncio.ensure_future(held.prepay(c_token, c))
        await eventually(lambda: _waiting(api, 1), what="the third prepay waiting for a slot")

        # The rest is turned away at once, before anything is written: no order, no seat, no spent code, no
        # WeChat Pay order.
        *answer, took = await _timed(api.call("POST", "/api/v1/payment/orders/create", {"course_schedule_id": sid},
                                              token=x_token))
        _busy(*answer, retry_after=3, documented=("post", "/api/v1/payment/orders/create"))
        assert took < QUICK, f"a shed order took {took:.2f}s"
        *answer, took = await _timed(api.call("POST", "/api/v1/auth/login", {"code": code}))
        _busy(*answer, retry_after=3, documented=("post", "/api/v1/auth/login"))
        assert took < QUICK
        *answer, took = await _timed(api.call("GET", f"/api/v1/payment/wxpay/qrcode/{d}", token=d_token))
        _busy(*answer, retry_after=3, documented=("get", "/api/v1/payment/wxpay/qrcode/{order_id}"))
        assert took < QUICK
        *answer, took = await _timed(api.call("POST", "/api/v1/payment/wxpay/create", {"order_id": d}, token=d_token))
        _busy(*answer, retry_after=3, documented=("post", "/api/v1/payment/wxpay/create"))
        assert took < QUICK
        status, mine, _ = await api.call("GET", "/api/v1/payment/orders", token=x_token)
        assert status == 200 and mine["items"] == []
        assert await api.remaining(sid) == 10 - 4
        assert not await _wechat_has(api, d)

        # Meanwhile everything with a budget of its own (or none) goes on: the operators' login, the health checks,
        # the WebSocket, and WeChat Pay's notification, which pays an order and is pushed.
        status, login, _ = await api.call("POST", "/api/v1/admin/login",
                                          {"username": "op-admission", "password": "correct-horse-battery"})
        assert status == 200 and login["token"]
        for path in ("/healthz", "/readyz"):
            status, _, _ = await api.call("GET", path)
            assert status == 200, path
        conn = await websocket_connect(base_url.replace("http://", "ws://") + "/ws/orders?token=" + paying_token)
        conn.write_message(json.dumps({"op": "subscribe", "order_id": paying["order_id"]}))
        assert json.loads(await conn.read_message())["status"] == "pending"
        await api.control("POST", f"/sandbox/orders/{paying['order_id']}/pay", {"notify": True})
        pushed = json.loads(await asyncio.wait_for(conn.read_message(), 15))
        assert pushed["status"] == "paid" and pushed["reservation_status"] == "confirmed"
        assert (await api.get_order(paying_token, paying["order_id"]))["status"] == "paid"
        conn.close()
        assert await _held(api) == 2 and await _waiting(api, 1), "the budget stayed full throughout"
        assert not any(f.done() for f in first) and not queued.done()

        # Released, everything admitted or queued is served to its end; the turned-away calls now work.
        assert await api.control("POST", "/sandbox/faults/release", {}) == {"released": 2}
        for future in (*first, queued):
            status, params = await future
            assert status == 200 and params["package"].startswith("prepay_id="), params
        status, logged_in, _ = await api.call("POST", "/api/v1/auth/login", {"code": code})
        assert status == 200, logged_in  # the shed login never spent the code
        status, order = await api.order(x_token, sid)
        assert status == 201, order
        status, params = await api.prepay(d_token, d)
        assert status == 200, params
        assert await _gauge(api, "parents", "in_use") == 0 and await _gauge(api, "parents", "waiting") == 0


async def _waiting(api, n):
    return await _gauge(api, "parents", "waiting") == n


class TestAWaitThatRunsOut:
    @pytest.fixture
    def overrides(self):
        # Long enough that the one waiting is let in (it expects far less than half of it), then turned away.
        return {"ADMISSION_LIMIT": "1", "ADMISSION_QUEUE": "1", "ADMISSION_WAIT_SECONDS": str(WAIT)}

    @pytest.mark.gen_test(timeout=120)
    async def test_a_queued_request_is_shed_when_its_wait_runs_out_and_one_whose_client_left_is_never_served(
            self, api, base_url):
        sid = await api.schedule(capacity=5)
        (a_token, a), (b_token, b), (c_token, c) = [await _ordered(api, sid) for _ in range(3)]
        await api.control("POST", "/sandbox/faults", {"path_prefix": JSAPI, "hold": True, "count": 1})
        held = _own_client(api)
        holder = asyncio.ensure_future(held.prepay(a_token, a))
        await eventually(lambda: _held_is(api, 1), what="one prepay held at WeChat Pay")

        # Queued, then turned away once ADMISSION_WAIT_SECONDS has passed: nothing of it was done.
        *answer, took = await _timed(api.call("POST", "/api/v1/payment/wxpay/create", {"order_id": b}, token=b_token))
        _busy(*answer, retry_after=1)
        assert WAIT <= took < WAIT + QUICK, took
        assert not await _wechat_has(api, b)

        # A client that gives up while queued leaves no ghost: its place ends with the wait, unserved.
        impatient = AsyncHTTPClient(force_instance=True)
        with pytest.raises(HTTPTimeoutError):
            await impatient.fetch(f"{base_url}/api/v1/payment/wxpay/create", method="POST",
                                  body=json.dumps({"order_id": b}), headers={"Authorization": f"Bearer {b_token}"},
                                  request_timeout=0.2)
        await eventually(lambda: _waiting(api, 0), what="the abandoned place to end with its wait")
        await api.control("POST", "/sandbox/faults/release", {})
        status, params = await holder
        assert status == 200, params
        status, params = await api.prepay(c_token, c)
        assert status == 200, params
        assert not await _wechat_has(api, b) and await _gauge(api, "parents", "in_use") == 0


class TestNotificationsHaveTheirOwnBudget:
    @pytest.fixture
    def overrides(self):
        return {"ADMISSION_NOTIFY_LIMIT": "1", "ADMISSION_WAIT_SECONDS": "0.5"}  # notifications then wait 3 s

    @pytest.mark.gen_test(timeout=120)
    async def test_a_notification_turned_away_is_answered_fail_with_retry_after_and_applied_on_redelivery(
            self, api, settings):
        _, p_token, _, p, _ = await api.order_in_payment()
        _, q_token, _, q, _ = await api.order_in_payment()
        db = settings.database
        lock = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password, database=db.name,
                               autocommit=False)
        try:
            # The first notification holds the only slot: its order's row is locked by another MySQL session.
            with lock.cursor() as cur:
                cur.execute("SELECT id FROM payment_orders WHERE order_id = %s FOR UPDATE", (p["order_id"],))
            await api.control("POST", f"/sandbox/orders/{p['order_id']}/pay", {"notify": True})
            await eventually(lambda: _gauge(api, "notifications", "in_use"), what="the first notification in")
            await api.control("POST", f"/sandbox/orders/{q['order_id']}/pay", {"notify": True})

            async def turned_away():
                notes = (await api.control("GET", f"/sandbox/notifications?out_trade_no={q['order_id']}"))["items"]
                return [a for note in notes for a in note["attempts"] if a.get("status") == 503]

            [refused, *_] = await eventually(turned_away, timeout=20, what="the second notification turned away")
            assert json.loads(refused["body"]) == {"code": "FAIL", "message": "服务繁忙，请稍后重试"}
            assert (await api.get_order(q_token, q["order_id"]))["status"] == "pending"
        finally:
            lock.rollback()
            lock.close()

        async def paid(token, order_id):
            return (await api.get_order(token, order_id))["status"] == "paid"

        await eventually(lambda: paid(p_token, p["order_id"]), what="the first payment applied")
        await eventually(lambda: paid(q_token, q["order_id"]), timeout=30, what="the redelivery applied")
