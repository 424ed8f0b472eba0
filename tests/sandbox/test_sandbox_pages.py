"""The dashboard (/sandbox/) and the cashier page: what they show, escaped, and their buttons (plain form posts)."""
from __future__ import annotations

from tests.harness import wait_until
from tests.sandbox.pages import form, forms, page, submit
from tests.sandbox.wx import jsapi_order, make_client, new_trade_no, signed_call, with_client

EVIL = '<script>alert("x")</script> & 私教课'


def native_order(sandbox, description="课程", total=1234, notify_url="http://127.0.0.1:9/n"):
    """Place a Native order with wechatpayv3's signer; returns out_trade_no."""
    no = new_trade_no("D")
    body = {"appid": sandbox.env["WECHAT_APPID"], "mchid": sandbox.env["WECHATPAY_MCHID"], "description": description,
            "out_trade_no": no, "notify_url": notify_url, "amount": {"total": total}}
    assert signed_call(sandbox, "POST", "/v3/pay/transactions/native", body).status_code == 200
    return no


def refund(sandbox, no, out_refund_no, amount, total, notify_url):
    """Ask for a refund through the WeChat Pay API; returns its JSON."""
    body = {"out_trade_no": no, "out_refund_no": out_refund_no, "notify_url": notify_url,
            "amount": {"refund": amount, "total": total, "currency": "CNY"}}
    answer = signed_call(sandbox, "POST", "/v3/refund/domestic/refunds", body)
    assert answer.status_code == 200
    return answer.json()


def click(sandbox, html, action_suffix, label=None, back="/sandbox/"):
    """Submit the page's form to `…action_suffix`; it must send the browser back to `back`."""
    answer = submit(sandbox, form(html, action_suffix, label))
    assert answer.status_code == 303 and answer.headers["Location"] == back, answer.text
    return answer


def test_dashboard_shows_orders_newest_first_escaped(sandbox):
    older = native_order(sandbox)
    newer = native_order(sandbox, description=EVIL, total=1234)
    answer = page(sandbox, "/sandbox/")
    html = answer.text
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    assert "微信支付沙箱" in html and "Orders" in html and "测试模式" in html
    assert html.index(newer) < html.index(older), "newest first"
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 私教课" in html
    assert "¥12.34" in html and "NATIVE" in html and "NOTPAY" in html
    assert form(html, f"/sandbox/orders/{newer}/pay")["label"] == "支付 Pay"
    assert page(sandbox, "/sandbox").status_code == 200
    assert page(sandbox, "/sandbox/?limit=0").status_code == 400


def test_dashboard_pay_refund_settle_and_redeliver(sandbox, receiver):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    path = "/dash"
    receiver.script(path, [500])
    no = new_trade_no("D")
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, receiver.url(path), total=5000)))

    click(sandbox, page(sandbox, "/sandbox/").text, f"/sandbox/orders/{no}/pay", "支付 Pay")
    paid = sandbox.control("GET", f"/sandbox/orders/{no}")
    assert paid["trade_state"] == "SUCCESS"
    receiver.wait_for(path, 2)
    wait_until(lambda: sandbox.control("GET", f"/sandbox/notifications?out_trade_no={no}")["items"][0]["status"]
               == "delivered", what="the payment notification to be delivered")
    html = page(sandbox, "/sandbox/").text
    assert paid["transaction_id"] in html and "HTTP 500" in html and "HTTP 204" in html
    assert '{"code":"FAIL","message":"not yet"}' in html.replace("&quot;", '"'), "the merchant's answer is shown"
    assert not [f for f in forms(html) if f["action"] == f"/sandbox/orders/{no}/pay"], "a paid order has no Pay"

    refund(sandbox, no, "DR-" + no, 2000, 5000, receiver.url(path + "/refund"))
    html = page(sandbox, "/sandbox/").text
    labels = {f["label"] for f in forms(html) if f["action"] == f"/sandbox/refunds/DR-{no}/settle"}
    assert labels == {"退款成功 Success", "退款异常 Abnormal", "退款关闭 Closed"}
    click(sandbox, html, f"/sandbox/refunds/DR-{no}/settle", "退款异常 Abnormal")
    html = page(sandbox, "/sandbox/").text
    assert {f["fields"]["result"] for f in forms(html) if f["action"] == f"/sandbox/refunds/DR-{no}/settle"} == \
        {"SUCCESS", "CLOSED"}, "an abnormal refund may still end SUCCESS or CLOSED"
    click(sandbox, html, f"/sandbox/refunds/DR-{no}/settle", "退款成功 Success")
    events = [make_client(sandbox, "pubkey").callback(n["headers"], n["body"])
              for n in receiver.wait_for(path + "/refund", 2)]
    assert [e["event_type"] for e in events] == ["REFUND.ABNORMAL", "REFUND.SUCCESS"]
    assert not [f for f in forms(page(sandbox, "/sandbox/").text) if "/sandbox/refunds/" in f["action"]
                and f["action"].endswith(f"DR-{no}/settle")]

    [note] = sandbox.control("GET", f"/sandbox/notifications?out_trade_no={no}&event_type=TRANSACTION.SUCCESS")["items"]
    click(sandbox, page(sandbox, "/sandbox/").text, f"/sandbox/notifications/{note['id']}/redeliver")
    again = receiver.wait_for(path, 3)[-1]
    assert make_client(sandbox, "pubkey").callback(again["headers"], again["body"])["id"] == note["id"]
    assert sandbox.control("GET", f"/sandbox/notifications/{note['id']}")["attempts"][-1]["redelivery"] is True
    assert "by hand" in page(sandbox, "/sandbox/").text


