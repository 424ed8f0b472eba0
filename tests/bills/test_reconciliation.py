"""Reconciling a day through the operators' API against the sandbox's bills: a matched day, an expired order paid at
the last moment whose notification was lost (mended), a foreign row (waits for a decision), a refund the service
holds as REJECTED that WeChat Pay made (mended and flagged), an amount that differs, a day with no trades, one the
ledger has and the bill lacks, one not ready, one whose file does not verify and one that does not add up (nothing
changes); reruns are idempotent."""
from __future__ import annotations

import datetime as dt

import pytest

from models import BillDiscrepancy, BillRun, PaymentAuditLog, PaymentTransaction, Refund
from services.formats import CN
from tests.api import eventually
from tests.bills.books import DAYS, at, by_ref, day_ago, order_row, pay_at, reconcile, today

REFUNDS = "/v3/refund/domestic/refunds"


@pytest.fixture
def overrides():
    """The reconciler's own queries stay out of the way (an interval longer than a test): the orders the ledger
    does not know are found by the bill alone."""
    return {"RECONCILE_INTERVAL_SECONDS": "600"}


@pytest.mark.gen_test(timeout=90)
async def test_a_matched_day(api):
    day = day_ago(DAYS["matched"])
    finance = await api.admin_token("finance")
    _, morning = await pay_at(api, at(day, "09:00:00"))
    _, late = await pay_at(api, at(day, "23:59:59"))
    assert morning["paid_at"] == at(day, "09:00:00") and late["paid_at"] == at(day, "23:59:59"), \
        "paid_at is WeChat Pay's success_time"
    await api.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    status, refund = await api.refund(finance, morning["order_id"], 10000)
    assert status == 201 and refund["status"] == "PROCESSING"
    await api.control("POST", f"/sandbox/refunds/{refund['out_refund_no']}/settle",
                      {"result": "SUCCESS", "success_time": at(day, "23:59:59")})

    async def settled():
        row = await Refund.select().where(Refund.out_refund_no == refund["out_refund_no"]).aio_get()
        return row.status == "SUCCESS"

    await eventually(settled, what="the refund notification")

    first = await reconcile(api, finance, day)
    assert first["bill_date"] == day.isoformat() and first["status"] == "matched", first
    assert first["discrepancies"] == []
    assert first["wechat"] == {"payments": 2, "payments_fen": 40000, "refunds": 1, "refunds_fen": 10000,
                               "fees_fen": 120 + 120 - 60}
    assert first["ledger"] == {"payments": 2, "payments_fen": 40000, "refunds": 1, "refunds_fen": 10000}
    assert dt.datetime.fromisoformat(first["reconciled_at"]).utcoffset() == dt.timedelta(hours=8)

    status, again, _ = await api.call("GET", f"/api/v1/admin/bills/{day}", token=finance)
    assert status == 200 and again == first
    listed = (await api.call("GET", "/api/v1/admin/bills", token=finance))[1]
    assert first in listed["items"]
    days = [item["bill_date"] for item in listed["items"]]
    assert days == sorted(days, reverse=True), "newest day first"

    second = await reconcile(api, finance, day)
    assert second["status"] == "matched" and second["reconciled_at"] >= first["reconciled_at"]
    assert await BillDiscrepancy.select().where(BillDiscrepancy.bill_date == day).aio_count() == 0
    status, body, _ = await api.call("GET", f"/api/v1/admin/bills/{day_ago(DAYS['matched'] + 30)}", token=finance)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND", "no reconciliation of that day yet"


@pytest.mark.gen_test(timeout=90)
@pytest.mark.parametrize("overrides", [{"RECONCILE_INTERVAL_SECONDS": "0.3", "SEAT_HOLD_SECONDS": "1",
                                        "ORDER_EXPIRE_SECONDS": "3"}], ids=["expiring"])
