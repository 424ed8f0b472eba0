"""A payment whose seat is gone by the time it lands becomes refund_required (the money is kept for an operator).

Its own module: the orders here must not expire while the test works (tests/jobs/test_reconcile.py runs with
3-second orders, which a loaded machine can outlast between the prepay and the payment).
"""

import pytest

from models import PaymentOrder, SeatReservation, SubscribeMessage
from tests.api import eventually


async def _is(api, token, order_id, status):
    return (await api.get_order(token, order_id))["status"] == status


@pytest.mark.gen_test(timeout=60)
async def test_a_payment_with_no_seat_left_becomes_refund_required(api):
    sid = await api.schedule(capacity=2)
    (ta, _), (tb, _) = await api.login(), await api.login()
    _, oa = await api.order(ta, sid)
    _, ob = await api.order(tb, sid)
    assert (await api.prepay(ta, oa["order_id"]))[0] == 200
    assert (await api.prepay(tb, ob["order_id"]))[0] == 200
    admin = await api.admin_token()
    status, body, _ = await api.call("PATCH", f"/api/v1/admin/schedules/{sid}", {"capacity": 1}, token=admin)
    assert status == 200, body
    await api.control("POST", f"/sandbox/orders/{oa['order_id']}/pay", {"notify": True})
    await eventually(lambda: _is(api, ta, oa["order_id"], "paid"), what="the first payment")
    await api.control("POST", f"/sandbox/orders/{ob['order_id']}/pay", {"notify": True})
    await eventually(lambda: _is(api, tb, ob["order_id"], "refund_required"), what="the second to need a refund")
    view = await api.get_order(tb, ob["order_id"])
    assert view["failure_reason"] == "no_seat" and view["transaction_id"]
    assert view["reservation"]["status"] == "cancelled"
    confirmed = await SeatReservation.select().where((SeatReservation.course_schedule == sid)
                                                     & (SeatReservation.status == "confirmed")).aio_count()
    assert confirmed == 1
    order_b = await PaymentOrder.select().where(PaymentOrder.order_id == ob["order_id"]).aio_get()
    assert not await SubscribeMessage.select().where(SubscribeMessage.order == order_b.id).aio_exists()  # no 预约成功
    refunds = [r for r in (await api.control("GET", "/sandbox/requests"))["items"]
               if r["path"].startswith("/v3/refund") and ob["order_id"] in str(r.get("request_body"))]
    assert refunds == []  # operators refund trial classes, never the system (FR-018)
