"""支付失败 and 订单已过期: an order that ends unpaid tells its parent once, through the same queue and sender as every
other subscribe message (retried when WeChat refuses), with the configured template; a parent's own cancel does not."""
import pytest

from models import PaymentOrder, SubscribeMessage
from tests.api import eventually

FAILED_TEMPLATE = "TPL-payment-failed-configured"
EXPIRED_TEMPLATE = "TPL-order-expired-configured"
TEMPLATES = {"WECHAT_PAYMENT_FAILED_TEMPLATE_ID": FAILED_TEMPLATE, "WECHAT_ORDER_EXPIRED_TEMPLATE_ID": EXPIRED_TEMPLATE}


async def _messages_to(api, openid):
    return [m for m in (await api.control("GET", "/sandbox/messages"))["items"] if m.get("touser") == openid]


async def _status_is(api, token, order_id, status):
    return (await api.get_order(token, order_id))["status"] == status


async def _rows(order_id):
    order = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()
    return list(await SubscribeMessage.select().where(SubscribeMessage.order == order.id).aio_execute())


async def _sender_drained(api):
    """A later message (another parent's booking, 预约成功) has gone out: the sender took everything queued before it
    (it sends the oldest due first), so a message it was ever going to send twice would be in the sandbox by now."""
    _, _, openid, _ = await api.paid_order(title="之后的预约")
    await eventually(lambda: _messages_to(api, openid), timeout=20, what="the later booking's message")


async def _sent(order_id, attempts=1):
    async def done():
        rows = await _rows(order_id)
        return rows if rows and all(r.status == "sent" for r in rows) else None

    rows = await eventually(done, timeout=20, what="the message marked sent")
    assert [r.attempts for r in rows] == [attempts]
    return rows[0]


class TestExpiry:
    @pytest.fixture
    def overrides(self):
        return {"RECONCILE_INTERVAL_SECONDS": "0.3", "SEAT_HOLD_SECONDS": "1", "ORDER_EXPIRE_SECONDS": "3", **TEMPLATES}

    @pytest.mark.parametrize("paying", [False, True], ids=["hold-lapsed", "wechat-order-closed"])
    @pytest.mark.gen_test(timeout=90)
    async def test_an_expired_order_tells_its_parent_once(self, api, paying):
        sid = await api.schedule(capacity=2, title="周六下午体验课")
        token, openid = await api.login()
        status, order = await api.order(token, sid)
        assert status == 201, order
        if paying:  # a WeChat Pay order that is never paid: the job closes it at the order's end, then expires it
            assert (await api.prepay(token, order["order_id"]))[0] == 200
        await eventually(lambda: _status_is(api, token, order["order_id"], "expired"), timeout=30,
                         what="the job to expire the order")
        [message] = await eventually(lambda: _messages_to(api, openid), timeout=20, what="订单已过期")
        assert message["errcode"] == 0 and message["template_id"] == EXPIRED_TEMPLATE
        assert message["page"] == f"pages/order/order?scheduleId={sid}"
        data = message["data"]
        assert data["phrase4"]["value"] == "订单已过期" and data["thing1"]["value"] == "周六下午体验课"
        assert data["amount3"]["value"] == "200.00元" and data["thing5"]["value"] == "未在规定时间内支付，名额已释放"
        row = await _sent(order["order_id"])
        assert row.kind == "order_expired" and row.dedupe_key.startswith("order_expired:")
        await _sender_drained(api)
        assert len(await _messages_to(api, openid)) == 1

    @pytest.mark.gen_test(timeout=90)
    async def test_a_lapsed_order_ended_by_its_parents_next_booking_is_told_too(self, api):
        first, second = await api.schedule(capacity=1, title="第一节"), await api.schedule(capacity=1, title="第二节")
        token, openid = await api.login()
        _, old = await api.order(token, first)
        await eventually(lambda: _remaining_is(api, first, 1), what="the hold to lapse")
        status, new = await api.order(token, second)  # the lapsed order is ended on this path, or by the job first
        assert status == 201, new
        await eventually(lambda: _status_is(api, token, old["order_id"], "expired"), what="the old order expired")
        [message] = await eventually(lambda: _messages_to(api, openid), timeout=20, what="订单已过期")
        assert message["data"]["thing1"]["value"] == "第一节" and message["template_id"] == EXPIRED_TEMPLATE
        await _sent(old["order_id"])
        assert await _rows(new["order_id"]) == []


async def _remaining_is(api, sid, n):
    return await api.remaining(sid) == n


class TestFailure:
    @pytest.fixture
    def overrides(self):
        return {"RECONCILE_INTERVAL_SECONDS": "0.3", **TEMPLATES}

    @pytest.mark.gen_test(timeout=90)
    async def test_a_payment_wechat_pay_reports_failed_tells_the_parent_once(self, api):
        sid, token, openid, order, _ = await api.order_in_payment(title="周日上午体验课")
        await api.control("POST", f"/sandbox/orders/{order['order_id']}/fail")  # PAYERROR, found by the job's query
        await eventually(lambda: _status_is(api, token, order["order_id"], "failed"), timeout=30,
                         what="the job to fail the order")
        assert (await api.get_order(token, order["order_id"]))["failure_reason"] == "payment_error"
        [message] = await eventually(lambda: _messages_to(api, openid), timeout=20, what="支付失败")
        assert message["template_id"] == FAILED_TEMPLATE and message["page"] == f"pages/order/order?scheduleId={sid}"
        data = message["data"]
        assert data["phrase4"]["value"] == "支付失败" and data["thing5"]["value"] == "名额已释放，可重新预约"
        assert data["thing1"]["value"] == "周日上午体验课" and data["amount3"]["value"] == "200.00元"
        assert (await _sent(order["order_id"])).kind == "payment_failed"
        await _sender_drained(api)
        assert len(await _messages_to(api, openid)) == 1

    @pytest.mark.gen_test(timeout=90)
    async def test_a_failure_the_mini_program_reports_is_told_and_a_refused_send_retried(self, api):
        await api.control("POST", "/sandbox/faults", {"path_prefix": "/cgi-bin/message/subscribe/send",
                                                      "status": 500, "code": "SYSTEM_ERROR", "count": 1})
        sid, token, openid, order, _ = await api.order_in_payment()
        status, view, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel",
                                         {"reason": "payment_failed"}, token=token)
        assert status == 200 and view["status"] == "failed", view
        [message] = await eventually(lambda: _messages_to(api, openid), timeout=20, what="the retried 支付失败")
        assert message["errcode"] == 0 and message["template_id"] == FAILED_TEMPLATE
        sends = [r for r in (await api.control("GET", "/sandbox/requests"))["items"]
                 if r["path"].startswith("/cgi-bin/message/subscribe/send")
                 and (r.get("request_body") or {}).get("touser") == openid]
        assert len(sends) == 2  # the first was refused; the one that arrived is the retry
        row = await _sent(order["order_id"], attempts=2)
        assert row.kind == "payment_failed"
        await _sender_drained(api)
        assert len(await _messages_to(api, openid)) == 1

    @pytest.mark.gen_test(timeout=90)
    async def test_a_parents_own_cancel_sends_nothing(self, api):
        sid, token, openid, order, _ = await api.order_in_payment()
        status, view, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel",
                                         {"reason": "user_cancelled"}, token=token)
        assert status == 200 and view["status"] == "cancelled", view
        await _sender_drained(api)
        assert await _messages_to(api, openid) == [] and await _rows(order["order_id"]) == []
