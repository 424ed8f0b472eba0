"""Prepay, the notification applied exactly once, forged notifications, cancel, and WeChat Pay faults."""
import asyncio
import base64
import datetime as dt
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from models import WechatPayNotification, PaymentAuditLog, PaymentOrder, PaymentTransaction
from tests.api import eventually
from tests.forge import Forger

CALLBACK = "/api/v1/payment/wxpay/callback"


async def _paid_setup(api, capacity=5):
    return await api.order_in_payment(capacity=capacity)


async def _status(api, token, order_id):
    return (await api.get_order(token, order_id))["status"]


def _verify_pay_sign(env, params):
    with open(env["WECHATPAY_PRIVATE_KEY_FILE"], "rb") as fh:
        key = serialization.load_pem_private_key(fh.read(), password=None)
    message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    key.public_key().verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.gen_test(timeout=60)
async def test_prepay_returns_signed_request_payment_params_and_is_reused(api, service_env):
    sid, token, openid, order, params = await _paid_setup(api)
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["appId"] == service_env["WECHAT_APPID"] and params["signType"] == "RSA"
    assert params["package"].startswith("prepay_id=") and params["timeStamp"].isdigit()
    _verify_pay_sign(service_env, params)
    status, again = await api.prepay(token, order["order_id"])
    assert status == 200 and again["package"] == params["package"]
    placed = await api.control("GET", f"/sandbox/orders/{order['order_id']}")
    # WeChat Pay's time_expire is the order's end, and the hold now lasts until then too.
    view = await api.get_order(token, order["order_id"])
    assert dt.datetime.fromisoformat(placed["time_expire"]) == dt.datetime.fromisoformat(view["expires_at"])
    assert view["reservation"]["expires_at"] == view["expires_at"]
    jsapi_calls = [r for r in (await api.control("GET", "/sandbox/requests"))["items"]
                   if r["path"] == "/v3/pay/transactions/jsapi" and order["order_id"] in str(r)]
    assert len(jsapi_calls) == 1


@pytest.mark.gen_test(timeout=60)
async def test_payment_notification_confirms_the_booking(api):
    sid, token, _, order, _ = await _paid_setup(api, capacity=2)
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
    await eventually(lambda: _is(api, token, order["order_id"], "paid"), what="order paid")
    view = await api.get_order(token, order["order_id"])
    assert view["reservation"]["status"] == "confirmed" and view["transaction_id"] and view["paid_at"]
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
    txns = list(await PaymentTransaction.select().where(PaymentTransaction.order == row.id).aio_execute())
    assert len(txns) == 1 and txns[0].total_fee == 20000 and txns[0].trade_state == "SUCCESS"
    actions = {a.action_type for a in await PaymentAuditLog.select().where(PaymentAuditLog.order == row.id)
               .aio_execute()}
    assert {"payment_started", "prepay_created", "transaction_recorded", "seat_confirmed",
            "payment_succeeded"} <= actions
    assert await api.remaining(sid) == 1
    status, body = await api.order(token, sid)
    assert status == 409 and body["error"]["code"] == "TRIAL_ALREADY_BOOKED"
    assert body["error"]["message"] == "您已预约过体验课，无法重复预约"
    sends = (await api.control("GET", "/sandbox/notifications"))["items"]
    mine = [n for n in sends if n.get("out_trade_no") == order["order_id"]]
    assert mine and mine[0]["attempts"][-1]["status"] == 204


async def _is(api, token, order_id, status):
    return (await api.get_order(token, order_id))["status"] == status


@pytest.mark.gen_test(timeout=60)
async def test_20_concurrent_duplicate_notifications_make_one_transaction(api, sandbox, base_url):
    sid, token, openid, order, _ = await _paid_setup(api)
    forger = Forger(sandbox.state_dir, sandbox.env)
    txn = forger.transaction(order["order_id"], openid=openid)
    body = forger.body(txn)
    results = await asyncio.gather(*[
        api.call("POST", CALLBACK, raw=body, headers=forger.headers(body)) for _ in range(20)])
    assert [r[0] for r in results] == [204] * 20
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
    assert row.status == "paid"
    assert await PaymentTransaction.select().where(PaymentTransaction.order == row.id).aio_count() == 1
    assert await PaymentAuditLog.select().where((PaymentAuditLog.order == row.id)
                                                & (PaymentAuditLog.action_type == "payment_succeeded")).aio_count() == 1


@pytest.mark.gen_test(timeout=60)
async def test_sandbox_duplicated_delivery_is_applied_once(api):
    sid, token, _, order, _ = await _paid_setup(api)
    await api.control("POST", "/sandbox/notifications/next", {"action": "duplicate", "count": 1, "copies": 6})
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
    await eventually(lambda: _is(api, token, order["order_id"], "paid"), what="order paid")

    async def all_answered():
        sent = [n for n in (await api.control("GET", "/sandbox/notifications"))["items"]
                if n.get("out_trade_no") == order["order_id"]]
        attempts = [a for n in sent for a in n["attempts"]]
        return len(attempts) >= 6 and all(a.get("status") == 204 for a in attempts)

    await eventually(all_answered, what="all six deliveries answered 204")
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
    assert await PaymentTransaction.select().where(PaymentTransaction.order == row.id).aio_count() == 1