async def test_an_expired_order_paid_at_the_last_moment_is_mended_once(api):
    finance = await api.admin_token("finance")
    _, token, _, order, _ = await api.order_in_payment(capacity=1)
    no = order["order_id"]

    async def expired():
        return (await api.get_order(token, no))["status"] == "expired"

    await eventually(expired, timeout=30, what="the order to expire (closed at WeChat Pay first)")
    placed = await api.control("GET", f"/sandbox/orders/{no}")
    assert placed["trade_state"] == "CLOSED"
    last_second = (dt.datetime.fromisoformat(placed["time_expire"]) - dt.timedelta(seconds=1)).isoformat()
    await api.control("POST", f"/sandbox/orders/{no}/pay", {"notify": False, "success_time": last_second})
    day = dt.datetime.fromisoformat(last_second).astimezone(CN).date()

    first = await reconcile(api, finance, day)
    assert first["status"] == "discrepancies"
    [found] = by_ref(first, out_trade_no=no)
    assert (found["kind"], found["category"], found["resolution"]) == ("payment", "missing_in_ledger", "mended")
    assert (found["wechat_status"], found["ledger_status"]) == ("SUCCESS", "expired")
    assert found["wechat_amount_fen"] == 20000 and found["ledger_amount_fen"] is None
    assert found["resolved_by"] is None and found["transaction_id"]
    view = await api.get_order(token, no)
    assert view["status"] == "refund_required" and view["failure_reason"] == "paid_after_expired"
    assert view["paid_at"] == dt.datetime.fromisoformat(last_second).astimezone(CN).isoformat()
    assert view["transaction_id"] == found["transaction_id"]

    second = await reconcile(api, finance, day)
    [again] = by_ref(second, out_trade_no=no)
    assert again == found, "found again: the same id, still mended, nothing changed"
    row = await order_row(no)
    assert await PaymentTransaction.select().where(PaymentTransaction.order == row.id).aio_count() == 1
    transaction = await PaymentTransaction.select().where(PaymentTransaction.order == row.id).aio_get()
    assert transaction.source == "bill"
    for action in ("payment_without_seat", "bill_discrepancy_mended"):
        assert await PaymentAuditLog.select().where((PaymentAuditLog.order == row.id) & (
            PaymentAuditLog.action_type == action)).aio_count() == 1, action
    actors = {r.actor for r in await PaymentAuditLog.select().where(PaymentAuditLog.order == row.id).aio_execute()
              if r.action_type == "payment_without_seat"}
    assert actors == {"operator"}, "the mend names the operator who asked for the reconciliation"


@pytest.mark.gen_test(timeout=90)
async def test_a_foreign_row_waits_for_finance_and_its_decision_stays(api):
    day = day_ago(DAYS["foreign"])
    finance = await api.admin_token("finance")
    _, ours = await pay_at(api, at(day, "10:00:00"))
    row = (await api.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 12345,
                                                                    "time": "11:00:00"}))["row"]
    refund_row = (await api.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "refund", "amount": 500,
                                                                           "time": "12:00:00"}))["row"]

    first = await reconcile(api, finance, day)
    assert first["status"] == "discrepancies"
    assert by_ref(first, out_trade_no=ours["order_id"]) == [], "our own payment matches"
    [foreign] = by_ref(first, out_trade_no=row["out_trade_no"])
    assert (foreign["kind"], foreign["category"], foreign["resolution"]) == ("payment", "missing_in_ledger", None)
    assert (foreign["wechat_amount_fen"], foreign["ledger_amount_fen"], foreign["ledger_status"]) == (12345, None, None)
    [foreign_refund] = by_ref(first, out_refund_no=refund_row["out_refund_no"])
    assert (foreign_refund["kind"], foreign_refund["category"]) == ("refund", "missing_in_ledger")
    assert foreign_refund["wechat_status"] == "SUCCESS" and foreign_refund["wechat_amount_fen"] == 500
    assert first["wechat"]["payments"] == 2 and first["wechat"]["payments_fen"] == 20000 + 12345
    assert first["ledger"]["payments"] == 1 and first["ledger"]["payments_fen"] == 20000

    path = f"/api/v1/admin/bills/discrepancies/{foreign['id']}"
    for bad in ({"resolution": "mended", "note": "x"}, {"resolution": "accepted"}, {"resolution": "accepted",
                                                                                   "note": " "}, {}):
        status, body, _ = await api.call("PATCH", path, bad, token=finance)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", bad
    status, body, _ = await api.call("PATCH", "/api/v1/admin/bills/discrepancies/987654321", {
        "resolution": "accepted", "note": "x"}, token=finance)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, decided, _ = await api.call("PATCH", path, {"resolution": "accepted", "note": "微信支付确认：他店交易"},
                                        token=finance)
    assert status == 200 and decided["resolution"] == "accepted" and decided["note"] == "微信支付确认：他店交易"
    assert decided["resolved_by"]["username"].startswith("op-finance-") and decided["id"] == foreign["id"]

    second = await reconcile(api, finance, day)
    [again] = by_ref(second, out_trade_no=row["out_trade_no"])
    assert again == decided, "found again: the same id and decision"
    [audit_row] = list(await PaymentAuditLog.select().where(
        PaymentAuditLog.action_type == "bill_discrepancy_accepted").order_by(PaymentAuditLog.id.desc())
        .limit(1).aio_execute())
    assert audit_row.actor == "operator" and audit_row.operator_id and audit_row.ip_address == "127.0.0.1"
    assert row["out_trade_no"] in audit_row.action_detail and audit_row.new_status == "accepted"
    status, mended_once, _ = await api.call("PATCH", path, {"resolution": "written_off", "note": "核销"},
                                            token=finance)
    assert status == 200 and mended_once["resolution"] == "written_off", "a decision may be changed (audited)"


