"""Nothing is decided on an answer WeChat Pay did not sign, and certificate mode cannot be emptied by forgers."""
import asyncio
import secrets

import pytest

from tests.api import eventually
from tests.forge import Forger


def _close_path(order_id):
    return f"/v3/pay/transactions/out-trade-no/{order_id}/close"


@pytest.mark.gen_test(timeout=60)
async def test_an_unsigned_order_not_exist_does_not_free_the_seat(api):
    sid, token, _, order, _ = await api.order_in_payment(capacity=1)
    cancel = f"/api/v1/payment/orders/{order['order_id']}/cancel"
    await api.control("POST", "/sandbox/faults", {"path_prefix": _close_path(order["order_id"]), "status": 404,
                                                  "code": "ORDER_NOT_EXIST", "message": "订单不存在",
                                                  "signed": False, "count": 1})
    status, body, _ = await api.call("POST", cancel, {}, token=token)
    assert status == 503 and body["error"]["code"] == "PAYMENT_UNAVAILABLE"
    assert (await api.get_order(token, order["order_id"]))["status"] == "pending"
    assert await api.remaining(sid) == 0
    # The same answer, signed as WeChat Pay signs it, is believed.
    await api.control("POST", "/sandbox/faults", {"path_prefix": _close_path(order["order_id"]), "status": 404,
                                                  "code": "ORDER_NOT_EXIST", "message": "订单不存在", "count": 1})
    status, view, _ = await api.call("POST", cancel, {}, token=token)
    assert status == 200 and view["status"] == "cancelled"
    assert await api.remaining(sid) == 1


@pytest.mark.gen_test(timeout=60)
async def test_an_unsigned_order_paid_applies_nothing(api):
    sid, token, _, order, _ = await api.order_in_payment(capacity=1)
    await api.control("POST", "/sandbox/faults", {"path_prefix": _close_path(order["order_id"]), "status": 400,
                                                  "code": "ORDER_PAID", "message": "订单已支付", "signed": False})
    status, body, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel", {}, token=token)
    assert status == 503
    view = await api.get_order(token, order["order_id"])
    assert view["status"] == "pending" and view["transaction_id"] is None


class TestCertificateMode:
    @pytest.fixture
    def overrides(self):
        return {"WECHATPAY_PUBLIC_KEY_FILE": None, "WECHATPAY_PUBLIC_KEY_ID": None}

    @pytest.mark.gen_test(timeout=60)
    async def test_random_serials_neither_flood_the_gateway_nor_lock_out_genuine_notifications(self, api, sandbox):
        await api.control("POST", "/sandbox/config", {"notify_key_mode": "cert"})
        sid, token, openid, order, _ = await api.order_in_payment()
        downloads_before = await _certificate_downloads(api)
        forger = Forger(sandbox.state_dir, sandbox.env)
        stranger = Forger.stranger_key()

        async def forged():
            body = forger.body(forger.transaction(order["order_id"], openid=openid))
            headers = forger.headers(body, key=stranger, serial=secrets.token_hex(16).upper())
            status, _, _ = await api.call("POST", "/api/v1/payment/wxpay/callback", raw=body, headers=headers)
            return status

        flood = [asyncio.ensure_future(forged()) for _ in range(40)]
        await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
        assert set(await asyncio.gather(*flood)) == {401}

        async def paid():
            return (await api.get_order(token, order["order_id"]))["status"] == "paid"

        await eventually(paid, what="the genuine notification to be applied during the flood")
        sent = (await api.control("GET", f"/sandbox/notifications?out_trade_no={order['order_id']}"))["items"]
        assert sent[0]["attempts"][0]["status"] == 204  # accepted at the first attempt, not after a retry
        assert await _certificate_downloads(api) - downloads_before <= 1


async def _certificate_downloads(api):
    return len([r for r in (await api.control("GET", "/sandbox/requests"))["items"]
                if r["path"] == "/v3/certificates"])
