"""Injected faults on WeChat Pay v3: errors before validation, counts, method filters, latency."""
from __future__ import annotations

import time

from tests.harness import http_json
from tests.sandbox.wx import jsapi_order, new_trade_no, signed_call, with_client


def test_system_error_then_normal_service(sandbox):
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions", "method": "POST",
                                                "status": 500, "code": "SYSTEM_ERROR", "count": 2})
    no = new_trade_no()

    async def work(client):
        return [await client.pay(**jsapi_order(sandbox, no, "http://127.0.0.1:9/n")) for _ in range(3)]

    results, _ = with_client(sandbox, "pubkey")(work)
    assert [r[0] for r in results] == [500, 500, 200]
    assert results[0][1] == '{"code":"SYSTEM_ERROR","message":"系统错误"}'
    recorded = sandbox.control("GET", "/sandbox/requests?path_prefix=/v3/pay/transactions/jsapi")["items"][-3:]
    assert [r["fault"] for r in recorded] == [True, True, False]
    assert sandbox.control("GET", "/sandbox/faults")["faults"] == []


def test_frequency_limited_applies_before_authentication(sandbox):
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/", "status": 429})
    status, body, _ = http_json("GET", f"{sandbox.url}/v3/pay/transactions/out-trade-no/X1234567?mchid=1")
    assert status == 429 and body == {"code": "FREQUENCY_LIMITED", "message": "频率超限"}


def test_method_filter_and_custom_error(sandbox):
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/refund", "method": "POST", "status": 403,
                                                "code": "NOT_ENOUGH", "message": "基本账户余额不足", "count": -1})
    query = signed_call(sandbox, "GET", "/v3/refund/domestic/refunds/NOPE")
    assert query.status_code == 404
    for _ in range(2):
        created = signed_call(sandbox, "POST", "/v3/refund/domestic/refunds", {"out_refund_no": "x"})
        assert created.status_code == 403 and created.json()["code"] == "NOT_ENOUGH"
    sandbox.control("DELETE", "/sandbox/faults")
    assert signed_call(sandbox, "POST", "/v3/refund/domestic/refunds", {"out_refund_no": "x"}).status_code == 400


def test_latency_only(sandbox):
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/out-trade-no",
                                                "latency_ms": 300})
    started = time.monotonic()
    response = signed_call(sandbox, "GET", "/v3/pay/transactions/out-trade-no/NOPE123?mchid=" +
                           sandbox.env["WECHATPAY_MCHID"])
    assert time.monotonic() - started >= 0.3 and response.status_code == 404
    started = time.monotonic()
    signed_call(sandbox, "GET", "/v3/pay/transactions/out-trade-no/NOPE123?mchid=" + sandbox.env["WECHATPAY_MCHID"])
    assert time.monotonic() - started < 0.3


def test_bad_fault_specs_are_refused(sandbox):
    for spec in ({"path_prefix": "v3"}, {"path_prefix": "/v3/", "status": 200}, {"path_prefix": "/v3/", "count": 0},
                 {"path_prefix": "/v3/", "status": "500"}, {"path_prefix": "/sandbox/health", "status": 500}):
        status, body, _ = http_json("POST", f"{sandbox.url}/sandbox/faults", spec)
        assert status == 400 and body["code"] == "INVALID_REQUEST", spec
