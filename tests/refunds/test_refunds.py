"""Refunds by operators through WeChat Pay (contract §2 Operators): the rules, the roles, idempotency, and a refund
never lost and never made twice — whether WeChat Pay answers 5xx, refuses, never notifies, or two processes settle."""
import asyncio
import json

import pytest
from tornado.websocket import websocket_connect

from models import PaymentAuditLog, PaymentOrder, Refund, SubscribeMessage
from tests.api import Api, eventually
from tests.harness import ServiceProcess

REFUNDS = "/v3/refund/domestic/refunds"


@pytest.fixture
def overrides():
    return {"RECONCILE_INTERVAL_SECONDS": "0.3"}


async def _refund_requests(api, out_refund_no=None):
    items = (await api.control("GET", f"/sandbox/requests?path_prefix={REFUNDS}"))["items"]
    return [r for r in items if r["method"] == "POST"
            and (out_refund_no is None or (r.get("request_body") or {}).get("out_refund_no") == out_refund_no)]


async def _refund_row(out_refund_no):
    return await Refund.select().where(Refund.out_refund_no == out_refund_no).aio_get()


async def _status_is(out_refund_no, status):
    return (await _refund_row(out_refund_no)).status == status


async def _order_view(api, admin, order_id):
    status, body, _ = await api.call("GET", f"/api/v1/admin/orders/{order_id}", token=admin)
    assert status == 200, body
    return body


@pytest.mark.gen_test(timeout=90)
async def test_partial_then_full_refund_frees_the_seat_tells_the_parent_and_allows_a_new_trial(api, base_url):
    sid, token, openid, order = await api.paid_order(capacity=1)
    finance = await api.admin_token("finance")
    assert await api.remaining(sid) == 0
    conn = await websocket_connect(base_url.replace("http://", "ws://") + "/ws/orders?token=" + token)
    conn.write_message(json.dumps({"op": "subscribe", "order_id": order["order_id"]}))
    assert json.loads(await conn.read_message())["status"] == "paid"

    status, first = await api.refund(finance, order["order_id"], 5000)
    assert status == 201 and first["status"] in ("PROCESSING", "SUCCESS") and first["amount"] == "50.00"
    assert first["order_id"] == order["order_id"] and first["operator"]["username"].startswith("op-finance")
    await eventually(lambda: _status_is(first["out_refund_no"], "SUCCESS"), what="the partial refund to succeed")
    view = await api.get_order(token, order["order_id"])
    assert view["status"] == "paid" and view["refunded_fen"] == 5000
    assert await api.remaining(sid) == 0  # a partial refund keeps the seat

    status, body = await api.refund(finance, order["order_id"], 15001)
    assert status == 422 and body["error"]["code"] == "REFUND_EXCEEDS_PAID"
    status, second = await api.refund(finance, order["order_id"], 15000)
    assert status == 201
    await eventually(lambda: _status_is(second["out_refund_no"], "SUCCESS"), what="the rest to be refunded")
    frames = []
    while not frames or frames[-1]["status"] != "refunded":
        frames.append(json.loads(await asyncio.wait_for(conn.read_message(), 10)))
    assert frames[-1]["reservation_status"] == "cancelled"
    view = await api.get_order(token, order["order_id"])
    assert view["status"] == "refunded" and view["refunded_fen"] == 20000
    assert view["reservation"]["status"] == "cancelled" and await api.remaining(sid) == 1
    status, body = await api.refund(finance, order["order_id"], 1)
    assert status == 409 and body["error"]["code"] == "ORDER_NOT_REFUNDABLE"

    async def refund_messages():
        sent = [m for m in (await api.control("GET", "/sandbox/messages"))["items"]
                if m.get("touser") == openid and m.get("errcode") == 0]
        return [m for m in sent if m["data"].get("phrase4", {}).get("value") == "退款成功"]

    messages = await eventually(refund_messages, what="the 退款通知 messages")
    assert sorted(m["data"]["amount2"]["value"] for m in messages) == ["150.00元", "50.00元"]
    story = await _order_view(api, finance, order["order_id"])
    assert [r["status"] for r in story["refunds"]] == ["SUCCESS", "SUCCESS"]
    requested = [t for t in story["timeline"] if t["action_type"] == "refund_requested"]
    assert len(requested) == 2 and all(t["actor"].startswith("operator:op-finance") and t["ip_address"]
                                       for t in requested)
    assert {"refund_success", "order_refunded", "seat_cancelled"} <= {t["action_type"] for t in story["timeline"]}
    assert {n["kind"] for n in story["notifications"]} == {"payment", "refund"}
    status, again = await api.order(token, sid)  # a refunded trial may be booked again
    assert status == 201, again
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_refund_rules_roles_and_idempotency(api):
    sid, token, _, order = await api.paid_order()
    admin, staff = await api.admin_token("admin"), await api.admin_token("staff")
    path = f"/api/v1/admin/orders/{order['order_id']}/refunds"
    status, body, _ = await api.call("POST", path, {"amount_fen": 100, "reason": "x"}, token=admin)
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"  # no Idempotency-Key
    for who in (staff, token):
        status, body = await api.refund(who, order["order_id"], 100)
        assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    status, body = await api.refund(None, order["order_id"], 100)
    assert status == 401
    for amount, code in ((0, 422), (-5, 422), (20001, 422), ("100", 400), (1.5, 400), (True, 400)):
        status, body = await api.refund(admin, order["order_id"], amount)
        assert status == code, (amount, body)
    status, body = await api.refund(admin, "f" * 32, 100)
    assert status == 404
    await api.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    status, first = await api.refund(admin, order["order_id"], 8000, key="same-key")
    assert status == 201 and first["status"] == "PROCESSING"
    status, again = await api.refund(admin, order["order_id"], 1, key="same-key", reason="别的理由")
    assert status == 200 and again["out_refund_no"] == first["out_refund_no"] and again["amount_fen"] == 8000
    status, again = await api.refund(admin, order["order_id"], "not even a number", key="same-key")
    assert status == 200 and again["out_refund_no"] == first["out_refund_no"]  # whatever the body
    assert len(await _refund_requests(api, first["out_refund_no"])) == 1  # nothing sent twice
    # What is still refundable counts the PROCESSING refund.
    status, body = await api.refund(admin, order["order_id"], 12001)
    assert status == 422
    status, body = await api.refund(admin, order["order_id"], 12000)
    assert status == 201
    pending_sid, pending_token, _, pending, _ = await api.order_in_payment()
    status, body = await api.refund(admin, pending["order_id"], 100)
    assert status == 409 and body["error"]["code"] == "ORDER_NOT_REFUNDABLE"


