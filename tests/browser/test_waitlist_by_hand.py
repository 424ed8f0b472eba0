"""Issue 16's "done when", clicked through after a real `make run` in headless Chromium: on the one-seat session
`make run` seeds, a person fills it as 家长1 (稍后支付), joins its waitlist as 家长2, cancels as 家长1 from 我的订单,
and books the kept seat as 家长2 (checkout.js's `waitlist` scenario, the demo's own clicks).

The stack is a second `make run` of its own (tests/make_run.py), so its sandbox's messages are this test's alone:
家长2 is told 候补成功 and then 预约成功, and 家长1, whose cancel was their own act, nothing."""
from __future__ import annotations

import asyncio
import os

import pytest

from tests.harness import VAR, http_json, wait_until
from tests.browser.node import run_script
from tests.make_run import MakeRunStack

SHOTS = os.path.join(VAR, "test")
SEEDED = "小班体验课（1个名额·可候补）"  # manage.py seed-demo


@pytest.fixture
def stack():
    made = MakeRunStack()
    made.start()
    yield made
    made.close()


async def _click_through(node_packages, stack, schedule_id):
    os.makedirs(SHOTS, exist_ok=True)
    return await run_script(node_packages, "checkout.js", "waitlist", stack.url, schedule_id,
                            os.path.join(SHOTS, "by-hand-waitlist.png"), stack.sandbox_url, timeout=90,
                            what="checkout.js waitlist")


def _two_messages(stack):
    """The sandbox's subscribe messages once there are two (or more), else None."""
    status, body, _ = http_json("GET", f"{stack.sandbox_url}/sandbox/messages")
    assert status == 200, body
    return body["items"] if len(body["items"]) >= 2 else None


def test_after_make_run_one_person_fills_the_seeded_session_waits_cancels_and_books_the_kept_seat(node_packages,
                                                                                                   stack):
    _, listing, _ = http_json("GET", f"{stack.url}/api/v1/courses/schedules")
    [seeded] = [s for s in listing["items"] if s["title"] == SEEDED]
    assert seeded["capacity"] == 1 and seeded["remaining"] == 1, seeded

    page = asyncio.run(_click_through(node_packages, stack, seeded["id"]))

    assert "名额已满" in page["full"] and "可候补" in page["full"]
    assert page["waiting"] == "候补第 1 位"
    assert "待支付" in page["story"] and page["cancelled"] == "支付已取消"
    assert page["offered"].startswith("有名额了！") and "分钟内完成预约" in page["offered"]
    assert page["title"] == "预约成功" and page["stories"] == ["预约成功 · 已支付 200.00 元"]
    _, after, _ = http_json("GET", f"{stack.url}/api/v1/courses/schedules/{seeded['id']}")
    assert after["remaining"] == 0

    sent = wait_until(lambda: _two_messages(stack), timeout=30, what="候补成功 and 预约成功 in the sandbox")
    assert [(m["template_id"], m["errcode"]) for m in sent] == [("WAITLIST_OFFER_TEMPLATE", 0),
                                                                ("TRIAL_BOOKED_TEMPLATE", 0)]
    assert sent[0]["touser"] == sent[1]["touser"]  # 家长2 both times; 家长1 (their own cancel) nothing
    assert sent[0]["page"] == f"pages/order/order?scheduleId={seeded['id']}"
