"""Test helpers that talk to the service and the sandbox over HTTP, as the mini-program and WeChat Pay do."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest


class Api:
    """A small async client of the service under test."""

    def __init__(self, base_url, sandbox=None, redis_url=None):
        self.base_url = base_url
        self.sandbox = sandbox
        self.redis_url = redis_url
        self.http = AsyncHTTPClient()

    async def call(self, method, path, body=None, token=None, headers=None, raw=None, base=None):
        """(status, parsed JSON or raw bytes, headers)."""
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if method in ("POST", "PUT", "PATCH") and data is None:
            data = b""
        req = HTTPRequest((base or self.base_url) + path, method=method, body=data, headers=hdrs,
                          request_timeout=30, allow_nonstandard_methods=True)
        resp = await self.http.fetch(req, raise_error=False)
        content = resp.body or b""
        parsed = content
        if content and "json" in resp.headers.get("Content-Type", ""):
            parsed = json.loads(content)
        return resp.code, parsed, resp.headers

    async def control(self, method, path, body=None):
        """The sandbox's control API; fails the test on a non-2xx."""
        status, data, _ = await self.call(method, path, body, base=self.sandbox.url)
        assert 200 <= status < 300, f"sandbox {method} {path} -> {status} {data}"
        return data

    async def login(self, openid=None):
        """Log a new (or the given) WeChat user in; returns (token, openid)."""
        minted = await self.control("POST", "/sandbox/wx/login", {"openid": openid} if openid else {})
        status, data, _ = await self.call("POST", "/api/v1/auth/login", {"code": minted["code"]})
        assert status == 200, data
        return data["token"], minted["openid"]

    async def admin_token(self, role="admin"):
        """An operator token (the operator is made through the service's own provision_operator)."""
        from services.accounts.operators import provision_operator

        name = f"op-{role}-{time.monotonic_ns()}"
        await provision_operator(name, "correct-horse-battery", role)
        status, data, _ = await self.call("POST", "/api/v1/admin/login",
                                          {"username": name, "password": "correct-horse-battery"})
        assert status == 200, data
        return data["token"]

    async def schedule(self, capacity=5, title="体验课", starts_in_days=3):
        """A new class session made through the admin API; returns its id."""
        import datetime as dt

        token = await self.admin_token()
        starts = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=starts_in_days)).isoformat()
        status, data, _ = await self.call("POST", "/api/v1/admin/schedules",
                                          {"title": title, "starts_at": starts, "capacity": capacity}, token=token)
        assert status == 201, data
        return data["id"]

    async def start_now(self, schedule_id):
        """The clock's part of a test: the session started a second ago (booked and paid while it was ahead, as a
        real day goes). The test process shares the service's database; waiting for a real start cost 25 s."""
        import datetime as dt

        from models import CourseSchedule
        from models.base import utcnow

        moved = await CourseSchedule.update(starts_at=utcnow() - dt.timedelta(seconds=1)).where(
            CourseSchedule.id == schedule_id).aio_execute()
        assert moved == 1

    async def order(self, token, schedule_id, **extra):
        """Create an order; returns (status, body)."""
        status, data, _ = await self.call("POST", "/api/v1/payment/orders/create",
                                          {"course_schedule_id": schedule_id, **extra}, token=token)
        return status, data

    async def get_order(self, token, order_id):
        """The order as the API shows it."""
        status, data, _ = await self.call("GET", f"/api/v1/payment/orders/{order_id}", token=token)
        assert status == 200, data
        return data

    async def prepay(self, token, order_id):
        """Start JSAPI payment; returns (status, body)."""
        status, data, _ = await self.call("POST", "/api/v1/payment/wxpay/create", {"order_id": order_id}, token=token)
        return status, data

    async def order_in_payment(self, capacity=5, title="体验课"):
        """A new session, a new parent, an order, and its JSAPI payment started.

        Returns (schedule_id, token, openid, order, requestPayment params).
        """
        sid = await self.schedule(capacity=capacity, title=title)
        token, openid = await self.login()
        status, order = await self.order(token, sid)
        assert status == 201, order
        status, params = await self.prepay(token, order["order_id"])
        assert status == 200, params
        return sid, token, openid, order, params

    async def paid_order(self, capacity=5, title="体验课"):
        """A new session and parent with an order paid through the sandbox (notification applied).

        Returns (schedule_id, token, openid, order as it now stands).
        """
        sid, token, openid, order, _ = await self.order_in_payment(capacity=capacity, title=title)
        await self.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})

        async def paid():
            view = await self.get_order(token, order["order_id"])
            return view if view["status"] == "paid" else None

        return sid, token, openid, await eventually(paid, what="the payment to be applied")

    async def refund(self, token, order_id, amount_fen, key=None, reason="家长申请退款"):
        """Ask for a refund as an operator; returns (status, body)."""
        key = key or f"key-{time.monotonic_ns()}"
        status, body, _ = await self.call("POST", f"/api/v1/admin/orders/{order_id}/refunds",
                                          {"amount_fen": amount_fen, "reason": reason}, token=token,
                                          headers={"Idempotency-Key": key})
        return status, body

    async def remaining(self, schedule_id):
        """Seats left as the public listing says."""
        status, data, _ = await self.call("GET", f"/api/v1/courses/schedules/{schedule_id}")
        assert status == 200, data
        return data["remaining"]


async def eventually(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Await predicate() (sync or async) until truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
def api(http_server, base_url, sandbox, settings):
    """The client, bound to the running service and the sandbox."""
    return Api(base_url, sandbox, settings.redis_url)
