"""The waitlist through HTTP (contract §2 Waitlist): join, position, leave; a freed seat kept for the first in line,
refused to anyone else, taken by the offered parent's order; a lapsed offer passing on; the 候补成功 message."""
import datetime as dt

import pytest

from models import PaymentAuditLog, WaitlistEntry
from tests.api import eventually
from tests.waitlist.helpers import (
    cancel, entries, entry, full_session, in_line, join, leave, offer_messages, offered, parse, sandbox_messages,
    statuses,
)


@pytest.fixture
def overrides():
    """The module's settings (a test names its own with @pytest.mark.settings(...): tests/conftest.py service_env)."""
    return {"RECONCILE_INTERVAL_SECONDS": "0.3", "WAITLIST_OFFER_SECONDS": "900"}


@pytest.mark.gen_test(timeout=90)
async def test_join_position_and_the_refusals(api):
    sid, [(holder, _)] = await full_session(api)
    (t1, _, e1), (t2, _, e2) = await in_line(api, sid, 2)
    assert set(e1) == {"id", "course_schedule_id", "status", "position", "offer_expires_at", "created_at"}
    assert (e1["status"], e1["position"], e1["offer_expires_at"], e1["course_schedule_id"]) == ("waiting", 1, None, sid)
    assert e1["created_at"].endswith("+08:00")
    assert (e2["status"], e2["position"]) == ("waiting", 2)
    status, again = await join(api, t1, sid)  # the same parent again: that entry, 200
    assert status == 200 and again["id"] == e1["id"] and again["position"] == 1
    assert [e["id"] for e in await entries(api, t2)] == [e2["id"]]
    # A session with a seat left takes no line.
    open_sid = await api.schedule(capacity=2)
    status, body = await join(api, t1, open_sid)
    assert status == 409 and body["error"] == {"code": "SEATS_AVAILABLE", "message": "该课程还有名额，请直接预约"}
    # The trial rules first: a paid trial has nothing to wait for.
    _, paid_token, _, _ = await api.paid_order()
    status, body = await join(api, paid_token, sid)
    assert status == 409 and body["error"]["code"] == "TRIAL_ALREADY_BOOKED"
    # The holder's own unpaid order on this session holds a seat already: it is the answer.
    status, body = await join(api, holder, sid)
    assert status == 409 and body["error"]["code"] == "PENDING_ORDER_EXISTS" and body["error"]["order_id"]
    # An open order elsewhere does not stop a parent from waiting.
    t3, _ = await api.login()
    assert (await api.order(t3, open_sid))[0] == 201
    status, body = await join(api, t3, sid)
    assert status == 201 and body["position"] == 3
    for bad in ({}, {"course_schedule_id": "x"}, {"course_schedule_id": -1}, {"course_schedule_id": True}):
        status, body = await _raw_join(api, t3, bad)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", bad
    status, body = await join(api, t3, 987654321)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, body, _ = await api.call("POST", "/api/v1/waitlist", {"course_schedule_id": sid})
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    started = await api.schedule(capacity=1, starts_in_days=-0.01)
    status, body = await join(api, t3, started)
    assert status == 409 and body["error"]["code"] == "SCHEDULE_CLOSED"


async def _raw_join(api, token, body):
    status, data, _ = await api.call("POST", "/api/v1/waitlist", body, token=token)
    return status, data