@pytest.mark.gen_test(timeout=90)
async def test_a_rejected_refund_that_wechat_pay_made_is_mended_counted_and_flagged(api):
    day = day_ago(DAYS["rejected_refund"])
    finance = await api.admin_token("finance")
    _, order = await pay_at(api, at(day, "10:00:00"))
    await api.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    await api.control("POST", "/sandbox/faults", {"path_prefix": REFUNDS, "method": "POST", "status": 400,
                                                  "code": "INVALID_REQUEST", "message": "退款请求失败",
                                                  "handled": True, "count": 1})
    status, body = await api.refund(finance, order["order_id"], 20000)
    assert status == 409 and body["error"]["code"] == "REFUND_REJECTED"
    [refund] = (await api.call("GET", f"/api/v1/admin/orders/{order['order_id']}", token=finance))[1]["refunds"]
    assert refund["status"] == "REJECTED"
    await api.control("POST", "/sandbox/notifications/next", {"action": "drop", "count": 1})
    await api.control("POST", f"/sandbox/refunds/{refund['out_refund_no']}/settle",
                      {"result": "SUCCESS", "success_time": at(day, "20:00:00")})

    result = await reconcile(api, finance, day)
    [found] = by_ref(result, out_refund_no=refund["out_refund_no"])
    assert (found["kind"], found["category"], found["resolution"]) == ("refund", "missing_in_ledger", "mended")
    assert (found["wechat_status"], found["ledger_status"], found["wechat_amount_fen"]) == ("SUCCESS", "REJECTED",
                                                                                            20000)
    assert result["ledger"]["refunds"] == 1 and result["ledger"]["refunds_fen"] == 20000, "the ledger after mending"
    story = (await api.call("GET", f"/api/v1/admin/orders/{order['order_id']}", token=finance))[1]
    assert story["status"] == "refunded" and story["refunded_fen"] == 20000
    assert story["refunds"][0]["status"] == "SUCCESS"
    assert any(t["action_type"] == "refund_success_after_rejected" for t in story["timeline"])
    row = await Refund.select().where(Refund.out_refund_no == refund["out_refund_no"]).aio_get()
    assert row.success_after == "REJECTED"
    assert row.succeeded_at == dt.datetime.fromisoformat(at(day, "20:00:00")).astimezone(dt.timezone.utc).replace(
        tzinfo=None)
    again = await reconcile(api, finance, day)
    assert by_ref(again, out_refund_no=refund["out_refund_no"]) == [found]
    assert await PaymentAuditLog.select().where((PaymentAuditLog.refund == row.id) & (
        PaymentAuditLog.action_type == "refund_success")).aio_count() == 1


