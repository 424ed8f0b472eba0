"""The demo's routes: mounted only in dev mode; its two sandbox shortcuts answer as the API does."""
import pytest


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("overrides", [{"DEV_MODE": "0"}])
async def test_nothing_of_the_demo_outside_dev_mode(api, overrides):
    for method, path in (("GET", "/demo/"), ("GET", "/demo/app.js"), ("POST", "/demo/api/wx-login"),
                         ("POST", "/demo/api/pay")):
        status, body, _ = await api.call(method, path, {} if method == "POST" else None)
        assert status == 404 and body["error"]["code"] == "NOT_FOUND", path


@pytest.mark.gen_test(timeout=60)
async def test_the_page_and_its_assets_are_served(api):
    status, html, headers = await api.call("GET", "/demo/")
    assert status == 200 and "text/html" in headers["Content-Type"] and "立即预约".encode() in html
    for asset in ("app.js", "style.css"):
        assert (await api.call("GET", f"/demo/{asset}"))[0] == 200
    assert (await api.call("GET", "/demo/missing.js"))[0] == 404


@pytest.mark.gen_test(timeout=60)
async def test_wx_login_gives_a_code_the_service_accepts(api):
    status, minted, _ = await api.call("POST", "/demo/api/wx-login")
    assert status == 200
    status, session, _ = await api.call("POST", "/api/v1/auth/login", {"code": minted["code"]})
    assert status == 200 and session["token"]


@pytest.mark.gen_test(timeout=60)
async def test_pay_acts_only_on_the_callers_own_order(api):
    sid = await api.schedule(capacity=2)
    owner, _ = await api.login()
    _, order = await api.order(owner, sid)
    order_id = order["order_id"]
    stranger, _ = await api.login()

    assert (await api.call("POST", "/demo/api/pay", {"order_id": order_id, "result": "success"}))[0] == 401
    status, body, _ = await api.call("POST", "/demo/api/pay", {"order_id": order_id, "result": "maybe"}, token=owner)
    assert status == 400 and body["error"]["field"] == "result"
    status, body, _ = await api.call("POST", "/demo/api/pay", {"order_id": order_id, "result": "success"},
                                     token=stranger)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    # No WeChat Pay order yet (wxpay/create not called): the sandbox's refusal comes back in the contract's shape.
    status, body, _ = await api.call("POST", "/demo/api/pay", {"order_id": order_id, "result": "success"}, token=owner)
    assert status == 404 and body["error"]["code"] == "ORDER_NOT_EXIST"

    assert (await api.prepay(owner, order_id))[0] == 200
    status, body, _ = await api.call("POST", "/demo/api/pay", {"order_id": order_id, "result": "fail"}, token=owner)
    assert status == 200 and body == {"order_id": order_id, "trade_state": "PAYERROR"}
    assert (await api.get_order(owner, order_id))["status"] == "pending"


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("overrides", [{"DEV_MODE": "1", "WECHAT_API_BASE": "http://127.0.0.1:9"}])
async def test_an_unreachable_sandbox_is_a_503(api, overrides):
    status, body, headers = await api.call("POST", "/demo/api/wx-login")
    assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE" and headers["Retry-After"] == "1"
