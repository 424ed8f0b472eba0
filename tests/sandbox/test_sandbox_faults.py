"""Injected faults on WeChat Pay v3: errors before validation, counts, method filters, latency before handling or
held answers, client timeouts, 5xx; a delayed request never blocks the others."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.harness import http_json, wait_until
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
                 {"path_prefix": "/v3/", "status": "500"}, {"path_prefix": "/sandbox/health", "status": 500},
                 {"path_prefix": "/v3/", "latency_ms": 10, "latency_on": "later"}):
        status, body, _ = http_json("POST", f"{sandbox.url}/sandbox/faults", spec)
        assert status == 400 and body["code"] == "INVALID_REQUEST", spec


def _jsapi_in_background(sandbox, no, timeout=(5, 10)):
    """Place a JSAPI order with wechatpayv3 on a thread; returns (thread, result dict: status, text, seconds)."""
    result = {}

    def run():
        async def work(client):
            started = time.monotonic()
            try:
                result["status"], result["text"] = await client.pay(**jsapi_order(sandbox, no, "http://127.0.0.1:9/n"))
            except httpx.TimeoutException as exc:
                result["error"] = exc
            result["seconds"] = time.monotonic() - started
        with_client(sandbox, "pubkey", timeout=timeout)(work)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _order_or_none(sandbox, no):
    """The sandbox's order `no`, or None while it does not exist."""
    status, order, _ = http_json("GET", f"{sandbox.url}/sandbox/orders/{no}")
    return order if status == 200 else None


def _fault_taken(sandbox):
    """True once the pending fault was taken by a request (which is now waiting)."""
    return sandbox.control("GET", "/sandbox/faults")["faults"] == []


def test_latency_only_fault_delays_jsapi_then_answers_200_without_blocking_others(sandbox):
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "latency_ms": 2500})
    no = new_trade_no()
    thread, result = _jsapi_in_background(sandbox, no)
    wait_until(lambda: _fault_taken(sandbox), what="the JSAPI request to take the fault")
    mchid = sandbox.env["WECHATPAY_MCHID"]
    started = time.monotonic()
    for _ in range(5):  # other requests, WeChat Pay and control alike, are answered meanwhile
        assert signed_call(sandbox, "GET", f"/v3/pay/transactions/out-trade-no/OTHER123?mchid={mchid}").status_code == 404
        assert _order_or_none(sandbox, no) is None, "not handled before the delay"
    assert time.monotonic() - started < 1.0 and thread.is_alive()
    thread.join(10)
    assert result["status"] == 200 and json.loads(result["text"])["prepay_id"].startswith("wx")
    assert result["seconds"] >= 2.5
    assert sandbox.control("GET", f"/sandbox/orders/{no}")["prepay_id"] == json.loads(result["text"])["prepay_id"]


def test_answer_held_back_while_the_merchant_closes_the_order(sandbox):
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "latency_ms": 2000,
                                                "latency_on": "answer"})
    no = new_trade_no()
    thread, result = _jsapi_in_background(sandbox, no)
    placed = wait_until(lambda: _order_or_none(sandbox, no), what="the order to exist while its answer is held")
    assert thread.is_alive()
    (closed, _), _ = with_client(sandbox, "pubkey")(lambda c: c.close(no))
    assert closed == 204
    thread.join(10)
    assert result["status"] == 200 and json.loads(result["text"])["prepay_id"] == placed["prepay_id"]
    assert result["seconds"] >= 2.0
    assert sandbox.control("GET", f"/sandbox/orders/{no}")["trade_state"] == "CLOSED"


def test_latency_longer_than_the_client_timeout(sandbox):
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "latency_ms": 1500})
    no = new_trade_no()
    thread, result = _jsapi_in_background(sandbox, no, timeout=(1, 0.5))
    thread.join(10)
    assert isinstance(result["error"], httpx.TimeoutException) and result["seconds"] < 1.5
    # The request did reach WeChat Pay: it is handled when the latency is over, the answer goes nowhere.
    wait_until(lambda: _order_or_none(sandbox, no), what="the order to be placed after the latency")
    [record] = [r for r in sandbox.control("GET", "/sandbox/requests?path_prefix=/v3/pay/transactions/jsapi")["items"]
                if r["request_body"]["out_trade_no"] == no]
    assert record["fault"] and record["client_gone"] and record["status"] == 200


