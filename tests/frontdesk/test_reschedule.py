"""Rescheduling a paid booking through the API (contract §2 Operators): one transaction, audited, the parent told,
the old seat offered to that session's waitlist; refusals as the contract lists them."""
import pytest

from models import PaymentAuditLog, PaymentOrder, SeatReservation, SubscribeMessage
from services.invariants import check_invariants
from tests.api import eventually
from tests.waitlist.helpers import full_session, in_line, offered, sandbox_messages

RESCHEDULE = "/api/v1/admin/orders/{}/reschedule"


@pytest.fixture
def overrides():
    return {"RECONCILE_INTERVAL_SECONDS": "0.5"}


async def _move(api, token, order_id, schedule_id):
    status, body, _ = await api.call("POST", RESCHEDULE.format(order_id), {"course_schedule_id": schedule_id},
                                     token=token)
    return status, body


@pytest.mark.gen_test(timeout=120)
async def test_a_paid_booking_moves_in_one_transaction_and_the_old_seat_goes_to_the_line(api, settings):
    old, parent, openid, order = await api.paid_order(capacity=1, title="周六改期前")
    [(waiter, _, entry)] = await in_line(api, old, 1)
    new = await api.schedule(capacity=2, title="周日改期后")
    staff = await api.admin_token("staff")
    status, moved = await _move(api, staff, order["order_id"], new)
    assert status == 200, moved
    assert moved["course_schedule_id"] == new and moved["schedule"]["id"] == new and moved["status"] == "paid"
    assert moved["reservation"]["status"] == "confirmed" and moved["user"]["id"]
    assert moved["amount_fen"] is None and moved["refunds"] is None  # staff sees no money (none moved)
    assert (await api.get_order(parent, order["order_id"]))["course_schedule_id"] == new
    assert await api.remaining(new) == 1
    # The seat it left is kept for the old session's first in line at once, in the same transaction.
    await offered(api, waiter, entry["id"], timeout=1)
    assert await api.remaining(old) == 0
    row = await PaymentOrder.aio_get(PaymentOrder.order_id == order["order_id"])
    seat = await SeatReservation.aio_get(SeatReservation.order == row.id)
    assert seat.course_schedule_id == new and seat.status == "confirmed"
    rows = list(await PaymentAuditLog.select().where((PaymentAuditLog.order == row.id) & PaymentAuditLog.action_type
                                                     .in_(("order_rescheduled", "seat_moved"))).aio_execute())
    assert {r.action_type for r in rows} == {"order_rescheduled", "seat_moved"}
    assert all(r.actor == "operator" and r.operator_id and r.ip_address == "127.0.0.1" for r in rows)
    assert f"schedule {old} " in rows[0].action_detail and f"schedule {new} " in rows[0].action_detail
    # The parent is told: 课程改期 names the new session.
    sent = await eventually(lambda: _reschedule_sent(api, openid), what="the 课程改期 message")
    assert sent["template_id"] == settings.reschedule_template_id
    assert sent["data"]["thing1"]["value"] == "周日改期后" and sent["data"]["phrase3"]["value"] == "课程已改期"
    assert await SubscribeMessage.select().where((SubscribeMessage.order == row.id)
                                                 & (SubscribeMessage.kind == "reschedule")).aio_count() == 1
    # The timeline shows it; the invariants hold (counters moved with the seat).
    assert [v for v in await check_invariants(0.5) if not v.warning and v.order_id == order["order_id"]] == []
    status, story, _ = await api.call("GET", f"/api/v1/admin/orders/{order['order_id']}", token=staff)
    assert "order_rescheduled" in [t["action_type"] for t in story["timeline"]]


async def _reschedule_sent(api, openid):
    found = [m for m in await sandbox_messages(api, openid) if m["data"].get("phrase3", {}).get("value") == "课程已改期"]
    return found[0] if found else None


@pytest.mark.gen_test(timeout=120)
async def test_the_refusals(api):
    sid, parent, _, order = await api.paid_order(capacity=2)
    staff, finance = await api.admin_token("staff"), await api.admin_token("finance")
    full, _ = await full_session(api, capacity=1, title="已满")
    spare = await api.schedule(capacity=3, title="有名额", starts_in_days=3.1)
    started = await api.schedule(capacity=3, starts_in_days=-0.01)
    # A full session: SOLD_OUT with its alternatives (never the order's own session).
    status, body = await _move(api, staff, order["order_id"], full)
    assert status == 409 and body["error"]["code"] == "SOLD_OUT" and body["error"]["message"] == "名额已满"
    assert sid not in [a["id"] for a in body["error"]["alternatives"]]
    assert all(a["remaining"] > 0 for a in body["error"]["alternatives"])
    # Not another upcoming session: 400.
    for target in (sid, started):
        status, body = await _move(api, staff, order["order_id"], target)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", target
    for bad in ({}, {"course_schedule_id": "x"}):
        status, body, _ = await api.call("POST", RESCHEDULE.format(order["order_id"]), bad, token=staff)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"
    status, body = await _move(api, staff, order["order_id"], 987654321)
    assert status == 404
    status, body = await _move(api, staff, "0" * 32, spare)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    # An order that is not paid with its seat confirmed.
    pending_parent, _ = await api.login()
    _, pending = await api.order(pending_parent, spare)
    status, body = await _move(api, staff, pending["order_id"], sid)
    assert status == 409 and body["error"]["code"] == "ORDER_NOT_RESCHEDULABLE"
    # Roles: admin and staff only; a parent's token is refused.
    status, body = await _move(api, finance, order["order_id"], spare)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    status, body = await _move(api, parent, order["order_id"], spare)
    assert status == 403
    status, body = await _move(api, None, order["order_id"], spare)
    assert status == 401
    # Nothing moved by any refusal; then a good one.
    assert (await api.get_order(parent, order["order_id"]))["course_schedule_id"] == sid
    status, moved = await _move(api, await api.admin_token("admin"), order["order_id"], spare)
    assert status == 200 and moved["course_schedule_id"] == spare
    assert await api.remaining(sid) == 2 and await api.remaining(spare) == 1
    # A refunded order can no longer move.
    status, _ = await api.refund(await api.admin_token("admin"), order["order_id"], 20000)
    assert status == 201
    await eventually(lambda: _refunded(api, parent, order["order_id"]), what="the refund")
    status, body = await _move(api, staff, order["order_id"], sid)
    assert status == 409 and body["error"]["code"] == "ORDER_NOT_RESCHEDULABLE"


async def _refunded(api, token, order_id):
    return (await api.get_order(token, order_id))["status"] == "refunded"
