"""WeChat Pay v3 rules: request signatures, field validation, repeated order numbers, order lifecycle."""
from __future__ import annotations

import datetime as dt
import json
import time

import httpx
import pytest

from tests.harness import http_json, wait_until
from tests.sandbox.wx import jsapi_order, new_trade_no, signed_call, with_client

SIGN_ERROR = {"code": "SIGN_ERROR", "message": "签名错误,请检查后再试"}


def order_body(sandbox, **over):
    """A valid JSAPI order body."""
    body = {"appid": sandbox.env["WECHAT_APPID"], "mchid": sandbox.env["WECHATPAY_MCHID"],
            "description": "体验课", "out_trade_no": new_trade_no(), "notify_url": "http://127.0.0.1:9/notify",
            "amount": {"total": 100, "currency": "CNY"}, "payer": {"openid": "oTestOpenid0000000000000000"}}
    body.update(over)
    return body


def test_signed_request_is_accepted_and_answer_carries_request_id(sandbox):
    response = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", order_body(sandbox))
    assert response.status_code == 200, response.text
    for header in ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial",
                   "Wechatpay-Signature-Type", "Request-ID"):
        assert response.headers.get(header), header
    assert response.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"


@pytest.mark.parametrize("case", ["tampered body", "stale timestamp", "wrong serial", "no authorization",
                                  "tampered query"])
def test_bad_signatures_are_refused(sandbox, case):
    body = order_body(sandbox)
    if case == "tampered body":
        response = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body,
                               sent_body=json.dumps({**body, "amount": {"total": 1, "currency": "CNY"}}))
    elif case == "stale timestamp":
        response = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body, timestamp=int(time.time()) - 400)
    elif case == "wrong serial":
        response = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body, serial="1234ABCD")
    elif case == "tampered query":
        signed = signed_call(sandbox, "GET", f"/v3/pay/transactions/out-trade-no/X123456?mchid=1")
        assert signed.status_code == 400  # correctly signed, wrong mchid: a parameter error, not a signature one
        response = _resend_with_other_uri(sandbox)
    else:
        status, parsed, headers = http_json("POST", sandbox.url + "/v3/pay/transactions/jsapi", body)
        assert status == 401 and {k: parsed[k] for k in ("code", "message")} == SIGN_ERROR
        assert {k.lower(): v for k, v in headers.items()}.get("request-id")
        return
    assert response.status_code == 401
    assert {k: response.json()[k] for k in ("code", "message")} == SIGN_ERROR
    assert response.headers.get("Request-ID")


def _resend_with_other_uri(sandbox):
    good = signed_call(sandbox, "GET", f"/v3/pay/transactions/out-trade-no/X123456?mchid={sandbox.env['WECHATPAY_MCHID']}")
    assert good.status_code == 404
    auth = good.request.headers["Authorization"]
    return httpx.get(sandbox.url + "/v3/pay/transactions/out-trade-no/X654321?mchid=" + sandbox.env["WECHATPAY_MCHID"],
                     headers={"Authorization": auth}, timeout=10)


def test_authorization_fields_in_any_order(sandbox):
    response = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", order_body(sandbox))
    fields = response.request.headers["Authorization"].split(" ", 1)[1].split(",")
    reordered = "WECHATPAY2-SHA256-RSA2048 " + ", ".join(reversed(fields))
    again = httpx.post(sandbox.url + "/v3/pay/transactions/jsapi", content=response.request.content,
                       headers={"Authorization": reordered, "Content-Type": "application/json"}, timeout=10)
    assert again.status_code == 200 and again.json() == response.json()


@pytest.mark.parametrize("change, field", [
    ({"description": ""}, "description"),
    ({"description": "课" * 128}, "description"),
    ({"out_trade_no": "abc"}, "out_trade_no"),
    ({"out_trade_no": "bad#chars!123"}, "out_trade_no"),
    ({"out_trade_no": "x" * 33}, "out_trade_no"),
    ({"time_expire": "2026-01-01 10:00:00"}, "time_expire"),
    ({"notify_url": "ftp://example.com/notify"}, "notify_url"),
    ({"notify_url": None}, "notify_url"),
    ({"amount": {"total": 0, "currency": "CNY"}}, "amount/total"),
    ({"amount": {"total": "100", "currency": "CNY"}}, "amount/total"),
    ({"amount": {"total": 1.5}}, "amount/total"),
    ({"amount": {"total": 100, "currency": "USD"}}, "amount/currency"),
    ({"payer": {}}, "payer/openid"),
    ({"payer": None}, "payer"),
])
def test_field_validation_answers_param_error(sandbox, change, field):
    body = {k: v for k, v in order_body(sandbox, **change).items() if v is not None}
    response = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "PARAM_ERROR" and f"/body/{field}”" in error["message"]
    assert error["detail"]["location"] == "body"


