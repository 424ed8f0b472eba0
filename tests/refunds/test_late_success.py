"""A refund WeChat Pay made after all (contract §2 Operators): one the service holds as REJECTED (WeChat Pay answered
a refusal, yet paid it out) or CLOSED, that WeChat Pay then reports SUCCESS by its signed notification, is applied —
not dropped as a duplicate: SUCCESS, counted in `refunded_fen`, the order refunded and its seat freed — and flagged
for finance (an audit row, the back office's refund list and home page)."""
import pytest

from models import PaymentAuditLog, Refund
from tests.api import eventually
from tests.backoffice.test_backoffice_pages import logged_in
from tests.forge import Forger

REFUNDS = "/v3/refund/domestic/refunds"


@pytest.fixture
def overrides():
    return {"RECONCILE_INTERVAL_SECONDS": "0.3"}


async def _row(out_refund_no):
    return await Refund.select().where(Refund.out_refund_no == out_refund_no).aio_get()


async def _story(api, token, order_id):
    status, body, _ = await api.call("GET", f"/api/v1/admin/orders/{order_id}", token=token)
    assert status == 200, body
    return body


@pytest.mark.gen_test(timeout=90)
async def test_a_rejected_refund_wechat_pay_reports_successful_is_applied_and_flagged(api, base_url):
    sid, _, _, order = await api.paid_order(capacity=1)
    finance = await api.admin_token("finance")
    await api.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    await api.control("POST", "/sandbox/faults", {"path_prefix": REFUNDS, "method": "POST", "status": 400,
                                                  "code": "INVALID_REQUEST", "message": "退款请求失败",
                                                  "handled": True, "count": 1})
    status, body = await api.refund(finance, order["order_id"], 20000)
    assert status == 409 and body["error"]["code"] == "REFUND_REJECTED"
    [refund] = (await _story(api, finance, order["order_id"]))["refunds"]
    assert refund["status"] == "REJECTED" and await api.remaining(sid) == 0

    await api.control("POST", f"/sandbox/refunds/{refund['out_refund_no']}/settle", {"result": "SUCCESS"})

    async def applied():
        return (await _row(refund["out_refund_no"])).status == "SUCCESS"

    await eventually(applied, what="the REFUND.SUCCESS notification to be applied")
    story = await _story(api, finance, order["order_id"])
    assert story["status"] == "refunded" and story["refunded_fen"] == 20000
    assert story["refunds"][0]["status"] == "SUCCESS" and story["refunds"][0]["success_time"]
    assert [n["outcome"] for n in story["notifications"] if n["kind"] == "refund"] == ["applied"]
    assert await api.remaining(sid) == 1, "the seat is free"
    row = await _row(refund["out_refund_no"])
    assert row.success_after == "REJECTED" and row.succeeded_at is not None
    flagged = await PaymentAuditLog.select().where((PaymentAuditLog.refund == row.id) & (
        PaymentAuditLog.action_type == "refund_success_after_rejected")).aio_count()
    assert flagged == 1
    browser, _ = await logged_in(base_url, "finance")
    listed = await browser.get("/admin/refunds")
    assert f'data-late-success="{refund["out_refund_no"]}"' in listed.text
    home = await browser.get("/admin/")
    assert 'id="fig-late-refunds"' in home.text

    status, inbox, _ = await api.call("GET", "/api/v1/admin/notifications?kind=refund&outcome=duplicate",
                                      token=finance)
    assert status == 200 and all(n["out_trade_no"] != order["order_id"] for n in inbox["items"])


@pytest.mark.gen_test(timeout=90)
async def test_a_closed_refund_that_a_signed_notification_reports_successful_counts(api, sandbox):
    _, _, _, order = await api.paid_order()
    finance = await api.admin_token("finance")
    await api.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    status, refund = await api.refund(finance, order["order_id"], 5000)
    assert status == 201
    await api.control("POST", f"/sandbox/refunds/{refund['out_refund_no']}/settle", {"result": "CLOSED"})
    await eventually(lambda: _status(refund["out_refund_no"], "CLOSED"), what="the refund to be CLOSED")
    # WeChat Pay's later word, signed with its platform key: the refund was made after all.
    forger = Forger(sandbox.state_dir, sandbox.env)
    resource = {"mchid": sandbox.env["WECHATPAY_MCHID"], "out_trade_no": order["order_id"],
                "transaction_id": order["transaction_id"], "out_refund_no": refund["out_refund_no"],
                "refund_id": "50" + "1" * 27, "refund_status": "SUCCESS",
                "success_time": "2026-11-22T10:00:00+08:00", "user_received_account": "支付用户零钱",
                "amount": {"total": 20000, "refund": 5000, "payer_total": 20000, "payer_refund": 5000}}
    body = forger.body(resource, event_type="REFUND.SUCCESS")
    status, _, _ = await api.call("POST", "/api/v1/payment/wxpay/refund-callback", raw=body,
                                  headers=forger.headers(body))
    assert status == 204
    row = await _row(refund["out_refund_no"])
    assert (row.status, row.success_after) == ("SUCCESS", "CLOSED")
    story = await _story(api, finance, order["order_id"])
    assert story["refunded_fen"] == 5000 and story["status"] == "paid"
    assert any(t["action_type"] == "refund_success_after_closed" for t in story["timeline"])
    status, _, _ = await api.call("POST", "/api/v1/payment/wxpay/refund-callback", raw=body,
                                  headers=forger.headers(body))
    assert status == 204 and (await _story(api, finance, order["order_id"]))["refunded_fen"] == 5000, \
        "a repeat is a duplicate"


async def _status(out_refund_no, status):
    return (await _row(out_refund_no)).status == status
