"""The sandbox held against wechatpayv3's AsyncWeChatPay, in public-key mode and in certificate mode."""
from __future__ import annotations

import json

import pytest
from wechatpayv3.async_ import WeChatPayType

from tests.sandbox.wx import jsapi_order, make_client, new_trade_no, with_client

MODES = ["pubkey", "cert"]


@pytest.fixture(params=MODES)
def mode(request, sandbox):
    """Both platform-key modes; notifications are signed in the same mode as the client expects."""
    sandbox.control("POST", "/sandbox/config", {"notify_key_mode": request.param})
    return request.param


def signed_with(sandbox, path_prefix):
    """Which key signed the last 2xx answer under `path_prefix`, according to the sandbox's record."""
    items = sandbox.control("GET", f"/sandbox/requests?path_prefix={path_prefix}")["items"]
    return [e for e in items if e["status"] < 300][-1]["signed_with"]


def test_certificate_mode_downloads_platform_certificate(sandbox, tmp_path):
    (status, _), client = with_client(sandbox, "cert", tmp_path / "certs")(
        lambda c: c.query(out_trade_no=new_trade_no()))
    assert status == 404
    serial = sandbox.control("GET", "/sandbox/info")["platform_cert_serial"]
    assert (tmp_path / "certs" / f"{serial}.pem").exists()
    assert [format(c.serial_number, "X") for c in client._core._certificates] == [serial]


def test_jsapi_order_query_pay_notify(sandbox, receiver, mode, tmp_path):
    path = f"/pay/{mode}"
    no = new_trade_no()

    async def place(client):
        status, text = await client.pay(**jsapi_order(sandbox, no, receiver.url(path)))
        again = await client.pay(**jsapi_order(sandbox, no, receiver.url(path)))
        return status, json.loads(text), again

    (status, answer, again), _ = with_client(sandbox, mode, tmp_path / "certs")(place)
    assert status == 200 and answer["prepay_id"].startswith("wx")
    assert again[0] == 400, "the same out_trade_no with another payer is refused"
    assert signed_with(sandbox, "/v3/pay/transactions/jsapi") == mode

    paid = sandbox.control("POST", f"/sandbox/orders/{no}/pay", {})
    assert paid["order"]["trade_state"] == "SUCCESS" and len(paid["order"]["transaction_id"]) == 28
    [note] = receiver.wait_for(path)

    async def query(client):
        return await client.query(out_trade_no=no), client.callback(note["headers"], note["body"])

    ((status, text), event), _ = with_client(sandbox, mode, tmp_path / "certs")(query)
    transaction = json.loads(text)
    assert status == 200
    assert transaction["trade_state"] == "SUCCESS" and transaction["trade_type"] == "JSAPI"
    assert transaction["amount"] == {"total": 20000, "payer_total": 20000, "currency": "CNY", "payer_currency": "CNY"}
    assert event is not None, "wechatpayv3 could not verify or decrypt the notification"
    assert event["event_type"] == "TRANSACTION.SUCCESS" and event["summary"] == "支付成功"
    assert event["id"].startswith("EV-") and event["create_time"].endswith("+08:00")
    assert event["resource"] == transaction
    expected_serial = sandbox.env["WECHATPAY_PUBLIC_KEY_ID"] if mode == "pubkey" \
        else sandbox.control("GET", "/sandbox/info")["platform_cert_serial"]
    assert note["headers"]["Wechatpay-Serial"] == expected_serial


def test_native_order_close_and_query_by_transaction_id(sandbox, mode, tmp_path):
    closed, paid = new_trade_no("N"), new_trade_no("N")

    async def work(client):
        results = {}
        for no in (closed, paid):
            results[no] = await client.pay(description="扫码支付", out_trade_no=no, amount={"total": 1},
                                           pay_type=WeChatPayType.NATIVE)
        results["close"] = await client.close(closed)
        results["close_again"] = await client.close(closed)
        results["query_closed"] = await client.query(out_trade_no=closed)
        return results

    results, _ = with_client(sandbox, mode, tmp_path / "certs")(work)
    assert results[closed][0] == 200
    assert json.loads(results[closed][1])["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    assert results["close"][0] == 204 and results["close_again"][0] == 204
    assert json.loads(results["query_closed"][1])["trade_state"] == "CLOSED"

    transaction_id = sandbox.control("POST", f"/sandbox/orders/{paid}/pay", {"notify": False})["order"]["transaction_id"]

    async def after(client):
        return (await client.query(transaction_id=transaction_id), await client.close(paid),
                await client.query(transaction_id="4200000000000000000000000000"))

    (by_id, close_paid, unknown), _ = with_client(sandbox, mode, tmp_path / "certs")(after)
    assert by_id[0] == 200 and json.loads(by_id[1])["out_trade_no"] == paid
    assert json.loads(by_id[1])["trade_type"] == "NATIVE"
    assert close_paid[0] == 400 and json.loads(close_paid[1]) == {"code": "ORDER_PAID", "message": "订单已支付"}
    assert unknown[0] == 404 and json.loads(unknown[1])["code"] == "ORDER_NOT_EXIST"


def test_refund_settles_and_notifies(sandbox, receiver, mode, tmp_path):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    no, refund_no, path = new_trade_no("R"), new_trade_no("RF"), f"/refund/{mode}"

    async def order(client):
        return await client.pay(**jsapi_order(sandbox, no, receiver.url("/pay/ignored"), total=300))

    with_client(sandbox, mode, tmp_path / "certs")(order)
    sandbox.control("POST", f"/sandbox/orders/{no}/pay", {"notify": False})

    async def refund(client):
        created = await client.refund(out_refund_no=refund_no, amount={"refund": 100, "total": 300, "currency": "CNY"},
                                      out_trade_no=no, reason="课程取消", notify_url=receiver.url(path))
        return created, await client.query_refund(refund_no)

    ((status, text), (q_status, q_text)), _ = with_client(sandbox, mode, tmp_path / "certs")(refund)
    created = json.loads(text)
    assert status == 200 and created["status"] == "PROCESSING" and created["out_refund_no"] == refund_no
    assert created["amount"]["refund"] == 100 and created["amount"]["total"] == 300
    assert q_status == 200 and json.loads(q_text)["refund_id"] == created["refund_id"]

    sandbox.control("POST", f"/sandbox/refunds/{refund_no}/settle", {"result": "SUCCESS"})
    [note] = receiver.wait_for(path)

    async def verify(client):
        return client.callback(note["headers"], note["body"]), await client.query(out_trade_no=no), \
            await client.query_refund(refund_no)

    (event, (_, order_text), (_, refund_text)), _ = with_client(sandbox, mode, tmp_path / "certs")(verify)
    assert event["event_type"] == "REFUND.SUCCESS" and event["resource"]["refund_status"] == "SUCCESS"
    assert event["resource"]["out_refund_no"] == refund_no and event["resource"]["amount"]["refund"] == 100
    assert json.loads(order_text)["trade_state"] == "REFUND"
    assert json.loads(refund_text)["status"] == "SUCCESS"


def test_tampered_notification_fails_verification(sandbox, receiver, tmp_path):
    no, path = new_trade_no(), "/pay/tampered"
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, receiver.url(path))))
    sandbox.control("POST", f"/sandbox/orders/{no}/pay", {})
    [note] = receiver.wait_for(path)
    client = make_client(sandbox, "pubkey")
    assert client.callback(note["headers"], note["body"]) is not None
    assert client.callback(note["headers"], note["body"].replace("支付成功", "支付失败")) is None
