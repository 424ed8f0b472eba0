"""The refund notification endpoint: verified like payments, matched to our refund row, applied once."""
import pytest

from models import PaymentAuditLog, PaymentOrder, Refund
from tests.api import eventually
from tests.forge import Forger

REFUND_CALLBACK = "/api/v1/payment/wxpay/refund-callback"


async def _paid_order(api):
    sid, token, _, order, _ = await api.order_in_payment(capacity=1)
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})

    async def paid():
        return (await api.get_order(token, order["order_id"]))["status"] == "paid"

    await eventually(paid, what="paid")
    return sid, token, order["order_id"]


@pytest.mark.gen_test(timeout=60)
async def test_a_settled_refund_marks_the_order_refunded_and_frees_the_seat(api, ctx):
    sid, token, order_id = await _paid_order(api)
    assert await api.remaining(sid) == 0
    # The test settles the refund itself: the sandbox must not settle it on its own first (the reset restores it).
    await api.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()
    # What the operators' refund (later work) does: a refund row, then WeChat Pay's refund API.
    await Refund.insert(out_refund_no=f"R{order_id}", order=row.id, amount_fen=20000, reason="体验课取消").aio_execute()
    answer = await ctx.gateway.refund(f"R{order_id}", order_id, 20000, 20000, "体验课取消")
    assert answer["status"] == "PROCESSING"
    await api.control("POST", f"/sandbox/refunds/R{order_id}/settle", {"result": "SUCCESS"})

    async def refunded():
        return (await api.get_order(token, order_id))["status"] == "refunded"

    await eventually(refunded, what="the refund notification to be applied")
    view = await api.get_order(token, order_id)
    assert view["refunded_fen"] == 20000 and view["reservation"]["status"] == "cancelled"
    assert await api.remaining(sid) == 1
    refund = await Refund.select().where(Refund.out_refund_no == f"R{order_id}").aio_get()
    assert refund.status == "SUCCESS" and refund.refund_id


@pytest.mark.gen_test(timeout=60)
async def test_forged_or_unknown_refund_notifications(api, sandbox):
    forger = Forger(sandbox.state_dir, sandbox.env)
    body = forger.body({"mchid": sandbox.env["WECHATPAY_MCHID"], "out_trade_no": "x" * 32,
                        "out_refund_no": "R-nobody", "refund_status": "SUCCESS",
                        "amount": {"total": 20000, "refund": 20000}}, event_type="REFUND.SUCCESS")
    status, answer, _ = await api.call("POST", REFUND_CALLBACK, raw=body,
                                       headers=forger.headers(body, key=Forger.stranger_key()))
    assert status == 401 and answer["code"] == "FAIL"
    status, _, _ = await api.call("POST", REFUND_CALLBACK, raw=body, headers=forger.headers(body))
    assert status == 204
    assert await PaymentAuditLog.select().where(
        PaymentAuditLog.action_type == "refund_notification_unknown").aio_count() >= 1