@pytest.mark.gen_test(timeout=90)
async def test_a_rejected_refund_on_the_bill_that_the_query_does_not_confirm_waits_for_finance(api):
    day = day_ago(DAYS["rejected_unconfirmed"])
    finance = await api.admin_token("finance")
    _, order = await pay_at(api, at(day, "10:00:00"))
    await api.control("POST", "/sandbox/faults", {"path_prefix": REFUNDS, "method": "POST", "status": 400,
                                                  "code": "INVALID_REQUEST", "message": "退款请求失败", "count": 1})
    status, body = await api.refund(finance, order["order_id"], 20000)
    assert status == 409 and body["error"]["code"] == "REFUND_REJECTED"  # and WeChat Pay made nothing
    [refund] = (await api.call("GET", f"/api/v1/admin/orders/{order['order_id']}", token=finance))[1]["refunds"]
    await api.control("POST", f"/sandbox/bills/{day}/rows", {
        "kind": "refund", "amount": 20000, "time": "20:00:00", "out_trade_no": order["order_id"],
        "out_refund_no": refund["out_refund_no"]})

    result = await reconcile(api, finance, day)
    [found] = by_ref(result, out_refund_no=refund["out_refund_no"])
    assert (found["kind"], found["category"], found["ledger_status"]) == ("refund", "missing_in_ledger", "REJECTED")
    assert found["resolution"] is None, "WeChat Pay's query does not know the refund: it waits for a decision"
    row = await Refund.select().where(Refund.out_refund_no == refund["out_refund_no"]).aio_get()
    assert (row.status, row.success_after) == ("REJECTED", None)
    story = (await api.call("GET", f"/api/v1/admin/orders/{order['order_id']}", token=finance))[1]
    assert story["status"] == "paid" and story["refunded_fen"] == 0, "no money is counted back on the bill's word"
    assert result["ledger"]["refunds"] == 0


@pytest.mark.gen_test(timeout=90)
async def test_an_amount_that_differs(api):
    day = day_ago(DAYS["amount_mismatch"])
    finance = await api.admin_token("finance")
    _, order = await pay_at(api, at(day, "10:00:00"))
    await api.control("POST", f"/sandbox/bills/{day}/omit", {"out_trade_no": order["order_id"]})
    await api.control("POST", f"/sandbox/bills/{day}/rows", {
        "kind": "payment", "amount": 19900, "time": "10:00:00", "out_trade_no": order["order_id"],
        "transaction_id": order["transaction_id"]})
    result = await reconcile(api, finance, day)
    [found] = by_ref(result, out_trade_no=order["order_id"])
    assert (found["category"], found["wechat_amount_fen"], found["ledger_amount_fen"]) == ("amount_mismatch", 19900,
                                                                                           20000)
    assert (found["ledger_status"], found["resolution"]) == ("paid", None)


@pytest.mark.gen_test(timeout=90)
async def test_a_day_with_no_trades_and_one_the_bill_lacks(api):
    finance = await api.admin_token("admin")
    empty = day_ago(DAYS["no_trades"])
    result = await reconcile(api, finance, empty)
    assert result["status"] == "no_trades" and result["discrepancies"] == []
    assert result["wechat"] == {"payments": 0, "payments_fen": 0, "refunds": 0, "refunds_fen": 0, "fees_fen": 0}
    assert result["ledger"] == {"payments": 0, "payments_fen": 0, "refunds": 0, "refunds_fen": 0}

    day = day_ago(DAYS["missing_at_wechat"])
    token, order = await pay_at(api, at(day, "08:00:00"))
    await api.control("POST", f"/sandbox/bills/{day}/omit", {"out_trade_no": order["order_id"]})
    result = await reconcile(api, finance, day)  # WeChat Pay: NO_STATEMENT_EXIST, but the ledger has a payment
    assert result["status"] == "discrepancies" and result["wechat"]["payments"] == 0
    [found] = result["discrepancies"]
    assert (found["category"], found["out_trade_no"], found["ledger_status"]) == ("missing_at_wechat",
                                                                                  order["order_id"], "paid")
    assert (found["wechat_status"], found["wechat_amount_fen"], found["ledger_amount_fen"]) == (None, None, 20000)
    assert (await api.get_order(token, order["order_id"]))["status"] == "paid", "nothing was undone"


@pytest.mark.gen_test(timeout=90)
async def test_a_bill_not_ready_changes_nothing_until_it_is(api):
    day = day_ago(DAYS["not_ready"])
    finance = await api.admin_token("finance")
    token, order = await pay_at(api, at(day, "10:00:00"), notify=False)  # the ledger does not know it yet
    await api.control("POST", f"/sandbox/bills/{day}", {"ready": False})
    result = await reconcile(api, finance, day)
    assert result["status"] == "not_ready" and result["discrepancies"] == []
    assert await BillDiscrepancy.select().where(BillDiscrepancy.bill_date == day).aio_count() == 0
    await api.control("POST", f"/sandbox/bills/{day}", {"ready": True})
    result = await reconcile(api, finance, day)
    assert result["status"] == "discrepancies"
    [found] = by_ref(result, out_trade_no=order["order_id"])
    assert found["resolution"] == "mended" and found["ledger_status"] == "pending"
    assert (await api.get_order(token, order["order_id"]))["status"] == "paid", "a pending order gets its seat"


