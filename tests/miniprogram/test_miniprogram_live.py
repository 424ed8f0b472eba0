"""The mini-program's calls against the real service, once: its own pages, run in Node (jest + miniprogram-simulate,
tests/miniprogram/live/), against `python server.py` and the WeChat sandbox. A phone's sequence, as the page makes it:
wx.login code → login, the session list, the detail, the subscribe request in the tap, orders/create, subscribe on
the socket, wxpay/create, the payer paying at the sandbox (paySign checked with the merchant key), 预约成功 pushed;
and a sheet closed, then paid again. The outcome is checked here through the API, the socket frames and the sandbox."""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.api import Api, eventually
from tests.harness import ServiceProcess
from tests.miniprogram.jest_run import jest_command


@pytest.fixture
def service(service_env, sandbox, db):
    env = {**service_env}
    env.pop("PORT")
    proc = ServiceProcess(env, name="miniprogram-live")
    yield proc
    proc.stop()


async def _run_live(jest_dir, env):
    # An asyncio subprocess, so that this test's io_loop (the database pool of `db`) is not blocked meanwhile.
    proc = await asyncio.create_subprocess_exec(
        *jest_command("--config", "jest.live.config.js"), cwd=jest_dir, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=150)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the live jest run did not finish in 150 s") from None
    return proc.returncode, (out + err).decode(errors="replace")


WAITLIST_READ = "GET /api/v1/waitlist 200"


def _calls(requests):
    """The page's calls as 'METHOD path status', in the order they were answered; the login at launch and the
    first page's read go out together, so those two are put in one order. The order page's read of the parent's
    waitlist entries goes out beside its read of the session, in either order: it is checked on its own."""
    calls = [f"{r['method']} {r['path']} {r['status']}" for r in requests if
             f"{r['method']} {r['path']} {r['status']}" != WAITLIST_READ]
    return sorted(calls[:2], key=lambda c: "/auth/login" not in c) + calls[2:]


def _waitlist_reads(requests):
    return sum(f"{r['method']} {r['path']} {r['status']}" == WAITLIST_READ for r in requests)


@pytest.mark.gen_test(timeout=200)
async def test_the_pages_book_and_pay_against_the_service(jest_dir, service, sandbox, tmp_path):
    api = Api(service.url, sandbox)
    pay_sid = await api.schedule(capacity=3, title="小程序联调·支付")
    cancel_sid = await api.schedule(capacity=3, title="小程序联调·取消后重新支付")
    out = tmp_path / "live.json"
    code, output = await _run_live(jest_dir, {
        "GYM_API_BASE": service.url, "GYM_WS_BASE": service.url.replace("http://", "ws://"),
        "GYM_SANDBOX": sandbox.url, "GYM_SANDBOX_ENV": os.path.join(sandbox.state_dir, "service.env"),
        "GYM_LIVE_SESSIONS": json.dumps({"pay": {"id": pay_sid, "title": "小程序联调·支付"},
                                         "cancel": {"id": cancel_sid, "title": "小程序联调·取消后重新支付"}}),
        "GYM_LIVE_OUT": str(out)})
    assert code == 0, output
    seen = json.loads(out.read_text(encoding="utf-8"))

    pay = seen["pay"]
    order_id = pay["orderId"]
    assert _calls(pay["requests"]) == [
        "POST /api/v1/auth/login 200",
        "GET /api/v1/courses/schedules 200",
        f"GET /api/v1/courses/schedules/{pay_sid} 200",
        "POST /api/v1/payment/orders/create 201",
        "POST /api/v1/payment/wxpay/create 200",
        f"GET /api/v1/courses/schedules/{pay_sid} 200",
    ], "the page's calls, in order (the status never polled)"
    assert _waitlist_reads(pay["requests"]) == 1, "the order page reads the parent's place on the waitlist once"
    assert pay["subscribeRequests"] == [{"tmplIds": ["TRIAL_BOOKED_TEMPLATE", "PAYMENT_FAILED_TEMPLATE", "ORDER_EXPIRED_TEMPLATE"], "inTap": True}]
    assert pay["sent"] == [{"op": "subscribe", "order_id": order_id}]
    assert [p["signatureValid"] for p in pay["payments"]] == [True]
    assert pay["payments"][0]["params"]["package"].startswith("prepay_id=wx")
    statuses = [f["status"] for f in pay["frames"] if f.get("order_id") == order_id]
    assert statuses[0] == "pending" and statuses[-1] == "paid", pay["frames"]
    assert pay["sawProcessingAlone"], "支付处理中 was shown before, and without, 预约成功"
    assert "预约成功" in pay["text"]

    order = await api.get_order(pay["token"], order_id)
    assert order["status"] == "paid" and order["reservation"]["status"] == "confirmed"
    assert order["course_schedule_id"] == pay_sid and order["amount"] == "200.00"
    assert await api.remaining(pay_sid) == 2
    wechat = await api.control("GET", f"/sandbox/orders/{order_id}")
    assert wechat["trade_state"] == "SUCCESS" and wechat["paid_openid"] == pay["openid"]

    async def booked_notice():
        messages = (await api.control("GET", "/sandbox/messages"))["items"]
        return [m for m in messages if m.get("touser") == pay["openid"]]
    [notice] = await eventually(booked_notice, what="the 预约成功 subscribe message")
    assert notice["template_id"] == "TRIAL_BOOKED_TEMPLATE"

    again = seen["cancel"]
    assert _calls(again["requests"]) == [
        "POST /api/v1/auth/login 200",
        f"GET /api/v1/courses/schedules/{cancel_sid} 200",
        "POST /api/v1/payment/orders/create 201",
        "POST /api/v1/payment/wxpay/create 200",
        f"POST /api/v1/payment/orders/{again['cancelled']}/cancel 200",
        f"GET /api/v1/courses/schedules/{cancel_sid} 200",
        "POST /api/v1/payment/orders/create 201",
        "POST /api/v1/payment/wxpay/create 200",
        f"GET /api/v1/courses/schedules/{cancel_sid} 200",
    ]
    assert _waitlist_reads(again["requests"]) == 1
    assert again["cancelled"] != again["paid"]
    cancelled = await api.get_order(again["token"], again["cancelled"])
    assert cancelled["status"] == "cancelled" and cancelled["failure_reason"] == "user_cancelled"
    assert cancelled["reservation"]["status"] == "cancelled"
    paid = await api.get_order(again["token"], again["paid"])
    assert paid["status"] == "paid" and paid["reservation"]["status"] == "confirmed"
    assert await api.remaining(cancel_sid) == 2
