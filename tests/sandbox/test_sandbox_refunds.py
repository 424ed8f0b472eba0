"""Refund rules: amounts, repeats, limits, automatic settling and the ABNORMAL outcome."""
from __future__ import annotations

from tests.harness import http_json, wait_until
from tests.sandbox.wx import make_client, new_trade_no, signed_call


def paid(sandbox, total=1000):
    """A paid Native order; returns out_trade_no."""
    no = new_trade_no("P")
    body = {"appid": sandbox.env["WECHAT_APPID"], "mchid": sandbox.env["WECHATPAY_MCHID"], "description": "课程",
            "out_trade_no": no, "notify_url": "http://127.0.0.1:9/n", "amount": {"total": total}}
    assert signed_call(sandbox, "POST", "/v3/pay/transactions/native", body).status_code == 200
    sandbox.control("POST", f"/sandbox/orders/{no}/pay", {"notify": False})
    return no


def refund(sandbox, no, out_refund_no, amount, total=1000, notify_url=None, **extra):
    """POST /v3/refund/domestic/refunds; returns the httpx response."""
    body = {"out_trade_no": no, "out_refund_no": out_refund_no,
            "amount": {"refund": amount, "total": total, "currency": "CNY"}, **extra}
    if notify_url:
        body["notify_url"] = notify_url
    return signed_call(sandbox, "POST", "/v3/refund/domestic/refunds", body)


def test_refund_amount_rules(sandbox):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    no = paid(sandbox)
    first = refund(sandbox, no, "RF-" + no, 600)
    assert first.status_code == 200 and first.json()["status"] == "PROCESSING"
    assert first.json()["channel"] == "ORIGINAL" and first.json()["create_time"].endswith("+08:00")
    repeat = refund(sandbox, no, "RF-" + no, 600)
    assert repeat.status_code == 200 and repeat.json()["refund_id"] == first.json()["refund_id"]
    changed = refund(sandbox, no, "RF-" + no, 500)
    assert changed.status_code == 400 and changed.json()["code"] == "INVALID_REQUEST"
    too_much = refund(sandbox, no, "RF2-" + no, 401)
    assert too_much.status_code == 400 and too_much.json()["code"] == "INVALID_REQUEST"
    wrong_total = refund(sandbox, no, "RF3-" + no, 100, total=999)
    assert wrong_total.status_code == 400 and wrong_total.json()["code"] == "INVALID_REQUEST"
    rest = refund(sandbox, no, "RF4-" + no, 400)
    assert rest.status_code == 200
    full = refund(sandbox, no, "RF5-" + no, 1)
    assert full.status_code == 400 and full.json()["message"] == "订单已全额退款"


def test_refund_of_unknown_or_unpaid_order(sandbox):
    unknown = refund(sandbox, "NOSUCHORDER1", "RF-NOSUCH1", 1)
    assert unknown.status_code == 404 and unknown.json()["code"] == "RESOURCE_NOT_EXISTS"
    no = new_trade_no("U")
    body = {"appid": sandbox.env["WECHAT_APPID"], "mchid": sandbox.env["WECHATPAY_MCHID"], "description": "课程",
            "out_trade_no": no, "notify_url": "http://127.0.0.1:9/n", "amount": {"total": 1000}}
    signed_call(sandbox, "POST", "/v3/pay/transactions/native", body)
    unpaid = refund(sandbox, no, "RF-" + no, 1)
    assert unpaid.status_code == 400 and unpaid.json()["code"] == "INVALID_REQUEST"
    missing = signed_call(sandbox, "GET", "/v3/refund/domestic/refunds/NO-SUCH-REFUND")
    assert missing.status_code == 404 and missing.json()["code"] == "RESOURCE_NOT_EXISTS"
    invalid = refund(sandbox, no, "bad refund no!", 1)
    assert invalid.status_code == 400 and invalid.json()["code"] == "PARAM_ERROR"


def test_at_most_fifty_refunds(sandbox):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    no = paid(sandbox, total=100)
    for i in range(50):
        assert refund(sandbox, no, f"R{i}-{no}", 1, total=100).status_code == 200
    over = refund(sandbox, no, f"R50-{no}", 1, total=100)
    assert over.status_code == 400 and "50" in over.json()["message"]


def test_refund_settles_by_itself_after_the_scaled_delay(sandbox, receiver):
    no = paid(sandbox)
    created = refund(sandbox, no, "AUTO-" + no, 1000, notify_url=receiver.url("/auto"))
    assert created.json()["status"] == "PROCESSING"
    [note] = receiver.wait_for("/auto", timeout=5)  # 2 s x 0.01
    event = make_client(sandbox, "pubkey").callback(note["headers"], note["body"])
    assert event["event_type"] == "REFUND.SUCCESS" and event["summary"] == "退款成功"
    assert event["resource"]["refund_status"] == "SUCCESS" and event["resource"]["success_time"]
    assert event["resource"]["amount"] == {"total": 1000, "refund": 1000, "payer_total": 1000, "payer_refund": 1000}
    query = f"/v3/pay/transactions/out-trade-no/{no}?mchid={sandbox.env['WECHATPAY_MCHID']}"
    assert signed_call(sandbox, "GET", query).json()["trade_state"] == "REFUND"