@pytest.mark.parametrize("status,code,message", [(502, "SYSTEM_ERROR", "系统错误"),
                                                 (503, "SYSTEM_ERROR", "系统繁忙，请稍后重试"),
                                                 (504, "SYSTEM_ERROR", "系统超时")])
def test_5xx_answers(sandbox, status, code, message):
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "status": status})
    no = new_trade_no()
    (answer, text), _ = with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, "http://x.cn/n")))
    assert answer == status and json.loads(text) == {"code": code, "message": message}
    assert _order_or_none(sandbox, no) is None, "a failing fault handles nothing"


def test_handled_fault_does_the_work_and_answers_the_error(sandbox):
    """WeChat Pay made the refund (and placed the order) but answered an error: `handled` faults."""
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    no, out_refund_no = new_trade_no("H"), new_trade_no("HR")
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "status": 503,
                                                "handled": True})
    placed = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", {
        **jsapi_order(sandbox, no, "http://127.0.0.1:9/n"), "appid": sandbox.env["WECHAT_APPID"],
        "mchid": sandbox.env["WECHATPAY_MCHID"], "amount": {"total": 20000, "currency": "CNY"}})
    assert placed.status_code == 503 and not placed.headers.get("Wechatpay-Signature"), "a 5xx is unsigned"
    assert sandbox.control("GET", f"/sandbox/orders/{no}")["trade_state"] == "NOTPAY", "yet the order was placed"
    sandbox.control("POST", f"/sandbox/orders/{no}/pay", {"notify": False})

    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/refund/domestic/refunds", "method": "POST",
                                                "status": 400, "code": "INVALID_REQUEST", "message": "退款被拒绝",
                                                "handled": True})
    (status, text), _ = with_client(sandbox, "pubkey")(lambda c: c.refund(
        out_refund_no=out_refund_no, amount={"refund": 20000, "total": 20000, "currency": "CNY"}, out_trade_no=no))
    assert status == 400 and json.loads(text) == {"code": "INVALID_REQUEST", "message": "退款被拒绝"}
    record = sandbox.control("GET", "/sandbox/requests?path_prefix=/v3/refund/domestic/refunds&method=POST")["items"]
    assert record[-1]["signed_with"] == "pubkey", "a 4xx refusal is signed, handled or not"
    refund = sandbox.control("GET", f"/sandbox/refunds/{out_refund_no}")
    assert refund["status"] == "PROCESSING", "the refund exists at WeChat Pay all the same"
    (status, text), _ = with_client(sandbox, "pubkey")(lambda c: c.query_refund(out_refund_no))
    assert status == 200 and json.loads(text)["refund_id"] == refund["refund_id"]

    for bad in ({"path_prefix": "/sns/", "status": 500, "handled": True},
                {"path_prefix": "/v3/", "latency_ms": 10, "handled": True}):
        status, _, _ = http_json("POST", f"{sandbox.url}/sandbox/faults", bad)
        assert status == 400, bad


def _held(sandbox):
    return sandbox.control("GET", "/sandbox/faults")["held"]


def test_hold_keeps_requests_unhandled_until_released_and_a_delete_releases_too(sandbox):
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "hold": True,
                                                "count": 3})
    first, second, third = new_trade_no(), new_trade_no(), new_trade_no()
    held = [_jsapi_in_background(sandbox, no) for no in (first, second)]
    wait_until(lambda: _held(sandbox) == 2, what="two JSAPI requests held")
    mchid = sandbox.env["WECHATPAY_MCHID"]
    assert signed_call(sandbox, "GET", f"/v3/pay/transactions/out-trade-no/OTHER123?mchid={mchid}").status_code == 404
    assert _order_or_none(sandbox, first) is None and _order_or_none(sandbox, second) is None
    assert all(thread.is_alive() for thread, _ in held)
    assert sandbox.control("POST", "/sandbox/faults/release") == {"released": 2}
    for thread, result in held:
        thread.join(10)
        assert result["status"] == 200, result
    assert _order_or_none(sandbox, first) and _order_or_none(sandbox, second) and _held(sandbox) == 0
    thread, result = _jsapi_in_background(sandbox, third)  # the rule's third request: held until the DELETE
    wait_until(lambda: _held(sandbox) == 1, what="the third JSAPI request held")
    sandbox.control("DELETE", "/sandbox/faults")
    thread.join(10)
    assert result["status"] == 200 and _order_or_none(sandbox, third) and _held(sandbox) == 0
