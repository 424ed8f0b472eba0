"""Helpers of the reconciliation tests: days of their own (the session's sandbox and database are shared, and the
sandbox's bill tests keep to days 1, 5, 40-90 ago), orders paid at a chosen moment through the sandbox, and the
operators' calls."""
from __future__ import annotations

from models import PaymentOrder
from tests.api import eventually
from tests.sandbox.bills import at, day_ago, today  # noqa: F401 - re-exported for the tests

# Days ago, one (or more) per test.
DAYS = {"matched": 11, "foreign": 12, "rejected_refund": 13, "no_trades": 14, "missing_at_wechat": 15,
        "not_ready": 16, "corrupt": 17, "unbalanced": 18, "race": 19, "race_control": 20, "decisions": 21,
        "pages": 22, "report": 23, "amount_mismatch": 24, "openapi": 25, "roles": 26, "metrics": 27,
        "personal_data": 28,  # tests/models/test_personal_data_at_rest.py
        "reordered": 29, "rejected_unconfirmed": 30}


async def pay_at(api, success_time, notify=True, capacity=5, title="体验课（对账）"):
    """A new parent's order paid at `success_time` at the sandbox; with `notify`, its notification applied.

    Returns (token, the order as the service now shows it)."""
    _, token, _, order, _ = await api.order_in_payment(capacity=capacity, title=title)
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay",
                      {"notify": notify, "success_time": success_time})
    if not notify:
        return token, await api.get_order(token, order["order_id"])

    async def paid():
        view = await api.get_order(token, order["order_id"])
        return view if view["status"] == "paid" else None

    return token, await eventually(paid, what="the payment to be applied")


async def reconcile(api, token, day, expect=200):
    """POST .../bills/{day}/reconcile; its answer (the status must be `expect`)."""
    status, body, _ = await api.call("POST", f"/api/v1/admin/bills/{day}/reconcile", token=token)
    assert status == expect, body
    return body


async def order_row(order_id):
    """The order's row."""
    return await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()


def by_ref(reconciliation, out_trade_no=None, out_refund_no=None):
    """The discrepancies of a reconciliation about one order or one refund."""
    return [d for d in reconciliation["discrepancies"]
            if (out_trade_no is None or d["out_trade_no"] == out_trade_no)
            and (out_refund_no is None or d["out_refund_no"] == out_refund_no)]