def test_appid_or_mchid_of_someone_else(sandbox):
    for change in ({"appid": "wx0000000000000000"}, {"mchid": "1900000109"}):
        response = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", order_body(sandbox, **change))
        assert response.status_code == 400 and response.json()["code"] == "APPID_MCHID_NOT_MATCH"


def test_same_out_trade_no_same_answer_or_refused(sandbox):
    body = order_body(sandbox, time_expire=(dt.datetime.now().astimezone() + dt.timedelta(hours=1)).isoformat())
    first = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body)
    again = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    other = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", {**body, "amount": {"total": 101, "currency": "CNY"}})
    assert other.status_code == 400 and other.json()["code"] == "INVALID_REQUEST"
    assert "商户订单号重复" in other.json()["message"]
    native = signed_call(sandbox, "POST", "/v3/pay/transactions/native", {k: v for k, v in body.items() if k != "payer"})
    assert native.status_code == 400 and native.json()["code"] == "INVALID_REQUEST"

    sandbox.control("POST", f"/sandbox/orders/{body['out_trade_no']}/pay", {"notify": False})
    paid = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body)
    assert paid.status_code == 400 and paid.json() == {"code": "ORDER_PAID", "message": "订单已支付"}


def test_closed_order_cannot_be_placed_again_or_paid(sandbox):
    body = order_body(sandbox)
    assert signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body).status_code == 200
    path = f"/v3/pay/transactions/out-trade-no/{body['out_trade_no']}/close"
    closed = signed_call(sandbox, "POST", path, {"mchid": sandbox.env["WECHATPAY_MCHID"]})
    assert closed.status_code == 204 and closed.content == b"" and closed.headers["Wechatpay-Signature"]
    again = signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body)
    assert again.status_code == 400 and again.json()["code"] == "ORDER_CLOSED"
    status, error, _ = http_json("POST", f"{sandbox.url}/sandbox/orders/{body['out_trade_no']}/pay", {})
    assert status == 409 and error["code"] == "ORDER_NOT_PAYABLE"
    unknown = signed_call(sandbox, "POST", "/v3/pay/transactions/out-trade-no/NOPE123456/close",
                          {"mchid": sandbox.env["WECHATPAY_MCHID"]})
    assert unknown.status_code == 404 and unknown.json()["code"] == "ORDER_NOT_EXIST"


def test_order_past_time_expire_is_closed_and_not_payable(sandbox):
    soon = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))) + dt.timedelta(seconds=1.5)
    body = order_body(sandbox, time_expire=soon.isoformat())  # RFC 3339 with a fraction of a second
    assert signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body).status_code == 200
    query = f"/v3/pay/transactions/out-trade-no/{body['out_trade_no']}?mchid={sandbox.env['WECHATPAY_MCHID']}"
    assert signed_call(sandbox, "GET", query).json()["trade_state"] == "NOTPAY"

    def closed():
        return signed_call(sandbox, "GET", query).json()["trade_state"] == "CLOSED"

    wait_until(closed, timeout=5, interval=0.1, what="the order to expire")
    view = signed_call(sandbox, "GET", query).json()
    assert view["trade_state_desc"] == "订单已关闭" and "transaction_id" not in view
    status, error, _ = http_json("POST", f"{sandbox.url}/sandbox/orders/{body['out_trade_no']}/pay", {})
    assert status == 409 and error["code"] == "ORDER_NOT_PAYABLE" and error["detail"]["trade_state"] == "CLOSED"


def test_failed_payment_is_payerror_and_can_be_retried(sandbox):
    body = order_body(sandbox)
    signed_call(sandbox, "POST", "/v3/pay/transactions/jsapi", body)
    failed = sandbox.control("POST", f"/sandbox/orders/{body['out_trade_no']}/fail")
    assert failed["order"]["trade_state"] == "PAYERROR"
    query = f"/v3/pay/transactions/out-trade-no/{body['out_trade_no']}?mchid={sandbox.env['WECHATPAY_MCHID']}"
    assert signed_call(sandbox, "GET", query).json()["trade_state"] == "PAYERROR"
    assert sandbox.control("GET", f"/sandbox/notifications?out_trade_no={body['out_trade_no']}")["items"] == []
    paid = sandbox.control("POST", f"/sandbox/orders/{body['out_trade_no']}/pay", {"notify": False})
    assert paid["order"]["trade_state"] == "SUCCESS"


def test_query_needs_the_merchant_id(sandbox):
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, "Q" + "1" * 20, "http://127.0.0.1:9/n")))
    missing = signed_call(sandbox, "GET", "/v3/pay/transactions/out-trade-no/Q11111111111111111111")
    assert missing.status_code == 400 and missing.json()["code"] == "PARAM_ERROR"
