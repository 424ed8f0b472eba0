"""Order creation: fixed price, one trial per user, one open order, idempotency, seat holds without oversell."""
import asyncio

import pytest

from models import PaymentAuditLog, PaymentOrder, SeatReservation


@pytest.mark.gen_test
async def test_create_order_holds_a_seat_at_the_fixed_price(api, settings):
    sid = await api.schedule(capacity=3)
    token, _ = await api.login()
    status, order = await api.order(token, sid)
    assert status == 201, order
    assert order["status"] == "pending" and order["amount_fen"] == 20000 and order["amount"] == "200.00"
    assert order["currency"] == "CNY" and len(order["order_id"]) == 32
    assert int(order["order_id"], 16) >= 0 and order["order_id"] == order["order_id"].lower()
    assert order["reservation"]["status"] == "temporary"
    assert await api.remaining(sid) == 2
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
    assert row.amount_fen == 20000 and str(row.amount) == "200.00"
    actions = [a.action_type for a in await PaymentAuditLog.select().where(PaymentAuditLog.order == row.id)
               .aio_execute()]
    assert actions == ["order_created", "seat_held"]


@pytest.mark.gen_test
async def test_amounts_equal_to_the_price_are_accepted(api):
    for amount in ("200.00", 200, 200.0, "200"):
        sid = await api.schedule()
        token, _ = await api.login()
        status, order = await api.order(token, sid, amount=amount)
        assert status == 201, (amount, order)


@pytest.mark.gen_test
async def test_a_different_amount_is_refused_and_audited_with_the_ip(api):
    sid = await api.schedule()
    token, _ = await api.login()
    for amount in ("0.01", 199.99, "-200", "200.001"):
        status, body = await api.order(token, sid, amount=amount)
        assert status == 422 and body["error"]["code"] == "AMOUNT_MISMATCH", (amount, body)
    rows = list(await PaymentAuditLog.select().where(PaymentAuditLog.action_type == "amount_mismatch")
                .order_by(PaymentAuditLog.id.desc()).limit(4).aio_execute())
    assert len(rows) == 4 and all(r.ip_address == "127.0.0.1" and r.request_data for r in rows)
    for amount in ("abc", True, {"v": 1}, "NaN"):
        status, body = await api.order(token, sid, amount=amount)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", (amount, body)
    assert await api.remaining(sid) == 5


@pytest.mark.gen_test
async def test_same_session_returns_the_open_order_other_session_is_refused(api):
    s1, s2 = await api.schedule(), await api.schedule()
    token, _ = await api.login()
    status, first = await api.order(token, s1)
    assert status == 201
    status, again = await api.order(token, s1)
    assert status == 200 and again["order_id"] == first["order_id"]
    status, body = await api.order(token, s2)
    assert status == 409 and body["error"]["code"] == "PENDING_ORDER_EXISTS"
    assert body["error"]["order_id"] == first["order_id"]
    assert await api.remaining(s1) == 4 and await api.remaining(s2) == 5


@pytest.mark.gen_test
async def test_idempotency_key_gets_the_same_answer(api):
    sid = await api.schedule()
    token, _ = await api.login()
    answers = []
    for _ in range(3):
        status, data, _ = await api.call("POST", "/api/v1/payment/orders/create", {"course_schedule_id": sid},
                                         token=token, headers={"Idempotency-Key": "abc-123"})
        answers.append((status, data["order_id"]))
    assert answers == [(201, answers[0][1])] * 3
    status, data, _ = await api.call("POST", "/api/v1/payment/orders/create", {"course_schedule_id": sid + 0,
                                     "amount": "200.00"}, token=token, headers={"Idempotency-Key": "abc-123"})
    assert status == 422 and data["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.gen_test
async def test_sold_out_and_unknown_schedule(api):
    sid = await api.schedule(capacity=1)
    t1, _ = await api.login()
    t2, _ = await api.login()
    assert (await api.order(t1, sid))[0] == 201
    status, body = await api.order(t2, sid)
    assert status == 409 and body["error"]["code"] == "SOLD_OUT" and body["error"]["message"] == "名额已满"
    assert isinstance(body["error"]["alternatives"], list)
    status, body = await api.order(t2, 987654321)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


@pytest.mark.gen_test
async def test_orders_need_a_token_and_are_private(api):
    sid = await api.schedule()
    status, body = await api.order(None, sid)
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    status, body = await api.order("forged.token", sid)
    assert status == 401
    owner, _ = await api.login()
    other, _ = await api.login()
    _, order = await api.order(owner, sid)
    status, body, _ = await api.call("GET", f"/api/v1/payment/orders/{order['order_id']}", token=other)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, body, _ = await api.call("GET", "/api/v1/payment/orders", token=other)
    assert status == 200 and body["items"] == []
    status, body, _ = await api.call("GET", "/api/v1/payment/orders", token=owner)
    assert [o["order_id"] for o in body["items"]] == [order["order_id"]]


@pytest.mark.gen_test(timeout=60)
async def test_one_users_20_concurrent_creates_make_one_order(api):
    sid = await api.schedule(capacity=10)
    token, _ = await api.login()
    results = await asyncio.gather(*[api.order(token, sid) for _ in range(20)])
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 19 + [201], results
    assert len({body["order_id"] for _, body in results}) == 1
    assert await api.remaining(sid) == 9


@pytest.mark.gen_test(timeout=60)
async def test_30_users_racing_for_5_seats_get_exactly_5_holds(api):
    sid = await api.schedule(capacity=5)
    tokens = [t for t, _ in await asyncio.gather(*[api.login() for _ in range(30)])]
    results = await asyncio.gather(*[api.order(t, sid) for t in tokens])
    codes = sorted(s for s, _ in results)
    assert codes == [201] * 5 + [409] * 25, codes
    assert all(b["error"]["code"] == "SOLD_OUT" for s, b in results if s == 409)
    held = await SeatReservation.select().where(SeatReservation.course_schedule == sid).aio_count()
    assert held == 5 and await api.remaining(sid) == 0