@pytest.mark.gen_test(timeout=90)
@pytest.mark.parametrize("control,which", [("corrupt_download", "corrupt"), ("unbalanced", "unbalanced")])
async def test_a_bill_that_does_not_verify_or_add_up_fails_and_changes_nothing(api, control, which):
    day = day_ago(DAYS[which])
    finance = await api.admin_token("finance")
    token, order = await pay_at(api, at(day, "10:00:00"), notify=False)
    await api.control("POST", f"/sandbox/bills/{day}", {control: True})
    result = await reconcile(api, finance, day)
    assert result["status"] == "failed" and result["discrepancies"] == []
    assert result["wechat"] == {"payments": 0, "payments_fen": 0, "refunds": 0, "refunds_fen": 0, "fees_fen": 0}
    run = await BillRun.select().where(BillRun.bill_date == day).order_by(BillRun.id.desc()).aio_first()
    assert ("SHA1" if control == "corrupt_download" else "add up") in run.error
    assert await BillDiscrepancy.select().where(BillDiscrepancy.bill_date == day).aio_count() == 0
    assert (await api.get_order(token, order["order_id"]))["status"] == "pending", "nothing was mended"


@pytest.mark.gen_test(timeout=90)
async def test_a_bill_is_read_by_its_header_names_whatever_the_order_of_its_columns(api):
    day = day_ago(DAYS["reordered"])
    finance = await api.admin_token("finance")
    _, first = await pay_at(api, at(day, "09:00:00"))
    await pay_at(api, at(day, "15:00:00"))
    await api.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    status, refund = await api.refund(finance, first["order_id"], 4321)
    assert status == 201
    await api.control("POST", f"/sandbox/refunds/{refund['out_refund_no']}/settle",
                      {"result": "SUCCESS", "success_time": at(day, "20:00:00")})

    async def settled():
        return (await Refund.select().where(Refund.out_refund_no == refund["out_refund_no"]).aio_get()).status \
            == "SUCCESS"

    await eventually(settled, what="the refund notification")
    await api.control("POST", f"/sandbox/bills/{day}", {"reordered": True})
    bill = await api.control("GET", f"/sandbox/bills/{day}")
    assert bill["columns"][0] == "费率备注" and bill["summary_columns"][0] == "申请退款总金额", \
        "the file's columns (and its summary's) are not where they usually are"

    result = await reconcile(api, finance, day)
    assert result["status"] == "matched" and result["discrepancies"] == [], result
    assert result["wechat"] == {"payments": 2, "payments_fen": 40000, "refunds": 1, "refunds_fen": 4321,
                                "fees_fen": 120 + 120 - 26}
    assert result["ledger"] == {"payments": 2, "payments_fen": 40000, "refunds": 1, "refunds_fen": 4321}


@pytest.mark.gen_test(timeout=60)
async def test_bill_days_outside_the_last_90_days_are_refused(api):
    finance = await api.admin_token("finance")
    for bad in ("2026-13-01", "yesterday", "2026-2-1", (today() + dt.timedelta(days=1)).isoformat(),
                day_ago(91).isoformat(), "0000-01-01", "%00"):
        status, body, _ = await api.call("POST", f"/api/v1/admin/bills/{bad}/reconcile", token=finance)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", bad
        status, body, _ = await api.call("GET", f"/api/v1/admin/bills/{bad}", token=finance)
        expected = (404, "NOT_FOUND") if bad == day_ago(91).isoformat() else (400, "INVALID_REQUEST")
        assert (status, body["error"]["code"]) == expected, f"{bad}: an older day may be read, not reconciled"
    staff = await api.admin_token("staff")
    for method, path in (("POST", f"/api/v1/admin/bills/{today()}/reconcile"), ("GET", "/api/v1/admin/bills"),
                         ("GET", f"/api/v1/admin/bills/{today()}"),
                         ("PATCH", "/api/v1/admin/bills/discrepancies/1")):
        status, body, _ = await api.call(method, path, {} if method == "PATCH" else None, token=staff)
        assert status == 403 and body["error"]["code"] == "FORBIDDEN", path
