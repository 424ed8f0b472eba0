"""The process and its control API: generated files, reuse of keys, the request record, reset, the cashier page."""
from __future__ import annotations

import os
import stat

from cryptography import x509

from tests.harness import VAR, SandboxProcess, http_json, read_env_file
from tests.sandbox.wx import jsapi_order, new_trade_no, with_client

GENERATED = ("merchant_private_key.pem", "merchant_cert.pem", "platform_pubkey_private_key.pem",
             "platform_public_key.pem", "platform_cert_private_key.pem", "platform_cert.pem", "apiv3_key.txt",
             "identity.json", "service.env", "state.sqlite3")


def test_generated_state_files(sandbox):
    env = read_env_file(os.path.join(sandbox.state_dir, "service.env"))
    for name in GENERATED:
        mode = stat.S_IMODE(os.stat(os.path.join(sandbox.state_dir, name)).st_mode)
        assert mode == 0o600, name
    assert env["WECHAT_API_BASE"] == env["WECHATPAY_GATEWAY"] == sandbox.url
    assert env["WECHATPAY_MCHID"].isdigit() and len(env["WECHATPAY_MCHID"]) == 10
    assert env["WECHAT_APPID"].startswith("wx") and len(env["WECHAT_APPID"]) == 18
    assert len(env["WECHAT_APP_SECRET"]) == 32 and env["WECHATPAY_PUBLIC_KEY_ID"].startswith("PUB_KEY_ID_")
    for key in ("WECHATPAY_PRIVATE_KEY_FILE", "WECHATPAY_APIV3_KEY_FILE", "WECHATPAY_PUBLIC_KEY_FILE"):
        assert os.path.isabs(env[key]) and os.path.exists(env[key])
    with open(env["WECHATPAY_APIV3_KEY_FILE"], encoding="ascii") as fh:
        assert len(fh.read()) == 32
    with open(os.path.join(sandbox.state_dir, "merchant_cert.pem"), "rb") as fh:
        merchant = x509.load_pem_x509_certificate(fh.read())
    with open(os.path.join(sandbox.state_dir, "platform_cert.pem"), "rb") as fh:
        platform = x509.load_pem_x509_certificate(fh.read())
    assert format(merchant.serial_number, "X") == env["WECHATPAY_CERT_SERIAL_NO"]
    assert platform.serial_number != merchant.serial_number
    with open(os.path.join(sandbox.state_dir, "service.env"), encoding="utf-8") as fh:
        assert "platform_cert.pem" in fh.read()


def test_keys_are_reused_on_a_later_start():
    state_dir = os.path.join(VAR, "test", f"sandbox-restart-{os.getpid()}")
    first = SandboxProcess(state_dir, time_scale=0.01)
    first.stop()
    second = SandboxProcess(state_dir, time_scale=0.01, extra_args=("--notify-key-mode", "cert"))
    try:
        same = ("WECHATPAY_MCHID", "WECHAT_APPID", "WECHATPAY_CERT_SERIAL_NO", "WECHATPAY_PUBLIC_KEY_ID")
        assert {k: first.env[k] for k in same} == {k: second.env[k] for k in same}
        assert second.control("GET", "/sandbox/config")["notify_key_mode"] == "cert"
        second.control("POST", "/sandbox/config", {"notify_key_mode": "pubkey"})
        assert second.control("POST", "/sandbox/reset")["config"]["notify_key_mode"] == "cert"
    finally:
        second.stop()


def test_request_record_masks_secrets(sandbox):
    http_json("GET", f"{sandbox.url}/sns/jscode2session?appid=wx1&secret=topsecret&js_code=c&grant_type=authorization_code")
    http_json("POST", f"{sandbox.url}/cgi-bin/stable_token",
              {"grant_type": "client_credential", "appid": "wx1", "secret": "topsecret"})
    items = sandbox.control("GET", "/sandbox/requests?path_prefix=/sns/")["items"] + \
        sandbox.control("GET", "/sandbox/requests?path_prefix=/cgi-bin/stable_token&method=POST")["items"]
    assert items and "topsecret" not in str(items)
    assert items[-1]["request_body"]["secret"] == "***" and items[-1]["status"] == 200
    assert {"at", "method", "path", "status", "request_id", "elapsed_ms"} <= set(items[-1])


def test_orders_listing_and_unknown_order(sandbox):
    no = new_trade_no()
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, "http://127.0.0.1:9/n")))
    assert no in [o["out_trade_no"] for o in sandbox.control("GET", "/sandbox/orders")["items"]]
    order = sandbox.control("GET", f"/sandbox/orders/{no}")
    assert order["trade_state"] == "NOTPAY" and order["request"]["out_trade_no"] == no
    assert order["transaction"]["trade_state_desc"] == "订单未支付"
    status, body, _ = http_json("POST", f"{sandbox.url}/sandbox/orders/NOPE/pay", {})
    assert status == 404 and body["code"] == "ORDER_NOT_EXIST"
    status, body, _ = http_json("GET", f"{sandbox.url}/no/such/route")
    assert status == 404 and body["code"] == "NOT_FOUND"


def test_config_and_rules_validation(sandbox):
    for body in ({"notify_key_mode": "other"}, {"notify_key_mode": "request"}, {"answer_key_mode": "x"},
                 {"refund_settle_seconds": -1}, {"unknown": 1}):
        status, error, _ = http_json("POST", f"{sandbox.url}/sandbox/config", body)
        assert status == 400 and error["code"] == "INVALID_REQUEST"
    status, error, _ = http_json("POST", f"{sandbox.url}/sandbox/notifications/next", {"action": "explode"})
    assert status == 400
    status, error, _ = http_json("POST", f"{sandbox.url}/sandbox/config", b"not json")
    assert status == 400
    sandbox.control("POST", "/sandbox/notifications/next", {"action": "drop", "count": 2})
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/v3/", "status": 500})
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False, "bill_url_ttl_seconds": 1,
                                                "answer_key_mode": "either"})
    reset = sandbox.control("POST", "/sandbox/reset")
    assert reset["config"] == {"notify_key_mode": "pubkey", "answer_key_mode": "request", "refund_auto_settle": True,
                               "refund_settle_seconds": 2.0, "bill_url_ttl_seconds": 300.0}
    assert sandbox.control("GET", "/sandbox/notifications/next")["rules"] == []
    assert sandbox.control("GET", "/sandbox/faults")["faults"] == []


def test_cashier_page(sandbox):
    no = new_trade_no()
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, "http://127.0.0.1:9/n", total=20000)))
    status, page, headers = http_json("GET", f"{sandbox.url}/sandbox/cashier?out_trade_no={no}")
    html = page.decode("utf-8")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "¥200.00" in html and "确认支付" in html and "支付失败" in html and no in html
    assert "/sandbox/orders/" in html
    status, page, _ = http_json("GET", f"{sandbox.url}/sandbox/cashier?out_trade_no=NOPE")
    assert status == 404 and "订单不存在" in page.decode("utf-8")