@pytest.mark.gen_test(timeout=60)
async def test_a_refund_whose_first_request_gets_a_5xx_is_kept_and_sent_again(api):
    sid, token, _, order = await api.paid_order()
    finance = await api.admin_token("finance")
    await api.control("POST", "/sandbox/faults", {"path_prefix": REFUNDS, "method": "POST", "status": 500,
                                                  "code": "SYSTEM_ERROR", "count": 1})
    status, refund = await api.refund(finance, order["order_id"], 20000)
    assert status == 201 and refund["status"] == "PROCESSING"
    await eventually(lambda: _status_is(refund["out_refund_no"], "SUCCESS"), timeout=20,
                     what="the reconciler to send it again and see it succeed")
    sent = await _refund_requests(api, refund["out_refund_no"])
    assert [r["status"] for r in sent] == [500, 200]  # once refused by the fault, once accepted: one refund
    at_wechat = await api.control("GET", f"/sandbox/refunds/{refund['out_refund_no']}")
    assert at_wechat["status"] == "SUCCESS"
    assert (await api.get_order(token, order["order_id"]))["status"] == "refunded"


@pytest.mark.gen_test(timeout=60)
async def test_a_refund_wechat_pay_refuses_is_rejected_and_the_amount_is_refundable_again(api):
    sid, token, _, order = await api.paid_order()
    finance = await api.admin_token("finance")
    await api.control("POST", "/sandbox/faults", {"path_prefix": REFUNDS, "method": "POST", "status": 403,
                                                  "code": "NOT_ENOUGH", "message": "基本账户余额不足", "count": 1})
    status, body = await api.refund(finance, order["order_id"], 20000, key="refused")
    assert status == 409 and body["error"]["code"] == "REFUND_REJECTED" and "余额不足" in body["error"]["message"]
    status, listed, _ = await api.call("GET", "/api/v1/admin/refunds?status=REJECTED", token=finance)
    assert status == 200 and order["order_id"] in {r["order_id"] for r in listed["items"]}
    status, again = await api.refund(finance, order["order_id"], 20000, key="refused")
    assert status == 200 and again["status"] == "REJECTED"  # the same key: the same (rejected) refund
    status, retry = await api.refund(finance, order["order_id"], 20000, key="second-try")
    assert status == 201
    await eventually(lambda: _status_is(retry["out_refund_no"], "SUCCESS"), what="the second try to succeed")


