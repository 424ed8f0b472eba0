"""The back office clicked through in headless Chromium (outside dev mode): finance refunds a paid order in full
through the dialog and sees it refunded (and again with htmx blocked, as plain pages); the front desk sees the roster
and no refund anywhere."""
import asyncio
import json
import os
import time

import pytest

from models import PaymentOrder, Refund
from services.accounts.operators import provision_operator
from models.personal_data import mask_value
from tests.harness import VAR

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
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
        # An asyncio subprocess, so the io_loop serving the app under test keeps running meanwhile.
        proc = await asyncio.create_subprocess_exec(
            "node", "backoffice.js", scenario, base_url, SHOTS, json.dumps(args),
            cwd=node_packages, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "CHROMIUM_PATH": CHROMIUM})
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"backoffice.js {scenario} did not finish in 90 s") from None
        assert proc.returncode == 0, f"backoffice.js {scenario} failed:\n{err.decode(errors='replace')}"
        return json.loads(out)
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
