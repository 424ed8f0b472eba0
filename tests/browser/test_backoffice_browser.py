"""The back office clicked through in headless Chromium (outside dev mode): finance refunds a paid order in full
through the dialog and sees it refunded (and again with htmx blocked, as plain pages); the front desk sees the roster
and no refund anywhere."""
import json
import os
import time

import pytest

from models import PaymentOrder, Refund
from services.accounts.operators import provision_operator
from models.personal_data import mask_value
from tests.harness import VAR
from tests.browser.node import run_script

SHOTS = os.path.join(VAR, "test")
PASSWORD = "correct-horse-battery"


@pytest.fixture
def overrides():
    """The back office is served in every mode: dev mode off."""
    return {"DEV_MODE": "0"}


@pytest.fixture
def backoffice(node_packages, base_url):
    """Runs backoffice.js for one scenario against the service under test; returns what the pages showed."""
    os.makedirs(SHOTS, exist_ok=True)

    async def run(scenario, **args):
        return await run_script(node_packages, "backoffice.js", scenario, base_url, SHOTS, json.dumps(args),
                                timeout=90, what=f"backoffice.js {scenario}")
    return run


async def operator(role):
    """A new operator of `role`; returns its username."""
    name = f"browser-{role}-{time.monotonic_ns()}"
    await provision_operator(name, PASSWORD, role)
    return name


@pytest.mark.gen_test(timeout=120)
async def test_finance_refunds_a_paid_order_in_full_through_the_dialog(api, backoffice):
    _, token, _, order = await api.paid_order(title="浏览器测试·退款")
    name = await operator("finance")
    page = await backoffice("refund", username=name, password=PASSWORD, orderId=order["order_id"])

    assert page["loginUrl"].endswith("/admin/login?next=%2Fadmin%2F")
    assert page["who"] == f"{name}（财务）" and "账号" not in page["nav"] and "退款" in page["nav"]
    assert page["home"]["abnormalCard"] == 1
    assert order["order_id"] in page["listed"] and "已支付" in page["listed"]
    assert f"q={order['order_id']}" in page["searchUrl"]  # the search swapped in place and kept its URL
    assert page["statusBefore"] == "已支付" and page["prefilled"] == "200.00"
    assert page["dialogUrl"].endswith(f"/admin/orders/{order['order_id']}")
    assert "¥200.00" in page["review"] and "家长临时有事，全额退款" in page["review"]
    assert "退款申请已提交给微信支付" in page["result"]
    assert page["statusAfter"] == "已退款" and page["refundButton"] == 0
    assert [r["status"] for r in page["refundRows"]] == ["SUCCESS"] and "¥200.00" in page["refundRows"][0]["text"]
    assert page["confirmPosts"] == 1, "the double click sent the confirmation twice"
    assert page["htmxRequests"] >= 4, "htmx did not drive the search and the dialog"
    paid = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
    refunds = list(await Refund.select().where(Refund.order == paid.id).aio_execute())
    assert len(refunds) == 1 and refunds[0].status == "SUCCESS" and refunds[0].amount_fen == 20000
    assert (await api.get_order(token, order["order_id"]))["status"] == "refunded"  # as the parent's app sees it


@pytest.mark.gen_test(timeout=120)
async def test_without_htmx_the_same_refund_works_as_plain_pages(api, backoffice):
    _, token, _, order = await api.paid_order(title="浏览器测试·无htmx")
    name = await operator("finance")
    page = await backoffice("plain", username=name, password=PASSWORD, orderId=order["order_id"])

    assert order["order_id"] in page["listed"] and page["prefilled"] == "200.00"
    assert "¥200.00" in page["review"] and "退款申请已提交给微信支付" in page["result"]
    assert page["statusAfter"] == "已退款" and page["htmxRequests"] == 0 and page["confirmPosts"] == 1
    assert (await api.get_order(token, order["order_id"]))["status"] == "refunded"


@pytest.mark.gen_test(timeout=120)
async def test_staff_sees_the_roster_and_no_refund(api, backoffice):
    sid, _, openid, order = await api.paid_order(title="浏览器测试·名单")
    name = await operator("staff")
    page = await backoffice("roster", username=name, password=PASSWORD, orderId=order["order_id"], sessionId=sid)

    assert page["who"] == f"{name}（前台）"
    assert not {"退款", "待退款", "支付通知", "审计日志", "账号"} & set(page["nav"])
    assert "浏览器测试·名单" in page["listed"]
    assert mask_value(openid) in page["rostered"] and "已确认" in page["rostered"] and page["editable"] == 1
    assert page["status"] == "已支付" and page["refundButton"] == 0
    assert page["direct"]["post"] == 403 and "当前角色无权" in page["direct"]["postText"]
    assert page["direct"]["get"] == 403 and "当前角色无权" in page["forbiddenPage"]
    assert await Refund.select().where(Refund.idem_key == "staff-try").aio_count() == 0
    assert await api.remaining(sid) == 4


@pytest.mark.gen_test(timeout=150)
async def test_the_front_desk_reschedules_a_booking_with_the_alternatives_of_a_full_session(api, backoffice):
    sid, token, _, order = await api.paid_order(title="浏览器测试·改期前")
    full = await api.schedule(capacity=1, title="浏览器测试·满员", starts_in_days=6000)
    near = await api.schedule(capacity=2, title="浏览器测试·改期后", starts_in_days=6000.1)
    holder, _ = await api.login()
    assert (await api.order(holder, full))[0] == 201
    name = await operator("staff")
    page = await backoffice("reschedule", username=name, password=PASSWORD, orderId=order["order_id"],
                            fullId=full, fullTitle="浏览器测试·满员")

    assert any("浏览器测试·改期后" in c for c in page["choices"]) and not page["offeredFull"]
    assert "名额已满" in page["refused"] and "浏览器测试·改期后" in page["alternatives"][0]
    assert "立即预约" in page["alternatives"][0]
    assert int(page["movedTo"]) == near and "已改到 浏览器测试·改期后" in page["result"]
    assert "浏览器测试·改期后" in page["story"]
    assert (await api.get_order(token, order["order_id"]))["course_schedule_id"] == near
    assert await api.remaining(sid) == 5 and await api.remaining(near) == 1


@pytest.mark.gen_test(timeout=150)
async def test_the_front_desk_marks_attendance_on_a_started_session(api, backoffice):
    from tests.api import eventually

    sid = await api.schedule(capacity=2, title="浏览器测试·到课", starts_in_days=1)
    parent, _ = await api.login()
    _, order = await api.order(parent, sid)
    assert (await api.prepay(parent, order["order_id"]))[0] == 200
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})

    async def paid():
        return (await api.get_order(parent, order["order_id"]))["status"] == "paid"

    await eventually(paid, what="the payment")
    await api.start_now(sid)
    name = await operator("staff")
    page = await backoffice("attendance", username=name, password=PASSWORD, orderId=order["order_id"],
                            sessionId=sid)

    assert "到课" in page["attended"] and "爽约" in page["noShow"]
    assert "近30天爽约率" in page["rate"]
    status, roster, _ = await api.call("GET", f"/api/v1/admin/schedules/{sid}/roster",
                                       token=await api.admin_token("staff"))
    assert [i["attendance"] for i in roster["items"] if i["order_id"] == order["order_id"]] == ["no_show"]
