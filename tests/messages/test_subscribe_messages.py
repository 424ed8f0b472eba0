"""The 预约成功 subscribe message: sent after the payment, retried, recorded, never delaying the answer."""
import pytest

from models import SubscribeMessage, PaymentAuditLog, PaymentOrder
from tests.api import eventually


async def _pay(api, title="周日上午体验课"):
    _, token, openid, order, _ = await api.order_in_payment(title=title)
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
    return token, openid, order["order_id"]


async def _messages_to(api, openid):
    return [m for m in (await api.control("GET", "/sandbox/messages"))["items"] if m.get("touser") == openid]


@pytest.mark.gen_test(timeout=60)
async def test_a_paid_booking_sends_the_notice(api):
    token, openid, order_id = await _pay(api)
    messages = await eventually(lambda: _messages_to(api, openid), what="the subscribe message")
    data = messages[0]["data"]
    assert data["phrase4"]["value"] == "预约成功" and data["amount3"]["value"] == "200.00元"
    assert data["thing1"]["value"] == "周日上午体验课"
    assert messages[0]["page"] == "pages/orders/orders"  # 我的订单 (the session page needs its session)
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()
    notice = await SubscribeMessage.select().where(SubscribeMessage.order == row.id).aio_get()
    assert notice.status == "sent" and notice.attempts == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_failed_send_is_retried(api):
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/cgi-bin/message/subscribe/send",
                                                  "status": 500, "code": "SYSTEM_ERROR", "count": 1})
    token, openid, order_id = await _pay(api)
    await eventually(lambda: _messages_to(api, openid), timeout=20, what="the retried subscribe message")
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()

    async def sent():
        notice = await SubscribeMessage.select().where(SubscribeMessage.order == row.id).aio_get()
        return notice.status == "sent" and notice

    notice = await eventually(sent, what="the notice marked sent")
    assert notice.attempts == 2


@pytest.mark.gen_test(timeout=60)
async def test_a_slow_message_api_never_delays_the_notification_answer(api):
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/cgi-bin/message/subscribe/send",
                                                  "status": 0, "latency_ms": 3000, "count": 1})
    token, openid, order_id = await _pay(api)

    async def answered():
        items = (await api.control("GET", f"/sandbox/notifications?out_trade_no={order_id}"))["items"]
        attempts = [a for n in items for a in n["attempts"] if a.get("status")]
        return attempts

    attempts = await eventually(answered, what="the notification answered")
    assert attempts[0]["status"] == 204 and attempts[0]["elapsed_ms"] < 1500


@pytest.mark.gen_test(timeout=60)
async def test_audit_snapshots_keep_no_payer_openid(api):
    token, openid, order_id = await _pay(api)

    async def paid():
        return (await api.get_order(token, order_id))["status"] == "paid"

    await eventually(paid, what="paid")
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()
    rows = list(await PaymentAuditLog.select().where(PaymentAuditLog.order == row.id).aio_execute())
    snapshots = " ".join((r.request_data or "") + (r.response_data or "") for r in rows)
    # The payment's snapshot keeps what an investigation needs, not the payer (models/personal_data.snapshot).
    assert '"trade_state"' in snapshots and '"payer"' not in snapshots and openid not in snapshots
    actors = {r.action_type: r.actor for r in rows}
    assert actors["order_created"] == "user" and actors["payment_succeeded"] == "wechat"
    created = next(r for r in rows if r.action_type == "order_created")
    assert created.ip_address == "127.0.0.1" and created.user_agent


@pytest.mark.gen_test(timeout=60)
async def test_the_access_token_is_cached_and_refreshed_when_it_expires(api):
    def token_requests(items):
        return [r for r in items if r["path"].startswith("/cgi-bin/stable_token")]

    _, first_openid, _ = await _pay(api)
    await eventually(lambda: _messages_to(api, first_openid), what="the first message")
    before = len(token_requests((await api.control("GET", "/sandbox/requests"))["items"]))
    _, second_openid, _ = await _pay(api)
    await eventually(lambda: _messages_to(api, second_openid), what="the second message")
    after_cached = len(token_requests((await api.control("GET", "/sandbox/requests"))["items"]))
    assert after_cached == before  # the cached token served the second message
    await api.control("POST", "/sandbox/wx/tokens/expire")
    _, third_openid, _ = await _pay(api)
    await eventually(lambda: _messages_to(api, third_openid), what="the message after the token expired")
    after_expiry = len(token_requests((await api.control("GET", "/sandbox/requests"))["items"]))
    assert after_expiry == after_cached + 1


@pytest.mark.gen_test(timeout=60)
async def test_a_token_wechat_no_longer_accepts_is_refreshed_by_force(api):
    _, first_openid, _ = await _pay(api)
    await eventually(lambda: _messages_to(api, first_openid), what="the first message")
    await api.control("POST", "/sandbox/wx/tokens/revoke")  # 40001 until a force_refresh
    _, openid, order_id = await _pay(api)
    async def delivered():
        return [m for m in await _messages_to(api, openid) if m["errcode"] == 0]

    await eventually(delivered, what="the message sent with a forcibly refreshed token")
    asks = [r["request_body"] for r in (await api.control("GET", "/sandbox/requests"))["items"]
            if r["path"].startswith("/cgi-bin/stable_token")]
    assert asks[-1]["force_refresh"] is True


@pytest.mark.gen_test(timeout=120)
async def test_two_senders_with_a_slow_message_api_send_each_notice_once(service_env, sandbox, db):
    """Leases shorter than the queue's wait: each claim starts when its send does and is renewed while it runs."""
    from tests.api import Api
    from tests.harness import ServiceProcess

    env = {**service_env, "MESSAGE_LEASE_SECONDS": "1"}
    env.pop("PORT")
    procs = [ServiceProcess(env, name=f"notices-{i}") for i in range(2)]
    try:
        api = Api(procs[0].url, sandbox)
        await api.control("POST", "/sandbox/faults", {"path_prefix": "/cgi-bin/message/subscribe/send",
                                                      "latency_ms": 700, "count": -1})
        sid = await api.schedule(capacity=30)
        openids = []
        for _ in range(20):
            token, openid = await api.login()
            _, order = await api.order(token, sid)
            assert (await api.prepay(token, order["order_id"]))[0] == 200
            await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
            openids.append(openid)

        async def all_sent():
            sent = {m["touser"] for m in (await api.control("GET", "/sandbox/messages"))["items"]}
            return set(openids) <= sent

        await eventually(all_sent, timeout=60, what="every notice sent")
        messages = [m["touser"] for m in (await api.control("GET", "/sandbox/messages"))["items"]
                    if m["touser"] in openids]
        assert sorted(messages) == sorted(openids)  # once each
    finally:
        for p in procs:
            p.stop()