@pytest.mark.gen_test(timeout=60)
async def test_forged_notifications_change_nothing(api, sandbox):
    sid, token, openid, order, _ = await _paid_setup(api)
    forger = Forger(sandbox.state_dir, sandbox.env)
    good = forger.transaction(order["order_id"], openid=openid)
    cases = []
    body = forger.body(good)
    cases.append(("bad signature", body, {**forger.headers(body), "Wechatpay-Signature": base64.b64encode(
        b"x" * 256).decode()}, 401))
    cases.append(("stale timestamp", body, forger.headers(body, timestamp=time.time() - 3600), 401))
    cases.append(("future timestamp", body, forger.headers(body, timestamp=time.time() + 3600), 401))
    cases.append(("wrong key", body, forger.headers(body, key=Forger.stranger_key()), 401))
    cases.append(("unknown serial", body, forger.headers(body, serial="PUB_KEY_ID_0000000000"), 401))
    cases.append(("signature probe", body, {**forger.headers(body),
                                            "Wechatpay-Signature": "WECHATPAY/SIGNTEST/abc"}, 401))
    tampered = body.replace(b'"summary"', b'"summarY"')
    cases.append(("body changed after signing", tampered, forger.headers(body), 401))
    garbage = b'{"id": "EV-1", "resource": {"ciphertext": "AAAA", "nonce": "x", "algorithm": "AEAD_AES_256_GCM"}}'
    cases.append(("undecryptable", garbage, forger.headers(garbage), 400))
    for what, over, expect in (("wrong amount", {"amount": {"total": 1, "payer_total": 1, "currency": "CNY"}}, 204),
                               ("wrong mchid", {"mchid": "1999999999"}, 204),
                               ("wrong appid", {"appid": "wx0000000000000000"}, 204),
                               ("wrong currency", {"amount": {"total": 20000, "currency": "USD"}}, 204)):
        b = forger.body({**good, **over})
        cases.append((what, b, forger.headers(b), expect))
    for what, b, headers, expect in cases:
        status, answer, _ = await api.call("POST", CALLBACK, raw=b, headers=headers)
        assert status == expect, (what, status, answer)
        if status != 204:
            assert answer["code"] == "FAIL", what
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
    assert row.status == "pending" and row.transaction_id is None
    assert await PaymentTransaction.select().where(PaymentTransaction.order == row.id).aio_count() == 0
    anomalies = await PaymentAuditLog.select().where((PaymentAuditLog.order == row.id)
                                                     & (PaymentAuditLog.action_type == "payment_anomaly")).aio_count()
    assert anomalies == 4
    refused = list(await WechatPayNotification.select().where(WechatPayNotification.outcome == "refused").aio_execute())
    assert sum(r.deliveries for r in refused) >= 8 and {r.http_status for r in refused} == {400, 401}


@pytest.mark.gen_test(timeout=60)
async def test_cancel_closes_at_wechat_pay_and_frees_the_seat(api):
    sid, token, _, order, _ = await _paid_setup(api, capacity=1)
    assert await api.remaining(sid) == 0
    status, view, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel", {}, token=token)
    assert status == 200 and view["status"] == "cancelled" and view["reservation"]["status"] == "cancelled"
    assert await api.remaining(sid) == 1
    placed = await api.control("GET", f"/sandbox/orders/{order['order_id']}")
    assert placed["trade_state"] == "CLOSED"
    status, body = await api.prepay(token, order["order_id"])
    assert status == 409 and body["error"]["code"] == "ORDER_NOT_PAYABLE"


@pytest.mark.gen_test(timeout=60)
async def test_payment_failed_cancel_marks_failed(api):
    sid, token, _, order, _ = await _paid_setup(api, capacity=1)
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/fail")
    status, view, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel",
                                     {"reason": "payment_failed"}, token=token)
    assert status == 200 and view["status"] == "failed" and view["failure_reason"] == "payment_failed"
    assert await api.remaining(sid) == 1


@pytest.mark.gen_test(timeout=60)
async def test_cancel_when_wechat_pay_says_paid_applies_the_payment(api):
    sid, token, _, order, _ = await _paid_setup(api)
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": False})
    status, view, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel", {}, token=token)
    assert status == 200 and view["status"] == "paid" and view["reservation"]["status"] == "confirmed"


@pytest.mark.gen_test(timeout=60)
async def test_wechat_pay_errors_are_mapped_and_the_hold_is_kept(api):
    sid = await api.schedule(capacity=1)
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    for status_code, code in ((500, "SYSTEM_ERROR"), (429, "FREQUENCY_LIMITED")):
        await api.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi",
                                                      "status": status_code, "code": code, "count": 1})
        status, body = await api.prepay(token, order["order_id"])
        assert status == 503 and body["error"]["code"] == "PAYMENT_UNAVAILABLE"
        assert await api.remaining(sid) == 0
    status, params = await api.prepay(token, order["order_id"])
    assert status == 200, params
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/out-trade-no",
                                                  "status": 500, "code": "SYSTEM_ERROR", "count": 1})
    status, body, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel", {}, token=token)
    assert status == 503 and body["error"]["code"] == "PAYMENT_UNAVAILABLE"
    assert (await api.get_order(token, order["order_id"]))["status"] == "pending"
    assert await api.remaining(sid) == 0


@pytest.mark.gen_test(timeout=60)
async def test_native_qr_code_and_one_kind_of_payment_per_order(api):
    sid = await api.schedule()
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    status, png, headers = await api.call("GET", f"/api/v1/payment/wxpay/qrcode/{order['order_id']}", token=token)
    assert status == 200 and headers["Content-Type"] == "image/png" and png.startswith(b"\x89PNG")
    status, body = await api.prepay(token, order["order_id"])
    assert status == 409 and body["error"]["code"] == "ORDER_NOT_PAYABLE"
    placed = await api.control("GET", f"/sandbox/orders/{order['order_id']}")
    assert placed["trade_type"] == "NATIVE"
