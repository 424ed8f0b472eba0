"""WeChat Pay answering 5xx, timing out or slow: 503s that keep the seat, and a reconciler that retries and settles."""
import time

import pytest

from tests.api import eventually
from tests.faults.flows import assert_invariants, order_in_payment, statuses

JSAPI = "/v3/pay/transactions/jsapi"
TIMEOUT_MS = 11000  # longer than the service's WeChat Pay read timeout (10 s)
INTERVAL = 0.3


@pytest.fixture
def overrides(fault_db_url):
    return {"DATABASE_URL": fault_db_url, "RECONCILE_INTERVAL_SECONDS": str(INTERVAL), "SEAT_HOLD_SECONDS": "20",
            "ORDER_EXPIRE_SECONDS": "20"}


async def _unavailable(api, call):
    """The call's answer must be a 503 PAYMENT_UNAVAILABLE; returns how long it took."""
    started = time.monotonic()
    status, body, *_ = await call
    assert status == 503 and body["error"]["code"] == "PAYMENT_UNAVAILABLE", (status, body)
    return time.monotonic() - started


async def _wechat_state(api, order_id):
    status, placed, _ = await api.call("GET", f"/sandbox/orders/{order_id}", base=api.sandbox.url)
    return placed["trade_state"] if status == 200 else None


@pytest.mark.gen_test(timeout=90)
async def test_prepay_and_cancel_answer_503_and_keep_the_seat_and_the_reconciler_settles(api):
    # A paid order whose notification is lost, while WeChat Pay fails the reconciler's first queries.
    late_sid = await api.schedule(capacity=1)
    late_token, _ = await api.login()
    late = await order_in_payment(api, late_token, late_sid)
    await api.control("POST", "/sandbox/faults", {"path_prefix": f"/v3/pay/transactions/out-trade-no/{late}",
                                                  "status": 500, "count": 3})
    await api.control("POST", "/sandbox/notifications/next", {"action": "drop", "count": 1})
    await api.control("POST", f"/sandbox/orders/{late}/pay", {"notify": True})

    sid = await api.schedule(capacity=1)
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    oid = order["order_id"]
    for status_code in (500, 502, 503, 504, 429):
        await api.control("POST", "/sandbox/faults", {"path_prefix": JSAPI, "status": status_code, "count": 1})
        await _unavailable(api, api.prepay(token, oid))
        assert await api.remaining(sid) == 0  # the hold is kept: the parent may retry
    await api.control("POST", "/sandbox/faults", {"path_prefix": JSAPI, "latency_ms": TIMEOUT_MS, "count": 1})
    took = await _unavailable(api, api.prepay(token, oid))
    assert 9 < took < 12, f"a WeChat Pay timeout took {took:.1f}s"
    assert await api.remaining(sid) == 0
    await api.control("POST", "/sandbox/faults", {"path_prefix": JSAPI, "latency_ms": 1500, "count": 1})
    started = time.monotonic()
    status, params = await api.prepay(token, oid)
    assert status == 200 and params["package"].startswith("prepay_id=") and time.monotonic() - started >= 1.5

    # WeChat Pay cannot confirm the close: the cancel is refused and the seat stays held (it could still be paid).
    close = f"/v3/pay/transactions/out-trade-no/{oid}/close"
    for fault in ({"status": 500}, {"status": 503}):
        await api.control("POST", "/sandbox/faults", {"path_prefix": close, "count": 1, **fault})
        await _unavailable(api, api.call("POST", f"/api/v1/payment/orders/{oid}/cancel", {}, token=token))
        assert (await api.get_order(token, oid))["status"] == "pending"
        assert await api.remaining(sid) == 0 and await _wechat_state(api, oid) == "NOTPAY"

    await eventually(lambda: _is(late, "paid"), timeout=20, what="the reconciler to find the lost payment")

    # The order runs out while WeChat Pay keeps failing: the reconciler backs off, retries, and only a confirmed
    # close frees the seat.
    await api.control("POST", "/sandbox/faults", {"path_prefix": f"/v3/pay/transactions/out-trade-no/{oid}",
                                                  "status": 503, "count": 3})
    await eventually(lambda: _released_only_when_closed(api, token, sid, oid), timeout=40,
                     what="the reconciler to close the order and free its seat")
    requests = [r for r in (await api.control("GET", "/sandbox/requests"))["items"] if oid in r["path"]]
    assert [r["status"] for r in requests if r["fault"]].count(503) == 3 + 1  # every injected failure was met
    await assert_invariants(INTERVAL)


async def _is(order_id, status):
    return (await statuses([order_id]))[order_id] == status


async def _released_only_when_closed(api, token, sid, oid):
    remaining = await api.remaining(sid)
    view = await api.get_order(token, oid)
    if remaining == 0:
        return False
    assert view["status"] == "expired" and view["reservation"]["status"] == "expired", view
    assert await _wechat_state(api, oid) == "CLOSED"  # released only once WeChat Pay had closed it
    return True
