"""Steps the fault tests share: many parents, orders in payment, exactly-once checks, and the invariant check."""
from __future__ import annotations

import asyncio

from models import WechatPayNotification, PaymentAuditLog, PaymentOrder, PaymentTransaction, SeatReservation
from services.invariants import check_invariants


async def bounded(coros, limit=10):
    """Await the coroutines with at most `limit` running at once; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(coro):
        async with gate:
            return await coro

    return await asyncio.gather(*[one(c) for c in coros])


async def parents(api, n, limit=10):
    """n parents logged in; their tokens."""
    return [token for token, _ in await bounded([api.login() for _ in range(n)], limit)]


async def order_in_payment(api, token, schedule_id):
    """Create the parent's order and start its JSAPI payment; the order id."""
    status, order = await api.order(token, schedule_id)
    assert status == 201, order
    status, params = await api.prepay(token, order["order_id"])
    assert status == 200, params
    return order["order_id"]


async def orders_in_payment(api, schedule_id, n, limit=10):
    """n new parents, each with an order in payment; [(token, order_id)]."""
    tokens = await parents(api, n, limit)
    ids = await bounded([order_in_payment(api, t, schedule_id) for t in tokens], limit)
    return list(zip(tokens, ids))


async def statuses(order_ids) -> dict:
    """order_id -> status, read from MySQL."""
    rows = await PaymentOrder.select(PaymentOrder.order_id, PaymentOrder.status).where(
        PaymentOrder.order_id.in_(list(order_ids))).aio_execute()
    return {r.order_id: r.status for r in rows}


async def count_status(order_ids, status) -> int:
    """How many of the orders have `status`."""
    return sum(s == status for s in (await statuses(order_ids)).values())


async def assert_paid_exactly_once(order_ids):
    """Each order paid, its seat confirmed, one transaction, one payment_succeeded audit row."""
    for order_id in order_ids:
        order = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()
        assert order.status == "paid", (order_id, order.status)
        seat = await SeatReservation.select().where(SeatReservation.order == order.id).aio_get()
        assert seat.status == "confirmed", (order_id, seat.status)
        assert await PaymentTransaction.select().where(PaymentTransaction.order == order.id).aio_count() == 1
        applied = await PaymentAuditLog.select().where((PaymentAuditLog.order == order.id) & (
            PaymentAuditLog.action_type == "payment_succeeded")).aio_count()
        assert applied == 1, (order_id, applied)


async def inbox(order_ids) -> list:
    """The notification inbox rows about these orders."""
    return list(await WechatPayNotification.select().where(
        WechatPayNotification.out_trade_no.in_(list(order_ids))).aio_execute())


async def assert_invariants(reconcile_interval):
    """services.invariants finds nothing, not even a warning."""
    found = await check_invariants(reconcile_interval)
    assert found == [], "\n".join(v.line() for v in found)


async def notifications(api, order_ids) -> list:
    """The sandbox's payment notifications about these orders (with every delivery attempt)."""
    wanted = set(order_ids)
    items = (await api.control("GET", "/sandbox/notifications?event_type=TRANSACTION.SUCCESS"))["items"]
    return [n for n in items if n.get("out_trade_no") in wanted]


async def all_delivered(api, order_ids) -> bool:
    """Every order has a payment notification and each was acknowledged with a 2xx in the end."""
    notes = await notifications(api, order_ids)
    return len({n["out_trade_no"] for n in notes}) == len(set(order_ids)) \
        and all(n["status"] == "delivered" for n in notes)