@pytest.mark.gen_test(timeout=90)
async def test_a_cancelled_seat_is_kept_for_the_first_in_line_who_books_it(api, settings):
    sid, [(holder, held)] = await full_session(api, title="周六候补课")
    (first, first_openid, e1), (second, _, e2) = await in_line(api, sid, 2)
    stranger, _ = await api.login()
    before = dt.datetime.now(dt.timezone.utc)
    await cancel(api, holder, held)
    shown = await entry(api, first, e1["id"])  # offered in the cancel's own transaction: no wait
    assert shown["status"] == "offered" and shown["position"] is None
    until = parse(shown["offer_expires_at"])
    assert before + dt.timedelta(seconds=899) <= until <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=901)
    assert (await entry(api, second, e2["id"]))["position"] == 1
    assert await api.remaining(sid) == 0  # the kept seat counts as taken
    status, body = await api.order(stranger, sid)
    assert status == 409 and body["error"]["code"] == "SOLD_OUT"
    status, body = await join(api, stranger, sid)  # still full: the stranger may wait too
    assert status == 201 and body["position"] == 2
    # The 候补成功 message reaches the first in line, naming the session and the kept seat's end.
    sent = await eventually(lambda: sandbox_messages(api, first_openid), what="the 候补成功 message")
    assert sent[0]["data"]["phrase4"]["value"] == "候补成功" and sent[0]["data"]["thing1"]["value"] == "周六候补课"
    assert sent[0]["template_id"] == settings.waitlist_template_id
    assert sent[0]["page"] == f"pages/order/order?scheduleId={sid}"
    # The offered parent's order takes the kept seat.
    status, order = await api.order(first, sid)
    assert status == 201, order
    assert (await entry(api, first, e1["id"]))["status"] == "booked"
    assert await api.remaining(sid) == 0
    row = await WaitlistEntry.aio_get(WaitlistEntry.id == e1["id"])
    assert row.order_id is not None and row.live_user is None
    assert len(await offer_messages([e1["id"], e2["id"]])) == 1
    # It is paid like any order; the line moves on only when a seat frees again.
    status, _ = await api.prepay(first, order["order_id"])
    assert status == 200
    assert await statuses(sid) == ["booked", "waiting", "waiting"]


@pytest.mark.settings(WAITLIST_OFFER_SECONDS="1")
@pytest.mark.gen_test(timeout=90)
async def test_a_lapsed_offer_passes_to_the_next_then_back_on_sale(api):
    sid, [(holder, held)] = await full_session(api)
    (first, _, e1), (second, _, e2) = await in_line(api, sid, 2)
    await cancel(api, holder, held)
    assert (await entry(api, first, e1["id"]))["status"] == "offered"
    # Not taken in time: lapsed (by the reconciler), and the seat kept for the next.
    await offered(api, second, e2["id"], timeout=15)
    assert (await entry(api, first, e1["id"]))["status"] == "lapsed"
    status, body = await api.order(first, sid)  # too late: the seat is the next parent's now
    assert status == 409 and body["error"]["code"] == "SOLD_OUT"
    # The last offer lapses too: the seat is back on sale.
    await eventually(lambda: _status_is(second, e2["id"], api, "lapsed"), timeout=15, what="the second lapse")
    assert await api.remaining(sid) == 1
    status, _ = await api.order(first, sid)
    assert status == 201
    actions = [r.action_type for r in await PaymentAuditLog.select().where(
        PaymentAuditLog.entity == "waitlist").order_by(PaymentAuditLog.id).aio_execute()
        if r.action_detail.startswith((f"waitlist entry {e1['id']},", f"waitlist entry {e2['id']},"))]
    assert actions == ["waitlist_joined", "waitlist_joined", "waitlist_offered", "waitlist_offer_lapsed",
                       "waitlist_offered", "waitlist_offer_lapsed"]


async def _status_is(token, entry_id, api, status):
    return (await entry(api, token, entry_id))["status"] == status


@pytest.mark.settings(WAITLIST_OFFER_SECONDS="1", RECONCILE_INTERVAL_SECONDS="3600", RUN_JOBS="0")
@pytest.mark.gen_test(timeout=90)
async def test_an_offer_past_its_time_is_lapsed_by_the_next_booking_before_the_job(api):
    sid, [(holder, held)] = await full_session(api)
    (first, _, e1), (second, _, e2) = await in_line(api, sid, 2)
    await cancel(api, holder, held)
    await eventually(lambda: _past(first, e1["id"], api), what="the offer's time to run out")
    stranger, _ = await api.login()
    status, body = await api.order(stranger, sid)  # the lapse happens under the lock; the next in line gets it
    assert status == 409 and body["error"]["code"] == "SOLD_OUT"
    assert await statuses(sid) == ["lapsed", "offered"]
    status, _ = await api.order(second, sid)
    assert status == 201


