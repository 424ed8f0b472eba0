"""Attendance on the roster through the API (contract §2 Operators): once a session has started, a confirmed seat is
marked attended or no-show (or cleared), audited; roster items carry `attendance`."""

import pytest

from models import PaymentAuditLog
from tests.api import eventually


async def _started_session(api):
    """A session with a paid seat and a pending hold, once it has started: (schedule id, paid order, pending order,
    staff token)."""
    sid = await api.schedule(capacity=3, title="到课登记", starts_in_days=1)
    parent, _ = await api.login()
    status, order = await api.order(parent, sid)
    assert status == 201
    assert (await api.prepay(parent, order["order_id"]))[0] == 200
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
    await eventually(lambda: _paid(api, parent, order["order_id"]), what="the payment")
    other, _ = await api.login()
    status, pending = await api.order(other, sid)
    assert status == 201
    staff = await api.admin_token("staff")
    roster = await _roster(api, staff, sid)
    paid_item = [i for i in roster if i["order_id"] == order["order_id"]][0]
    assert paid_item["attendance"] is None
    # Before the session starts, nothing can be marked.
    status, body = await _mark(api, staff, paid_item["reservation_id"], "attended")
    assert status == 409 and body["error"]["code"] == "ATTENDANCE_NOT_ALLOWED"
    await api.start_now(sid)
    return sid, paid_item, [i for i in roster if i["order_id"] == pending["order_id"]][0], staff


async def _paid(api, token, order_id):
    return (await api.get_order(token, order_id))["status"] == "paid"


async def _roster(api, token, sid):
    status, body, _ = await api.call("GET", f"/api/v1/admin/schedules/{sid}/roster", token=token)
    assert status == 200, body
    return body["items"]


async def _mark(api, token, reservation_id, value, raw=None):
    status, body, _ = await api.call("PATCH", f"/api/v1/admin/reservations/{reservation_id}",
                                     raw if raw is not None else {"attendance": value}, token=token)
    return status, body


@pytest.mark.gen_test(timeout=120)
async def test_marking_attendance_once_the_session_started(api):
    sid, seat, hold, staff = await _started_session(api)
    rid = seat["reservation_id"]
    status, item = await _mark(api, staff, rid, "attended")
    assert status == 200 and item["attendance"] == "attended" and item["reservation_id"] == rid
    assert set(item) >= {"reservation_id", "status", "order_id", "order_status", "attendance", "user"}
    assert [i["attendance"] for i in await _roster(api, staff, sid) if i["reservation_id"] == rid] == ["attended"]
    status, item = await _mark(api, await api.admin_token("admin"), rid, "no_show")
    assert status == 200 and item["attendance"] == "no_show"
    status, item = await _mark(api, staff, rid, None)  # cleared
    assert status == 200 and item["attendance"] is None
    rows = list(await PaymentAuditLog.select().where(PaymentAuditLog.action_type == "attendance_marked")
                .order_by(PaymentAuditLog.id.desc()).limit(3).aio_execute())
    assert [(r.old_status, r.new_status) for r in reversed(rows)] == [(None, "attended"), ("attended", "no_show"),
                                                                      ("no_show", None)]
    assert all(r.actor == "operator" and r.operator_id and r.ip_address == "127.0.0.1" for r in rows)
    # A held seat that is not confirmed is not marked.
    status, body = await _mark(api, staff, hold["reservation_id"], "no_show")
    assert status == 409 and body["error"]["code"] == "ATTENDANCE_NOT_ALLOWED"
    for bad in ({"attendance": "late"}, {}, {"attendance": 1}):
        status, body = await _mark(api, staff, rid, None, raw=bad)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", bad
    status, body = await _mark(api, staff, "f" * 32, "attended")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, body = await _mark(api, await api.admin_token("finance"), rid, "attended")
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    status, body = await _mark(api, None, rid, "attended")
    assert status == 401