def test_dashboard_fail_button_and_refused_action(sandbox):
    no = native_order(sandbox)
    html = page(sandbox, "/sandbox/").text
    click(sandbox, html, f"/sandbox/orders/{no}/fail", "支付失败 Fail")
    assert sandbox.control("GET", f"/sandbox/orders/{no}")["trade_state"] == "PAYERROR"
    click(sandbox, html, f"/sandbox/orders/{no}/pay", "支付 Pay")
    refused = submit(sandbox, form(html, f"/sandbox/orders/{no}/pay", "支付 Pay"))  # a stale page, clicked again
    assert refused.status_code == 409 and refused.headers["Content-Type"].startswith("text/html")
    assert "操作失败" in refused.text and "ORDER_NOT_PAYABLE" in refused.text and 'href="/sandbox/"' in refused.text


def test_form_cannot_send_the_browser_elsewhere(sandbox):
    no = native_order(sandbox)
    chosen = form(page(sandbox, "/sandbox/").text, f"/sandbox/orders/{no}/fail")
    chosen["fields"]["back"] = "https://evil.example/"
    answer = submit(sandbox, chosen)
    assert answer.status_code == 303 and answer.headers["Location"] == "/sandbox/"


def test_cashier_pays_and_settles_refunds(sandbox, receiver):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    no = native_order(sandbox, description=EVIL, total=20000)
    cashier = f"/sandbox/cashier?out_trade_no={no}"
    html = page(sandbox, cashier).text
    assert "¥200.00" in html and "<script>alert" not in html
    click(sandbox, html, f"/sandbox/orders/{no}/pay", "确认支付", back=cashier)
    html = page(sandbox, cashier).text
    assert "支付成功" in html and not [f for f in forms(html) if f["action"].endswith("/pay")]

    refund(sandbox, no, "CR1-" + no, 5000, 20000, receiver.url("/cashier-refund"))
    refund(sandbox, no, "CR2-" + no, 5000, 20000, receiver.url("/cashier-refund"))
    html = page(sandbox, cashier).text
    assert "CR1-" + no in html and "¥50.00 / ¥200.00" in html
    click(sandbox, html, f"/sandbox/refunds/CR1-{no}/settle", "退款关闭 Closed", back=cashier)
    [closed] = receiver.wait_for("/cashier-refund")
    assert make_client(sandbox, "pubkey").callback(closed["headers"], closed["body"])["event_type"] == "REFUND.CLOSED"
    click(sandbox, page(sandbox, cashier).text, f"/sandbox/refunds/CR2-{no}/settle", "退款成功 Success", back=cashier)
    receiver.wait_for("/cashier-refund", 2)
    assert sandbox.control("GET", f"/sandbox/refunds/CR2-{no}")["status"] == "SUCCESS"
    assert sandbox.control("GET", f"/sandbox/orders/{no}")["trade_state"] == "REFUND"
    assert not [f for f in forms(page(sandbox, cashier).text) if "/settle" in f["action"]]
