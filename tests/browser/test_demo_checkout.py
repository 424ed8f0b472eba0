"""The demo checkout clicked through in headless Chromium: paying, and cancelling in the WeChat Pay sheet."""
import pytest


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