@pytest.mark.gen_test(timeout=60)
async def test_a_refund_whose_notification_never_comes_is_settled_by_the_reconciler(api):
    sid, token, _, order = await api.paid_order()
    finance = await api.admin_token("finance")
    await api.control("POST", "/sandbox/notifications/next", {"action": "drop", "count": 1})
    status, refund = await api.refund(finance, order["order_id"], 20000)
    assert status == 201
    await eventually(lambda: _status_is(refund["out_refund_no"], "SUCCESS"), timeout=20,
                     what="the reconciler's query to settle it")
    rows = list(await PaymentAuditLog.select().where(PaymentAuditLog.action_type == "refund_success")
                .join(Refund, on=(PaymentAuditLog.refund == Refund.id))
                .where(Refund.out_refund_no == refund["out_refund_no"]).aio_execute())
    assert len(rows) == 1 and rows[0].actor == "system"
    assert (await api.get_order(token, order["order_id"]))["status"] == "refunded"


@pytest.mark.gen_test(timeout=60)
async def test_an_abnormal_refund_waits_for_a_person_and_may_still_succeed(api):
    sid, token, _, order = await api.paid_order()
    finance = await api.admin_token("finance")
    await api.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    status, refund = await api.refund(finance, order["order_id"], 20000)
    await api.control("POST", f"/sandbox/refunds/{refund['out_refund_no']}/settle", {"result": "ABNORMAL"})
    await eventually(lambda: _status_is(refund["out_refund_no"], "ABNORMAL"), what="ABNORMAL")
    status, listed, _ = await api.call("GET", "/api/v1/admin/refunds?status=ABNORMAL", token=finance)
    assert refund["out_refund_no"] in {r["out_refund_no"] for r in listed["items"]}
    assert (await api.get_order(token, order["order_id"]))["status"] == "paid"
    await api.control("POST", f"/sandbox/refunds/{refund['out_refund_no']}/settle", {"result": "SUCCESS"})
    await eventually(lambda: _status_is(refund["out_refund_no"], "SUCCESS"), what="SUCCESS after ABNORMAL")
    assert (await api.get_order(token, order["order_id"]))["status"] == "refunded"


@pytest.mark.gen_test(timeout=120)
async def test_two_processes_settling_the_same_refunds_apply_each_once(service_env, sandbox, db):
    """One process gets WeChat Pay's notifications while the other's reconciler queries the same refunds."""
    env = {**service_env, "RECONCILE_INTERVAL_SECONDS": "0.2"}
    env.pop("PORT")
    a, b = ServiceProcess(env, name="refund-a"), ServiceProcess({**env, "RUN_JOBS": "false"}, name="refund-b")
    try:
        api_b = Api(b.url, sandbox)   # the refund notify URL points at b; a runs the reconciler
        await api_b.control("POST", "/sandbox/config", {"refund_auto_settle": False})
        finance = await api_b.admin_token("finance")
        refunds = []
        for _ in range(6):
            _, token, _, order = await api_b.paid_order()
            status, refund = await api_b.refund(finance, order["order_id"], 20000)
            assert status == 201
            refunds.append((order["order_id"], refund["out_refund_no"]))
        for _, no in refunds:  # settled at WeChat Pay: notification to b and query by a race for each
            await api_b.control("POST", f"/sandbox/refunds/{no}/settle", {"result": "SUCCESS"})
        for _, no in refunds:
            await eventually(lambda: _status_is(no, "SUCCESS"), what=f"refund {no} settled")
        for order_id, no in refunds:
            row = await _refund_row(no)
            successes = await PaymentAuditLog.select().where((PaymentAuditLog.refund == row.id) & (
                PaymentAuditLog.action_type == "refund_success")).aio_count()
            assert successes == 1
            order = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()
            assert order.status == "refunded" and order.refunded_fen == 20000
            assert await SubscribeMessage.select().where(SubscribeMessage.refund == row.id).aio_count() == 1
    finally:
        a.stop()
        b.stop()
