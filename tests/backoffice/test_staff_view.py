"""Staff read orders but not the money or the audit's who and where (services/accounts/roles.py): through the API and
the pages, a staff member looks for amounts, refunds, operator names and parents' IPs and finds none; finance, on
the same order, sees each of them (the control: the test would see them if they leaked)."""
import pytest

from tests.api import eventually
from tests.backoffice.test_backoffice_pages import api_login, logged_in, operator

PARENT_IP, OPERATOR_IP = "198.51.100.23", "203.0.113.61"
MONEY = ("amount_fen", "amount", "refunded_fen", "refunds")


@pytest.fixture
def overrides():
    return {"DEV_MODE": "0", "TRUSTED_PROXIES": "127.0.0.1/32"}


async def _refunded_story(api):
    """A paid order the parent made from PARENT_IP, partly refunded (37.00) by a finance operator at OPERATOR_IP."""
    sid = await api.schedule()
    token, _ = await api.login()
    status, order, _ = await api.call("POST", "/api/v1/payment/orders/create", {"course_schedule_id": sid},
                                      token=token, headers={"X-Forwarded-For": PARENT_IP})
    assert status == 201, order
    assert (await api.prepay(token, order["order_id"]))[0] == 200
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})

    async def paid():
        return (await api.get_order(token, order["order_id"]))["status"] == "paid"

    await eventually(paid, what="the payment")
    finance_name = await operator("finance")
    finance = await api_login(api, finance_name)
    status, refund, _ = await api.call("POST", f"/api/v1/admin/orders/{order['order_id']}/refunds",
                                    {"amount_fen": 3700, "reason": "家长申请部分退款"}, token=finance,
                                    headers={"Idempotency-Key": f"staff-view-{order['order_id']}",
                                             "X-Forwarded-For": OPERATOR_IP})
    assert status == 201, refund
    return order["order_id"], finance, finance_name, refund["out_refund_no"]


@pytest.mark.gen_test(timeout=120)
async def test_staff_see_no_money_operator_names_or_ips_through_the_api(api):
    order_id, finance, finance_name, refund_no = await _refunded_story(api)
    staff = await api.admin_token("staff")
    full = (await api.call("GET", f"/api/v1/admin/orders/{order_id}", token=finance))[1]
    seen = (await api.call("GET", f"/api/v1/admin/orders/{order_id}", token=staff))[1]
    # The control: finance sees each thing staff must not.
    assert full["amount_fen"] == 20000 and full["refunds"][0]["operator"]["username"] == finance_name
    assert PARENT_IP in {e["ip_address"] for e in full["timeline"]} and OPERATOR_IP in {
        e["ip_address"] for e in full["timeline"]}
    assert f"operator:{finance_name}" in {e["actor"] for e in full["timeline"]}
    assert full["transaction"]["total_fee"] == 20000
    # Staff: every field there, the money and the audit's who and where withheld.
    assert set(seen) == set(full) and all(seen[k] is None for k in MONEY)
    assert seen["transaction"]["total_fee"] is None and seen["transaction"]["payer_total"] is None
    assert seen["status"] == full["status"] and seen["user"] == full["user"] and seen["schedule"] == full["schedule"]
    assert [e["action_type"] for e in seen["timeline"]] == [e["action_type"] for e in full["timeline"]]
    assert all(e["ip_address"] is None and e["detail"] is None and ":" not in e["actor"] for e in seen["timeline"])
    text = str(seen)
    for leak in (finance_name, PARENT_IP, OPERATOR_IP, refund_no, "3700", "37.00"):
        assert leak not in text, leak
    listed = (await api.call("GET", f"/api/v1/admin/orders?q={order_id}", token=staff))[1]["items"]
    assert [o["order_id"] for o in listed] == [order_id] and all(listed[0][k] is None for k in MONEY)
    by_finance = (await api.call("GET", f"/api/v1/admin/orders?q={order_id}", token=finance))[1]["items"]
    assert by_finance[0]["refunds"][0]["out_refund_no"] == refund_no


@pytest.mark.gen_test(timeout=120)
async def test_staff_see_no_money_operator_names_or_ips_on_the_pages(api, base_url):
    order_id, _, finance_name, refund_no = await _refunded_story(api)
    leaks = (finance_name, PARENT_IP, OPERATOR_IP, refund_no, "¥200.00", "¥37.00", 'id="refunded"', "<th>IP</th>")
    finance, _ = await logged_in(base_url, "finance")
    staff, _ = await logged_in(base_url, "staff")
    for path in (f"/admin/orders/{order_id}", f"/admin/orders?q={order_id}"):
        shown = (await finance.get(path)).text
        page = await staff.get(path)
        assert page.status == 200 and order_id in page.text
        for leak in leaks:
            if "?" not in path:  # the story page shows all of it to finance
                assert leak in shown, f"the control: finance sees {leak} on {path}"
            assert leak not in page.text, f"staff sees {leak} on {path}"
    listed = (await finance.get(f"/admin/orders?q={order_id}")).text
    assert "¥200.00" in listed and "<th>已退款</th>" in listed
    assert "<th>已退款</th>" not in (await staff.get(f"/admin/orders?q={order_id}")).text
