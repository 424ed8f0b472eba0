"""The demo checkout clicked through in headless Chromium: paying, cancelling in the WeChat Pay sheet, and 排队中
while the service turns the login away."""
import asyncio

import pytest

from tests.api import eventually


@pytest.mark.gen_test(timeout=90)
async def test_paying_shows_booked_over_the_websocket(api, checkout):
    sid = await api.schedule(capacity=3, title="浏览器测试·支付成功")
    page = await checkout("success", sid, "browser-success.png")

    assert "200.00 元" in page["listed"] and "剩余名额 3" in page["listed"]
    assert page["fixedPrice"] == "金额固定为200元" and page["sheetAmount"] == "200.00"
    assert page["title"] == "预约成功"
    pushed = [f for f in page["frames"] if f.get("type") == "order.status" and f["order_id"] == page["orderId"]]
    assert [f["status"] for f in pushed][-1] == "paid" and pushed[-1]["reservation_status"] == "confirmed"
    assert page["polled"] == [], "the page must not poll the order; the status comes over the WebSocket"
    order = await api.get_order(page["token"], page["orderId"])
    assert order["status"] == "paid" and order["reservation"]["status"] == "confirmed"
    assert await api.remaining(sid) == 2
    assert page["again"] == "您已预约过体验课，无法重复预约"


@pytest.mark.gen_test(timeout=90)
async def test_cancelling_in_the_sheet_frees_the_seat(api, checkout):
    sid = await api.schedule(capacity=2, title="浏览器测试·取消支付")
    page = await checkout("cancel", sid, "browser-cancel.png")

    assert page["remainingBefore"] == "2"
    assert page["title"] == "支付已取消"
    assert any(f.get("status") == "cancelled" and f["order_id"] == page["orderId"] for f in page["frames"])
    assert page["polled"] == []
    order = await api.get_order(page["token"], page["orderId"])
    assert order["status"] == "cancelled" and order["reservation"]["status"] == "cancelled"
    assert await api.remaining(sid) == 2
    assert "剩余名额 2" in page["listedAfter"]


@pytest.mark.gen_test(timeout=90)
async def test_paying_later_then_failing_frees_the_seat(api, checkout):
    sid = await api.schedule(capacity=2, title="浏览器测试·支付失败")
    page = await checkout("fail", sid, "browser-fail.png")

    assert page["pendingTitle"] == "订单待支付"
    assert page["title"] == "支付失败，请重试"
    assert page["polled"] == []
    order = await api.get_order(page["token"], page["orderId"])
    assert order["status"] == "failed" and order["failure_reason"] == "payment_failed"
    assert await api.remaining(sid) == 2


class TestABusyService:
    @pytest.fixture
    def overrides(self):
        return {"DEV_MODE": "1", "ADMISSION_LIMIT": "1", "ADMISSION_QUEUE": "0"}

    @pytest.mark.gen_test(timeout=90)
    async def test_a_login_turned_away_shows_queued_and_goes_through_after_retry_after(self, api, checkout):
        sid = await api.schedule(capacity=2, title="浏览器测试·排队中")
        token, _ = await api.login()
        status, order = await api.order(token, sid)
        assert status == 201, order
        # Another parent's prepay holds the only slot: WeChat Pay (the sandbox) keeps its call until released.
        await api.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "hold": True})
        held = asyncio.ensure_future(api.prepay(token, order["order_id"]))

        async def holding():
            return (await api.control("GET", "/sandbox/faults"))["held"] == 1

        await eventually(holding, what="the prepay held at WeChat Pay")
        page = await checkout("queued", sid, "browser-queued.png")

        assert page["queuedText"] == "排队中，请稍候…"
        assert page["answers"][0] == {"status": 503, "retryAfter": "1"}, page["answers"]
        assert page["answers"][-1]["status"] == 200 and page["released"] == {"released": 1}
        assert page["queuedAfter"] and "剩余名额 1" in page["listed"]
        status, params = await held
        assert status == 200 and params["package"].startswith("prepay_id="), params


@pytest.mark.gen_test(timeout=120)
async def test_one_person_fills_a_session_waits_as_another_parent_and_books_the_kept_seat(api, checkout):
    sid = await api.schedule(capacity=1, title="浏览器测试·候补")
    page = await checkout("waitlist", sid, "browser-waitlist.png")

    assert "名额已满" in page["full"] and "可候补" in page["full"]
    assert "加入候补" in page["joinOffered"] or "候补" in page["joinOffered"]
    assert page["waiting"] == "候补第 1 位"
    assert "待支付" in page["story"] and page["cancelled"] == "支付已取消"
    assert page["offered"].startswith("有名额了！") and "分钟内完成预约" in page["offered"]
    assert page["title"] == "预约成功"
    assert page["stories"] == ["预约成功 · 已支付 200.00 元"]
    assert await api.remaining(sid) == 0
