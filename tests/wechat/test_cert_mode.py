"""Platform certificate mode: no PUB_KEY_ID configured, certificates downloaded from /v3/certificates."""
import pytest

from tests.api import eventually
from tests.forge import Forger


@pytest.fixture
def overrides():
    return {"WECHATPAY_PUBLIC_KEY_FILE": None, "WECHATPAY_PUBLIC_KEY_ID": None}


@pytest.mark.gen_test(timeout=60)
async def test_payment_and_notification_in_certificate_mode(api, settings, sandbox):
    assert not settings.public_key_mode
    await api.control("POST", "/sandbox/config", {"notify_key_mode": "cert"})
    sid = await api.schedule()
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    status, params = await api.prepay(token, order["order_id"])
    assert status == 200, params
    certs = [r for r in (await api.control("GET", "/sandbox/requests"))["items"] if r["path"] == "/v3/certificates"]
    assert certs, "the platform certificates were downloaded"
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})

    async def paid():
        return (await api.get_order(token, order["order_id"]))["status"] == "paid"

    await eventually(paid, what="the certificate-signed notification to be applied")
    sent = (await api.control("GET", f"/sandbox/notifications?out_trade_no={order['order_id']}"))["items"]
    assert sent[0]["attempts"][0]["key_mode"] == "cert"


@pytest.mark.gen_test(timeout=60)
async def test_public_key_signed_notification_is_refused_in_certificate_mode(api, sandbox):
    sid = await api.schedule()
    token, openid = await api.login()
    _, order = await api.order(token, sid)
    assert (await api.prepay(token, order["order_id"]))[0] == 200
    forger = Forger(sandbox.state_dir, sandbox.env)
    body = forger.body(forger.transaction(order["order_id"], openid=openid))
    status, answer, _ = await api.call("POST", "/api/v1/payment/wxpay/callback", raw=body,
                                       headers=forger.headers(body))
    assert status == 401 and answer["code"] == "FAIL"
    assert (await api.get_order(token, order["order_id"]))["status"] == "pending"