def test_abnormal_refund(sandbox, receiver):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    no = paid(sandbox)
    refund(sandbox, no, "AB-" + no, 100, notify_url=receiver.url("/abnormal"))
    settled = sandbox.control("POST", f"/sandbox/refunds/AB-{no}/settle", {"result": "ABNORMAL"})
    assert settled["status"] == "ABNORMAL"
    [note] = receiver.wait_for("/abnormal")
    event = make_client(sandbox, "pubkey").callback(note["headers"], note["body"])
    assert event["event_type"] == "REFUND.ABNORMAL" and event["resource"]["refund_status"] == "ABNORMAL"
    query = f"/v3/pay/transactions/out-trade-no/{no}?mchid={sandbox.env['WECHATPAY_MCHID']}"
    assert signed_call(sandbox, "GET", query).json()["trade_state"] == "SUCCESS"
    again = signed_call(sandbox, "GET", f"/v3/refund/domestic/refunds/AB-{no}")
    assert again.json()["status"] == "ABNORMAL"


def test_abnormal_refund_ends_success_after_a_person_looks_at_it(sandbox, receiver):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    no = paid(sandbox)
    refund(sandbox, no, "AS-" + no, 100, notify_url=receiver.url("/abnormal-success"))
    sandbox.control("POST", f"/sandbox/refunds/AS-{no}/settle", {"result": "ABNORMAL"})
    receiver.wait_for("/abnormal-success")
    status, error, _ = http_json("POST", f"{sandbox.url}/sandbox/refunds/AS-{no}/settle", {"result": "ABNORMAL"})
    assert status == 409 and error["code"] == "REFUND_SETTLED"
    assert sandbox.control("POST", f"/sandbox/refunds/AS-{no}/settle", {"result": "SUCCESS"})["status"] == "SUCCESS"
    abnormal, success = receiver.wait_for("/abnormal-success", 2)
    client = make_client(sandbox, "pubkey")
    assert client.callback(abnormal["headers"], abnormal["body"])["event_type"] == "REFUND.ABNORMAL"
    event = client.callback(success["headers"], success["body"])
    assert event["event_type"] == "REFUND.SUCCESS" and event["resource"]["success_time"]
    assert signed_call(sandbox, "GET", f"/v3/refund/domestic/refunds/AS-{no}").json()["status"] == "SUCCESS"
    query = f"/v3/pay/transactions/out-trade-no/{no}?mchid={sandbox.env['WECHATPAY_MCHID']}"
    assert signed_call(sandbox, "GET", query).json()["trade_state"] == "REFUND"
    for result in ("SUCCESS", "CLOSED", "ABNORMAL"):
        status, error, _ = http_json("POST", f"{sandbox.url}/sandbox/refunds/AS-{no}/settle", {"result": result})
        assert status == 409 and error["code"] == "REFUND_SETTLED"


def test_abnormal_refund_closed_frees_the_amount(sandbox, receiver):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    no = paid(sandbox)
    refund(sandbox, no, "AC-" + no, 1000, notify_url=receiver.url("/abnormal-closed"))
    sandbox.control("POST", f"/sandbox/refunds/AC-{no}/settle", {"result": "ABNORMAL"})
    receiver.wait_for("/abnormal-closed")
    assert refund(sandbox, no, "AC2-" + no, 1).status_code == 400, "an abnormal refund still holds its amount"
    assert sandbox.control("POST", f"/sandbox/refunds/AC-{no}/settle", {"result": "CLOSED"})["status"] == "CLOSED"
    _, closed = receiver.wait_for("/abnormal-closed", 2)
    event = make_client(sandbox, "pubkey").callback(closed["headers"], closed["body"])
    assert event["event_type"] == "REFUND.CLOSED" and event["resource"]["refund_status"] == "CLOSED"
    assert refund(sandbox, no, "AC3-" + no, 1000).status_code == 200


def test_settle_delay_is_configurable(sandbox):
    sandbox.control("POST", "/sandbox/config", {"refund_settle_seconds": 0})
    no = paid(sandbox)
    refund(sandbox, no, "NOW-" + no, 10)
    wait_until(lambda: sandbox.control("GET", f"/sandbox/refunds/NOW-{no}")["status"] == "SUCCESS",
               what="the refund to settle at once")
