"""kill -9 of a service process in the middle of a notification storm and of a rush for seats, then a restart."""
import asyncio

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.iostream import StreamClosedError

from models import PaymentOrder, SeatReservation
from tests.api import Api, eventually
from tests.faults.conftest import service_env
from tests.faults.flows import (
    all_delivered, assert_invariants, assert_paid_exactly_once, count_status, inbox, notifications, orders_in_payment,
    parents, statuses,
)

STORM = 60
SEATS, RUSH = 5, 200
DIED = (OSError, HTTPClientError, StreamClosedError)  # refused, reset or cut off: the process is gone


@pytest.mark.gen_test(timeout=90)
async def test_kill_9_in_a_notification_storm_every_payment_is_applied_once(fault_db, server_env, sandbox,
                                                                             services, tmp_path):
    env = service_env(sandbox, fault_db, server_env["REDIS_URL"], tmp_path / "certs", RECONCILE_INTERVAL_SECONDS="2")
    first = services(env, "storm-1")
    api = Api(first.url, sandbox)
    sid = await api.schedule(capacity=STORM)
    orders = [order_id for _, order_id in await orders_in_payment(api, sid, STORM)]

    async def pay_all():
        for order_id in orders:  # WeChat Pay sends the notifications as the payers pay, a few milliseconds apart
            await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
            await asyncio.sleep(0.02)

    paying = asyncio.ensure_future(pay_all())
    await eventually(lambda: _at_least(orders, "paid", STORM // 4), what="a quarter of the payments applied")
    first.kill()
    assert await count_status(orders, "paid") < STORM, "the kill came after the storm"
    await paying
    services(env, "storm-2", port=first.port)  # the same notify URL
    await eventually(lambda: all_delivered(api, orders), timeout=45, what="every notification acknowledged")
    await assert_paid_exactly_once(orders)
    attempts = [a for n in await notifications(api, orders) for a in n["attempts"]]
    assert any(a.get("status") is None for a in attempts), "no delivery ever met the dead process"
    assert {a.get("status") for a in attempts} <= {204, None}
    receipts = await inbox(orders)
    assert len(receipts) == STORM and {r.outcome for r in receipts} <= {"applied", "duplicate"}
    await assert_invariants(2)


async def _at_least(order_ids, status, n):
    return await count_status(order_ids, status) >= n


async def _book(api, token, sid):
    """Create the order, then start paying: (create status, order id, prepay status); a dead server is 'died'."""
    try:
        status, order = await api.order(token, sid)
    except DIED:
        return "died", None, None
    if status not in (200, 201):
        assert status == 409 and order["error"]["code"] == "SOLD_OUT", order
        return status, None, None
    try:
        prepay, body = await api.prepay(token, order["order_id"])
    except DIED:
        return status, order["order_id"], "died"
    # 503: the dead process still holds the order's lease (safe to retry later).
    assert (prepay, (body.get("error") or {}).get("code")) in (
        (200, None), (503, "SERVICE_UNAVAILABLE"), (409, "ORDER_NOT_PAYABLE")), body
    return status, order["order_id"], prepay


async def _held(sid):
    return list(await SeatReservation.select().where((SeatReservation.course_schedule == sid) & (
        SeatReservation.status.in_(["temporary", "confirmed"]))).aio_execute())


@pytest.mark.gen_test(timeout=120)
async def test_kill_9_in_a_rush_for_5_seats_no_oversell_and_no_seat_held_by_a_dead_order(fault_db, server_env, sandbox,
                                                                                       services, tmp_path):
    env = service_env(sandbox, fault_db, server_env["REDIS_URL"], tmp_path / "certs", RECONCILE_INTERVAL_SECONDS="1",
                      SEAT_HOLD_SECONDS="30", ORDER_EXPIRE_SECONDS="30")
    first = services(env, "rush-1")
    api = Api(first.url, sandbox)
    api.http = AsyncHTTPClient(force_instance=True, max_clients=RUSH)  # all 200 parents at once
    try:
        sid = await api.schedule(capacity=SEATS)
        tokens = await parents(api, RUSH, limit=20)
        # The rush itself is over in a fraction of a second; so that the kill lands in it whatever the machine's
        # speed, WeChat Pay answers the first two prepays at once and holds the others' answers (the orders exist
        # there, as when the answer is lost): the process dies with prepays in flight and seats held.
        jsapi = {"path_prefix": "/v3/pay/transactions/jsapi", "method": "POST"}
        await api.control("POST", "/sandbox/faults", {**jsapi, "count": 2, "latency_ms": 0})
        await api.control("POST", "/sandbox/faults", {**jsapi, "count": -1, "latency_ms": 60_000,
                                                      "latency_on": "answer"})
        rush = asyncio.gather(*[_book(api, t, sid) for t in tokens])
        await eventually(lambda: _prepays_done(sid, 2), what="the first two prepays of the rush to be done")
        await eventually(lambda: _jsapi_held(api, sid, SEATS - 2), what="the other winners' prepays to be in flight")
        first.kill()
        results = await rush
        assert any("died" in r for r in results), "the kill came after the rush"
        await api.control("DELETE", "/sandbox/faults")
        services(env, "rush-2", port=first.port)
        # The parents whose request died try again, as the mini-program does.
        retried = await asyncio.gather(*[_book(api, t, sid) for t, r in zip(tokens, results) if "died" in r])
        assert not any("died" in r for r in retried)
        created = {r[1] for r in results + retried if r[1]}
        await assert_invariants(1)  # no oversell (not even a warning), with the holds the dead process left
        # Two parents pay; the other holds are dead: no one will ever pay for them.
        paid = list(dict.fromkeys(r[1] for r in retried + results if r[1] and r[2] == 200))[:2]
        assert paid, "no parent could start paying after the restart"
        for order_id in paid:
            await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
        await eventually(lambda: _settled(created), timeout=60, what="the reconciler to end every dead order")
        assert await statuses(paid) == {o: "paid" for o in paid}
        held = await _held(sid)
        assert len(held) == len(paid) and all(h.status == "confirmed" for h in held)
        assert await api.remaining(sid) == SEATS - len(paid)
        for order_id in created - set(paid):
            status, placed, _ = await api.call("GET", f"/sandbox/orders/{order_id}", base=sandbox.url)
            assert status == 404 or placed["trade_state"] == "CLOSED", (order_id, placed)  # nobody can pay now
        await assert_invariants(1)
    finally:
        api.http.close()


async def _prepays_done(sid, n):
    """Prepays saved and their order's lease given back (a retry of those needs no dead lease to run out)."""
    return await PaymentOrder.select().where(
        (PaymentOrder.course_schedule == sid) & PaymentOrder.prepay_id.is_null(False)
        & PaymentOrder.lease_owner.is_null()).aio_count() >= n


async def _jsapi_held(api, sid, n):
    """n orders of the session placed at WeChat Pay whose prepay the service has not got back yet."""
    waiting = [o.order_id for o in await PaymentOrder.select().where(
        (PaymentOrder.course_schedule == sid) & PaymentOrder.prepay_id.is_null()).aio_execute()]
    placed = 0
    for order_id in waiting:
        status, _, _ = await api.call("GET", f"/sandbox/orders/{order_id}", base=api.sandbox.url)
        placed += status == 200
    return placed >= n


async def _settled(order_ids):
    return "pending" not in (await statuses(order_ids)).values()
