"""A cancel racing the prepay must not free a seat WeChat Pay can still be paid for.

The parent taps pay; while the JSAPI request is on its way (the sandbox holds its answer), they cancel. The order's
lease serialises the two: the cancel waits for the prepay, then closes the WeChat Pay order, and only then frees the
seat. The control runs the same steps with the service's own building blocks but without the lease, and shows the
seat going to another parent while WeChat Pay still takes the first parent's money.
"""
import asyncio

import pytest

from models import PaymentOrder, utcnow
from services import audit
from services.lifecycle.locks import lock_order, lock_order_with_reservation
from services.lifecycle.orders import end_order, start_payment
from services.lifecycle.statuses import CANCELLED
from services.uow import run_in_transaction
from tests.api import eventually

JSAPI = "/v3/pay/transactions/jsapi"


async def _setup(api, latency_ms=1500):
    sid = await api.schedule(capacity=1)
    (ta, openid), (tb, _) = await api.login(), await api.login()
    status, order = await api.order(ta, sid)
    assert status == 201
    await api.control("POST", "/sandbox/faults", {"path_prefix": JSAPI, "latency_ms": latency_ms, "count": 1})
    return sid, ta, tb, openid, order["order_id"]


async def _wechat_state(api, order_id):
    status, body, _ = await api.call("GET", f"/sandbox/orders/{order_id}", base=api.sandbox.url)
    return body["trade_state"] if status == 200 else None


@pytest.mark.gen_test(timeout=60)
async def test_a_cancel_during_the_prepay_waits_then_closes_before_the_seat_is_freed(api):
    sid, ta, tb, _, order_id = await _setup(api)
    prepay = asyncio.ensure_future(api.prepay(ta, order_id))

    async def payment_started():
        row = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()
        return row.trade_type is not None

    await eventually(payment_started, what="the prepay to be under way")
    cancel = asyncio.ensure_future(api.call("POST", f"/api/v1/payment/orders/{order_id}/cancel", {}, token=ta))
    b_status = None
    while not (prepay.done() and cancel.done()):
        b_status, body = await api.order(tb, sid)
        if b_status == 201:
            # The seat went to B: by now A's WeChat Pay order must be closed (or never have existed).
            assert await _wechat_state(api, order_id) in (None, "CLOSED"), "seat freed while A can still pay"
            break
        assert b_status == 409 and body["error"]["code"] == "SOLD_OUT", body
        await asyncio.sleep(0.05)
    prepay_status, _ = await prepay
    cancel_status, view, _ = await cancel
    assert cancel_status == 200 and view["status"] == "cancelled"
    assert prepay_status in (200, 409)
    assert await _wechat_state(api, order_id) == "CLOSED"  # closed after the prepay landed
    status, _, _ = await api.call("POST", f"/sandbox/orders/{order_id}/pay", {"notify": False}, base=api.sandbox.url)
    assert status >= 400  # A cannot be charged for a seat that is gone
    if b_status != 201:
        b_status, _ = await api.order(tb, sid)
    assert b_status == 201


@pytest.mark.gen_test(timeout=60)
async def test_control_without_the_lease_the_seat_goes_while_wechat_pay_still_takes_the_money(api, ctx):
    sid, ta, tb, openid, order_id = await _setup(api)
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()
    actor = audit.Actor("user", user_id=row.user_id)
    # The prepay, unserialised: the state machine's payment start, the WeChat Pay order placed (the sandbox holds
    # the answer).
    async def begin(uow, order_pk):
        order, reservation = await lock_order_with_reservation(order_pk)
        await start_payment(uow, order, reservation, "JSAPI", actor, utcnow())
        return order

    async def cancel(uow, order_pk):
        await end_order(uow, await lock_order(order_pk), CANCELLED, "user_cancelled", actor, "order_cancelled")

    row = await run_in_transaction(ctx, begin, row.id)
    placing = asyncio.ensure_future(ctx.gateway.place_order("JSAPI", order_id, row.description, row.amount_fen,
                                                            row.expires_at, openid=openid))
    # The cancel, unserialised: the close finds no order yet, so the seat is released at once.
    assert await ctx.gateway.close_order(order_id) == "absent"
    await run_in_transaction(ctx, cancel, row.id)
    status, _ = await api.order(tb, sid)
    assert status == 201  # the seat went to another parent
    prepay_id = await placing
    assert prepay_id and await _wechat_state(api, order_id) == "NOTPAY"  # ...and A's order can still be paid
    status, _, _ = await api.call("POST", f"/sandbox/orders/{order_id}/pay", {"notify": False}, base=api.sandbox.url)
    assert status == 200  # WeChat Pay took A's money for the seat B now holds