async def _past(token, entry_id, api):
    shown = await entry(api, token, entry_id)  # the API's times have whole seconds: one more to be sure
    return parse(shown["offer_expires_at"]) + dt.timedelta(seconds=1) < dt.datetime.now(dt.timezone.utc)


@pytest.mark.gen_test(timeout=90)
async def test_leaving_the_line(api):
    sid, [(holder, held)] = await full_session(api)
    (first, _, e1), (second, _, e2), (third, _, e3) = await in_line(api, sid, 3)
    status, body = await leave(api, second, e2["id"])  # a waiting parent leaves: the others move up
    assert status == 200 and body["status"] == "left" and body["position"] is None
    assert (await entry(api, third, e3["id"]))["position"] == 2
    status, again = await leave(api, second, e2["id"])  # answered unchanged
    assert status == 200 and again == body
    status, body = await leave(api, first, e3["id"])  # another parent's entry: unknown
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    await cancel(api, holder, held)
    assert (await entry(api, first, e1["id"]))["status"] == "offered"
    status, body = await leave(api, first, e1["id"])  # the offered parent leaves: the seat passes on at once
    assert status == 200 and body["status"] == "left"
    assert (await entry(api, third, e3["id"]))["status"] == "offered"
    status, _ = await api.order(third, sid)
    assert status == 201
    status, body = await leave(api, third, e3["id"])  # booked: unchanged
    assert status == 200 and body["status"] == "booked"
    status, body = await join(api, second, sid)  # who left may join again, at the back
    assert status == 201 and body["position"] == 1 and body["id"] != e2["id"]


@pytest.mark.settings(SEAT_HOLD_SECONDS="2", ORDER_EXPIRE_SECONDS="60")
@pytest.mark.gen_test(timeout=120)
async def test_every_path_that_frees_a_seat_offers_it(api):
    admin = await api.admin_token()

    async def freed_by(free, capacity=1, paid=False):
        if paid:
            sid, token, _, order = await api.paid_order(capacity=1)
            holders = [(token, order["order_id"])]
        else:
            sid, holders = await full_session(api, capacity=capacity)
        [(waiter, _, e)] = await in_line(api, sid, 1)
        await free(sid, holders)
        await offered(api, waiter, e["id"], timeout=15)
        return sid

    # The parent's payment failed.
    await freed_by(lambda sid, h: cancel(api, h[0][0], h[0][1], "payment_failed"))
    # The hold expired (no payment started): the reconciler ends it and offers the seat.
    await freed_by(lambda sid, h: _nothing())
    # The order was refunded in full (an operator's refund).
    async def refund(sid, holders):
        status, body = await api.refund(admin, holders[0][1], 20000)
        assert status == 201, body

    await freed_by(refund, paid=True)

    # The capacity is raised.
    async def raise_capacity(sid, holders):
        status, body, _ = await api.call("PATCH", f"/api/v1/admin/schedules/{sid}", {"capacity": 2}, token=admin)
        assert status == 200, body

    await freed_by(raise_capacity)


async def _nothing():
    return None


@pytest.mark.gen_test(timeout=90)
async def test_a_capacity_raise_offers_one_seat_each_to_the_first_in_line(api):
    sid, _ = await full_session(api, capacity=1)
    line = await in_line(api, sid, 3)
    admin = await api.admin_token()
    status, body, _ = await api.call("PATCH", f"/api/v1/admin/schedules/{sid}", {"capacity": 3}, token=admin)
    assert status == 200 and body["remaining"] == 0
    assert await statuses(sid) == ["offered", "offered", "waiting"]
    assert len(await offer_messages([e["id"] for _, _, e in line])) == 2
