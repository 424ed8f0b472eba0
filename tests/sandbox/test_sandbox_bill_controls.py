"""The control API of bills (a day's bill, its controls, foreign rows), payments and refunds at a chosen
success_time, reset, and the bill page of the dashboard with its buttons."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.harness import http_json
from tests.sandbox.bills import BEIJING, at, day_ago, paid_order, today
from tests.sandbox.pages import form, page, submit
from tests.sandbox.wx import jsapi_order, new_trade_no, signed_call, with_client


def moment(**delta):
    """An RFC 3339 time, now plus `delta`, in Beijing time."""
    return (dt.datetime.now(BEIJING) + dt.timedelta(**delta)).replace(microsecond=0).isoformat()


def test_pay_at_a_chosen_success_time(sandbox):
    no = new_trade_no("P")
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, "http://127.0.0.1:9/n")))
    for bad in (moment(minutes=5), "yesterday", 12):
        status, body, _ = http_json("POST", f"{sandbox.url}/sandbox/orders/{no}/pay", {"success_time": bad})
        assert status == 400 and body["code"] == "INVALID_REQUEST", bad
    chosen = at(day_ago(1), "23:59:59")
    paid = sandbox.control("POST", f"/sandbox/orders/{no}/pay", {"notify": False, "success_time": chosen})["order"]
    assert paid["success_time"] == chosen and paid["transaction_id"][5:13] == day_ago(1).strftime("%Y%m%d")
    (status, text), _ = with_client(sandbox, "pubkey")(lambda c: c.query(out_trade_no=no))
    assert json.loads(text)["success_time"] == chosen


def test_an_expired_order_paid_before_its_time_expire(sandbox):
    expired, closed = new_trade_no("E"), new_trade_no("C")
    expire_at = moment(minutes=-1)
    last_second = (dt.datetime.fromisoformat(expire_at) - dt.timedelta(seconds=1)).isoformat()
    for no, expire in ((expired, expire_at), (closed, moment(minutes=10))):
        with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(
            sandbox, no, "http://127.0.0.1:9/n", time_expire=expire)))
    assert sandbox.control("GET", f"/sandbox/orders/{expired}")["trade_state"] == "CLOSED"
    status, body, _ = http_json("POST", f"{sandbox.url}/sandbox/orders/{expired}/pay", {"success_time": expire_at})
    assert status == 409 and body["code"] == "ORDER_NOT_PAYABLE", "at its time_expire it can no longer be paid"
    paid = sandbox.control("POST", f"/sandbox/orders/{expired}/pay", {"notify": False, "success_time": last_second})
    assert paid["order"]["trade_state"] == "SUCCESS" and paid["order"]["success_time"] == last_second
    assert paid["order"]["close_reason"] is None

    assert signed_call(sandbox, "POST", f"/v3/pay/transactions/out-trade-no/{closed}/close",
                       {"mchid": sandbox.env["WECHATPAY_MCHID"]}).status_code == 204
    status, _, _ = http_json("POST", f"{sandbox.url}/sandbox/orders/{closed}/pay", {"success_time": moment(seconds=-1)})
    assert status == 409, "the merchant closed it: no payment went through"


def test_refund_settled_at_a_chosen_time(sandbox):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    day = day_ago(70)
    no = paid_order(sandbox, at(day, "10:00:00"))
    out_refund_no = "RF" + no
    with_client(sandbox, "pubkey")(lambda c: c.refund(
        out_refund_no=out_refund_no, amount={"refund": 100, "total": 20000, "currency": "CNY"}, out_trade_no=no))
    for body in ({"result": "SUCCESS", "success_time": at(day, "09:59:59")},  # before the payment
                 {"result": "SUCCESS", "success_time": moment(minutes=5)},
                 {"result": "CLOSED", "success_time": at(day, "11:00:00")}):
        status, error, _ = http_json("POST", f"{sandbox.url}/sandbox/refunds/{out_refund_no}/settle", body)
        assert status == 400, body
    settled = sandbox.control("POST", f"/sandbox/refunds/{out_refund_no}/settle",
                              {"result": "SUCCESS", "success_time": at(day, "10:30:00")})
    assert settled["status"] == "SUCCESS" and settled["success_time"] == at(day, "10:30:00")


def test_a_day_through_the_control_api(sandbox):
    day = day_ago(71)
    assert sandbox.control("GET", f"/sandbox/bills/{day}")["status"] == "no_statement"
    no = paid_order(sandbox, at(day, "16:00:00"), total=999)
    view = sandbox.control("GET", f"/sandbox/bills/{day}")
    assert view["status"] == "ready" and view["controls"] == {"ready": True, "corrupt_download": False,
                                                              "unbalanced": False, "reordered": False}
    assert [r["商户订单号"] for r in view["rows"]] == [no] and view["rows"][0]["手续费"] == "0.06000"
    assert view["summary"]["应结订单总金额"] == 999 and view["text"].startswith("\ufeff交易时间,")
    answer = signed_call(sandbox, "GET", f"/v3/bill/tradebill?bill_date={day}").json()
    assert answer["hash_value"] == view["sha1"] == view["served_sha1"]
    changed = sandbox.control("POST", f"/sandbox/bills/{day}", {"ready": False, "corrupt_download": True})
    assert changed["controls"] == {"ready": False, "corrupt_download": True, "unbalanced": False, "reordered": False}
    view = sandbox.control("GET", f"/sandbox/bills/{day}")
    assert view["status"] == "not_ready" and view["served_sha1"] != view["sha1"]
    assert sandbox.control("GET", f"/sandbox/bills/{day}?bill_type=REFUND")["rows"] == []


@pytest.mark.parametrize("path, body", [
    ("/sandbox/bills/2024-02-30", {"ready": False}), ("/sandbox/bills/{day}", {"ready": "no"}),
    ("/sandbox/bills/{day}", {"colour": True}), ("/sandbox/bills/{day}/rows", {"kind": "gift", "amount": 1}),
    ("/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 0}),
    ("/sandbox/bills/{day}/rows", {"kind": "payment", "amount": "100"}),
    ("/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 100, "time": "25:00:00"}),
    ("/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 100, "out_trade_no": "no spaces"}),
    ("/sandbox/bills/{tomorrow}/rows", {"kind": "payment", "amount": 100}),
])
def test_bill_controls_refuse_bad_input(sandbox, path, body):
    url = sandbox.url + path.format(day=day_ago(72), tomorrow=day_ago(-1))
    status, error, _ = http_json("POST", url, body)
    assert status == 400 and error["code"] == "INVALID_REQUEST", error
    assert sandbox.control("GET", f"/sandbox/bills/{day_ago(72)}")["foreign_rows"] == []


def test_a_foreign_row_today_cannot_be_in_the_future(sandbox):
    later = (dt.datetime.now(BEIJING) + dt.timedelta(minutes=2)).strftime("%H:%M:%S")
    if later < "00:02:00":
        later = "23:59:59"  # two minutes from now is tomorrow: the last second of today is still ahead
    status, error, _ = http_json("POST", f"{sandbox.url}/sandbox/bills/{today()}/rows",
                                 {"kind": "payment", "amount": 100, "time": later})
    assert status == 400 and error["detail"] == {"field": "time"}


def test_rows_left_off_and_an_amount_changed(sandbox):
    """Recipes of the reconciliation's categories: a row WeChat Pay lacks (omit), and a row whose amount differs
    (omit it, then a foreign row with the same numbers and another amount)."""
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    day = day_ago(75)
    lost, changed = paid_order(sandbox, at(day, "09:00:00")), paid_order(sandbox, at(day, "10:00:00"))
    out_refund_no = "RF" + changed
    with_client(sandbox, "pubkey")(lambda c: c.refund(
        out_refund_no=out_refund_no, amount={"refund": 100, "total": 20000, "currency": "CNY"}, out_trade_no=changed))
    sandbox.control("POST", f"/sandbox/refunds/{out_refund_no}/settle",
                    {"result": "SUCCESS", "success_time": at(day, "11:00:00")})
    transaction_id = sandbox.control("GET", f"/sandbox/orders/{changed}")["transaction_id"]
    assert sandbox.control("POST", f"/sandbox/bills/{day}/omit", {"out_trade_no": lost})["omitted"] == {
        "payment": [lost]}
    sandbox.control("POST", f"/sandbox/bills/{day}/omit", {"out_trade_no": changed})
    omitted = sandbox.control("POST", f"/sandbox/bills/{day}/omit", {"out_refund_no": out_refund_no})["omitted"]
    assert omitted == {"payment": [lost, changed], "refund": [out_refund_no]}
    sandbox.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 19900, "time": "10:00:00",
                                                           "out_trade_no": changed, "transaction_id": transaction_id})
    view = sandbox.control("GET", f"/sandbox/bills/{day}")
    assert [(r["商户订单号"], r["微信订单号"], r["应结订单金额"]) for r in view["rows"]] == [
        (changed, transaction_id, "199.00")]
    for bad in ({}, {"out_trade_no": lost, "out_refund_no": "x"}, {"out_trade_no": 7}, {"transaction_id": "1"}):
        status, _, _ = http_json("POST", f"{sandbox.url}/sandbox/bills/{day}/omit", bad)
        assert status == 400, bad
    sandbox.control("POST", "/sandbox/reset")
    view = sandbox.control("GET", f"/sandbox/bills/{day}")
    assert [r["商户订单号"] for r in view["rows"]] == [lost, changed, changed] and view["omitted"] == {}


def test_reset_forgets_controls_and_foreign_rows(sandbox):
    day = day_ago(73)
    sandbox.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 100})
    sandbox.control("POST", f"/sandbox/bills/{day}", {"ready": False, "unbalanced": True})
    assert signed_call(sandbox, "GET", f"/v3/bill/tradebill?bill_date={day}").json()["code"] == "STATEMENT_CREATING"
    sandbox.control("POST", "/sandbox/reset")
    view = sandbox.control("GET", f"/sandbox/bills/{day}")
    assert view["foreign_rows"] == [] and view["status"] == "no_statement" and view["controls"]["ready"]
    assert signed_call(sandbox, "GET", f"/v3/bill/tradebill?bill_date={day}").json()["code"] == "NO_STATEMENT_EXIST"


def test_bill_page_and_its_buttons(sandbox):
    day = day_ago(74)
    back = f"/sandbox/bill?date={day}"
    no = paid_order(sandbox, at(day, "09:30:00"), description='<script>alert("x")</script> 私教课')
    dashboard = page(sandbox, "/sandbox/").text
    assert f'href="/sandbox/bill?date={today()}"' in dashboard and 'action="/sandbox/bill"' in dashboard
    html = page(sandbox, back).text
    assert no in html and "<script>alert" not in html and "&lt;script&gt;" in html and "可下载" in html

    for label, control, value in (("设为未就绪 Not ready", "ready", False), ("损坏下载文件 Corrupt download",
                                                                        "corrupt_download", True),
                                  ("汇总不平 Unbalance sums", "unbalanced", True)):
        answer = submit(sandbox, form(page(sandbox, back).text, f"/sandbox/bills/{day}", label))
        assert answer.status_code == 303 and answer.headers["Location"] == back
        assert sandbox.control("GET", f"/sandbox/bills/{day}")["controls"][control] is value
    html = page(sandbox, back).text
    assert "账单生成中" in html and "不一致 mismatch" in html
    answer = submit(sandbox, form(html, f"/sandbox/bills/{day}", "设为就绪 Ready"))
    assert answer.status_code == 303 and sandbox.control("GET", f"/sandbox/bills/{day}")["status"] == "ready"

    add = form(page(sandbox, back).text, f"/sandbox/bills/{day}/rows")
    answer = submit(sandbox, {**add, "fields": {**add["fields"], "kind": "refund", "amount": "4321",
                                                "time": "18:00:00", "out_trade_no": no}})
    assert answer.status_code == 303 and answer.headers["Location"] == back
    [row] = sandbox.control("GET", f"/sandbox/bills/{day}")["foreign_rows"]
    assert (row["kind"], row["amount"], row["out_trade_no"], row["time"]) == ("refund", 4321, no, at(day, "18:00:00"))
    assert "-0.26000" in page(sandbox, back).text, "the refund's fee, given back"
    answer = submit(sandbox, form(page(sandbox, back).text, f"/sandbox/bills/{day}/omit", "漏单 Omit"))
    assert answer.status_code == 303 and sandbox.control("GET", f"/sandbox/bills/{day}")["omitted"] == {
        "payment": [no]}
    assert "漏掉的行" in page(sandbox, back).text
    for amount in ("lots", "9" * 5000):
        refused = submit(sandbox, {**add, "fields": {**add["fields"], "kind": "payment", "amount": amount}})
        assert refused.status_code == 400 and "操作失败" in refused.text
    assert page(sandbox, "/sandbox/bill?date=2024-02-30").status_code == 400
