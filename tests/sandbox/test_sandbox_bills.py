"""Trade bills (and the fund-flow bill) held against wechatpayv3's own trade_bill / download_bill (its async client), in both key modes:
the signed answer, the gzip file hashing to it, its rows by header name adding up, and the refusals."""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
from decimal import Decimal

import httpx
import pytest

from tests.sandbox.bills import (
    ALL_COLUMNS, SUMMARY_COLUMNS, adds_up, at, day_ago, paid_order, parse_bill, refunded, today,
)
from tests.sandbox.wx import signed_call, with_client

MODES = ["pubkey", "cert"]
# Each test keeps to days of its own (the sandbox of this session is shared): days ago, per key mode.
DAYS = {"paid": {"pubkey": 40, "cert": 44}, "empty": {"pubkey": 50, "cert": 51},
        "creating": {"pubkey": 52, "cert": 53}, "foreign": {"pubkey": 62, "cert": 63}}


@pytest.fixture(params=MODES)
def mode(request):
    """The client's platform-key mode: public key, or certificates downloaded from /v3/certificates."""
    return request.param


def fetch(sandbox, mode, cert_dir, day, bill_type="ALL"):
    """trade_bill then download_bill with wechatpayv3 → (status, answer JSON, unzipped file bytes or None)."""
    async def work(client):
        status, text = await client.trade_bill(bill_date=day.isoformat(), bill_type=bill_type, tar_type="GZIP")
        if status != 200:
            return status, json.loads(text), None
        answer = json.loads(text)
        got, content = await client.download_bill(answer["download_url"])
        assert got == 200 and isinstance(content, bytes)
        return status, answer, gzip.decompress(content)

    result, _ = with_client(sandbox, mode, cert_dir)(work)
    return result


def test_day_with_payments_and_refunds(sandbox, mode, tmp_path):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    day = day_ago(DAYS["paid"][mode])
    next_day = day_ago(DAYS["paid"][mode] - 1)
    morning = paid_order(sandbox, at(day, "09:00:00"), description="体验课, 周六")  # a comma in the name
    late = paid_order(sandbox, at(day, "23:59:59"), total=12345)
    after_midnight = paid_order(sandbox, at(next_day, "00:00:00"))
    refund_same_day = refunded(sandbox, morning, 10000, 20000, at(day, "23:59:59"))
    refund_next_day = refunded(sandbox, late, 12345, 12345, at(next_day, "00:00:01"))

    status, answer, data = fetch(sandbox, mode, tmp_path / "certs", day)
    assert status == 200 and answer["hash_type"] == "SHA1"
    assert answer["download_url"].startswith(sandbox.url + "/v3/billdownload/file?token=")
    assert hashlib.sha1(data).hexdigest() == answer["hash_value"], "the unzipped bill hashes to the signed value"
    header, rows, summary = parse_bill(data)
    assert header == ALL_COLUMNS
    assert [(r["商户订单号"], r["交易状态"]) for r in rows] == [(morning, "SUCCESS"), (late, "SUCCESS"),
                                                             (morning, "REFUND")]
    pay, late_pay, refund = rows
    order = sandbox.control("GET", f"/sandbox/orders/{morning}")
    assert pay["交易时间"] == f"{day} 09:00:00" and pay["微信订单号"] == order["transaction_id"]
    assert pay["公众账号ID"] == sandbox.env["WECHAT_APPID"] and pay["商户号"] == sandbox.env["WECHATPAY_MCHID"]
    assert pay["用户标识"] == order["paid_openid"] and pay["交易类型"] == "JSAPI" and pay["货币种类"] == "CNY"
    assert (pay["应结订单金额"], pay["订单金额"], pay["手续费"], pay["费率"]) == ("200.00", "200.00", "1.20000", "0.60%")
    assert pay["商品名称"] == "体验课, 周六" and pay["退款金额"] == "0.00" and pay["微信退款单号"] == "0"
    assert (late_pay["交易时间"], late_pay["应结订单金额"], late_pay["手续费"]) == (f"{day} 23:59:59", "123.45", "0.74000")
    refund_view = sandbox.control("GET", f"/sandbox/refunds/{refund_same_day}")
    assert refund["交易时间"] == f"{day} 23:59:59" and refund["商户退款单号"] == refund_same_day
    assert refund["微信退款单号"] == refund_view["refund_id"] and refund["微信订单号"] == order["transaction_id"]
    assert (refund["退款金额"], refund["申请退款金额"], refund["应结订单金额"], refund["手续费"]) == \
        ("100.00", "100.00", "0.00", "-0.60000")
    assert (refund["退款类型"], refund["退款状态"]) == ("ORIGINAL", "SUCCESS")
    assert adds_up(rows, summary) == []
    assert summary == {"总交易单数": "3", "应结订单总金额": "323.45", "退款总金额": "100.00", "充值券退款总金额": "0.00",
                       "手续费总金额": "1.34000", "订单总金额": "323.45", "申请退款总金额": "100.00"}

    status, _, data = fetch(sandbox, mode, tmp_path / "certs", next_day)
    _, rows, summary = parse_bill(data)
    assert [(r["商户订单号"], r["交易状态"], r["商户退款单号"]) for r in rows] == [
        (after_midnight, "SUCCESS", "0"), (late, "REFUND", refund_next_day)]
    assert adds_up(rows, summary) == []

    status, _, data = fetch(sandbox, mode, tmp_path / "certs", day, "SUCCESS")
    header, rows, summary = parse_bill(data)
    assert len(header) == 20 and "退款金额" not in header and [r["交易状态"] for r in rows] == ["SUCCESS", "SUCCESS"]
    assert adds_up(rows, summary) == []
    status, _, data = fetch(sandbox, mode, tmp_path / "certs", day, "REFUND")
    header, rows, summary = parse_bill(data)
    assert len(header) == 29 and header[14:16] == ["退款申请时间", "退款成功时间"]
    assert [(r["交易状态"], r["退款成功时间"]) for r in rows] == [("REFUND", f"{day} 23:59:59")]
    assert adds_up(rows, summary) == []


def test_today_is_served_as_of_now(sandbox, mode, tmp_path):
    no = paid_order(sandbox, None)
    paid_on = dt.date.fromisoformat(sandbox.control("GET", f"/sandbox/orders/{no}")["success_time"][:10])
    status, answer, data = fetch(sandbox, mode, tmp_path / "certs", paid_on)
    assert status == 200 and hashlib.sha1(data).hexdigest() == answer["hash_value"]
    _, rows, summary = parse_bill(data)
    assert no in [r["商户订单号"] for r in rows] and adds_up(rows, summary) == []


def test_no_statement_and_not_ready(sandbox, mode, tmp_path):
    empty, busy = day_ago(DAYS["empty"][mode]), day_ago(DAYS["creating"][mode])
    assert fetch(sandbox, mode, tmp_path / "certs", empty)[:2] == (
        400, {"code": "NO_STATEMENT_EXIST", "message": "请求的账单文件不存在"})
    paid_order(sandbox, at(busy, "10:00:00"))
    for day in (empty, busy):
        sandbox.control("POST", f"/sandbox/bills/{day}", {"ready": False})
        assert fetch(sandbox, mode, tmp_path / "certs", day)[:2] == (
            400, {"code": "STATEMENT_CREATING", "message": "账单生成中"})
    sandbox.control("POST", f"/sandbox/bills/{busy}", {"ready": True})
    assert fetch(sandbox, mode, tmp_path / "certs", busy)[0] == 200
    refusal = signed_call(sandbox, "GET", f"/v3/bill/tradebill?bill_date={empty}&bill_type=ALL&tar_type=GZIP")
    assert refusal.status_code == 400 and refusal.headers.get("Wechatpay-Signature"), "a refusal is signed"


def test_foreign_rows(sandbox, mode, tmp_path):
    day = day_ago(DAYS["foreign"][mode])
    ours = paid_order(sandbox, at(day, "08:00:00"))
    payment = sandbox.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 8800,
                                                                     "time": "13:14:15"})["row"]
    refund = sandbox.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "refund", "amount": 5000,
                                                                    "out_trade_no": ours})["row"]
    status, answer, data = fetch(sandbox, mode, tmp_path / "certs", day)
    assert status == 200 and hashlib.sha1(data).hexdigest() == answer["hash_value"]
    _, rows, summary = parse_bill(data)
    by_kind = {(r["商户订单号"], r["交易状态"]): r for r in rows}
    assert set(by_kind) == {(ours, "SUCCESS"), (payment["out_trade_no"], "SUCCESS"), (ours, "REFUND")}
    foreign_pay = by_kind[(payment["out_trade_no"], "SUCCESS")]
    assert (foreign_pay["交易时间"], foreign_pay["应结订单金额"]) == (f"{day} 13:14:15", "88.00")
    assert foreign_pay["微信订单号"] == payment["transaction_id"] and len(payment["transaction_id"]) == 28
    foreign_refund = by_kind[(ours, "REFUND")]
    assert (foreign_refund["交易时间"], foreign_refund["退款金额"]) == (f"{day} 12:00:00", "50.00")
    assert foreign_refund["商户退款单号"] == refund["out_refund_no"]
    assert adds_up(rows, summary) == []

    async def queries(client):
        return await client.query(out_trade_no=payment["out_trade_no"]), await client.query_refund(
            refund["out_refund_no"])

    (order_query, refund_query), _ = with_client(sandbox, mode, tmp_path / "certs")(queries)
    assert order_query[0] == 404, "WeChat Pay's query does not confirm a foreign payment"
    assert refund_query[0] == 404, "nor a foreign refund"


@pytest.mark.parametrize("control, hashes, balanced", [("corrupt_download", False, True),
                                                        ("unbalanced", True, False)])
def test_spoilt_days(sandbox, tmp_path, control, hashes, balanced):
    day = day_ago(65 if control == "corrupt_download" else 66)
    paid_order(sandbox, at(day, "11:00:00"))
    sandbox.control("POST", f"/sandbox/bills/{day}", {control: True})
    status, answer, data = fetch(sandbox, "pubkey", tmp_path, day)
    assert status == 200
    assert (hashlib.sha1(data).hexdigest() == answer["hash_value"]) is hashes
    _, rows, summary = parse_bill(data)  # either way the file still parses
    assert (adds_up(rows, summary) == []) is balanced
    if not balanced:
        assert adds_up(rows, summary) == ["应结订单总金额"]
    sandbox.control("POST", "/sandbox/reset")
    status, answer, data = fetch(sandbox, "pubkey", tmp_path, day)
    assert hashlib.sha1(data).hexdigest() == answer["hash_value"] and adds_up(*parse_bill(data)[1:]) == []


def test_a_day_with_its_columns_reordered(sandbox, tmp_path):
    day = day_ago(67)
    no = paid_order(sandbox, at(day, "11:00:00"), total=12345)
    _, usual, _ = parse_bill(fetch(sandbox, "pubkey", tmp_path, day)[2])
    assert sandbox.control("POST", f"/sandbox/bills/{day}", {"reordered": True})["controls"]["reordered"] is True
    status, answer, data = fetch(sandbox, "pubkey", tmp_path, day)
    assert status == 200 and hashlib.sha1(data).hexdigest() == answer["hash_value"], "the reordered file is signed"
    header, rows, summary = parse_bill(data)
    assert header == ALL_COLUMNS[::-1]
    assert data.decode("utf-8").splitlines()[-2] == ",".join(SUMMARY_COLUMNS[::-1])
    assert rows == usual and rows[0]["商户订单号"] == no and rows[0]["订单金额"] == "123.45", "by name: the same bill"
    assert adds_up(rows, summary) == [] and summary["总交易单数"] == "1"
    by_position = dict(zip(ALL_COLUMNS, data.decode("utf-8").splitlines()[1].split(",")))
    assert by_position["商户订单号"] != "`" + no, "a reader by position reads another column"
    view = sandbox.control("GET", f"/sandbox/bills/{day}")
    assert view["columns"] == ALL_COLUMNS[::-1] and view["text"] == data.decode("utf-8")


@pytest.mark.parametrize("query, code", [
    ("bill_date={tomorrow}", "INVALID_REQUEST"), ("bill_date={too_old}", "INVALID_REQUEST"),
    ("bill_date=2024-13-01", "PARAM_ERROR"), ("bill_date=20240101", "PARAM_ERROR"), ("bill_type=ALL", "PARAM_ERROR"),
    ("bill_date={today}&bill_type=EVERYTHING", "PARAM_ERROR"), ("bill_date={today}&tar_type=ZIP", "PARAM_ERROR"),
])
def test_refused_dates_and_parameters(sandbox, tmp_path, query, code):
    query = query.format(tomorrow=day_ago(-1), too_old=day_ago(100), today=today())
    response = signed_call(sandbox, "GET", f"/v3/bill/tradebill?{query}")
    assert response.status_code == 400 and response.json()["code"] == code, response.text


def test_the_last_ninety_days_are_served(sandbox):
    """The service reconciles 'within the last 90 days': the sandbox never refuses one of them as too old."""
    response = signed_call(sandbox, "GET", f"/v3/bill/tradebill?bill_date={day_ago(90)}&bill_type=ALL")
    assert response.status_code == 400 and response.json()["code"] == "NO_STATEMENT_EXIST"


def test_download_is_unsigned_and_needs_the_merchant_signature(sandbox):
    day = day_ago(60)
    paid_order(sandbox, at(day, "15:00:00"))
    plain = signed_call(sandbox, "GET", f"/v3/bill/tradebill?bill_date={day}").json()  # no tar_type: plain file
    path = plain["download_url"][len(sandbox.url):]
    download = signed_call(sandbox, "GET", path)
    assert download.status_code == 200 and download.headers.get("Request-ID")
    assert not [h for h in download.headers if h.lower().startswith("wechatpay-")], "the file is not signed"
    assert "application/json" not in download.headers["Content-Type"]
    assert download.content.startswith(b"\xef\xbb\xbf") and hashlib.sha1(download.content).hexdigest() == \
        plain["hash_value"]
    assert signed_call(sandbox, "GET", path).content == download.content, "usable again while it lives"

    unsigned = httpx_get(sandbox, path)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "SIGN_ERROR"
    stale = signed_call(sandbox, "GET", path, timestamp=1)
    assert stale.status_code == 401 and stale.json()["code"] == "SIGN_ERROR"
    unknown = signed_call(sandbox, "GET", "/v3/billdownload/file?token=nope")
    assert unknown.status_code == 400 and not unknown.headers.get("Wechatpay-Signature")

    sandbox.control("POST", "/sandbox/config", {"bill_url_ttl_seconds": 0})
    expired = signed_call(sandbox, "GET", f"/v3/bill/tradebill?bill_date={day}").json()["download_url"]
    assert signed_call(sandbox, "GET", expired[len(sandbox.url):]).status_code == 400, "an expired download_url"


def test_bad_merchant_signature_is_refused(sandbox, tmp_path):
    path = f"/v3/bill/tradebill?bill_date={today()}&bill_type=ALL&tar_type=GZIP"
    assert httpx_get(sandbox, path).status_code == 401
    wrong_serial = signed_call(sandbox, "GET", path, serial="1234ABCD")
    assert wrong_serial.status_code == 401 and wrong_serial.json()["code"] == "SIGN_ERROR"
    assert not wrong_serial.headers.get("Wechatpay-Signature")


def httpx_get(sandbox, path):
    """A GET without any Authorization header."""
    return httpx.get(sandbox.url + path, timeout=10)



def test_fund_flow_bill(sandbox, tmp_path):
    sandbox.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    day = day_ago(80)
    no = paid_order(sandbox, at(day, "10:00:00"))
    out_refund_no = refunded(sandbox, no, 5000, 20000, at(day, "11:00:00"))

    async def work(client):
        status, text = await client.fundflow_bill(bill_date=day.isoformat(), tar_type="GZIP")
        answer = json.loads(text)
        got, content = await client.download_bill(answer["download_url"])
        other = await client.fundflow_bill(bill_date=day.isoformat(), account_type="FEES")
        return status, answer, gzip.decompress(content), other

    (status, answer, data, other), _ = with_client(sandbox, "pubkey")(work)
    assert status == 200 and hashlib.sha1(data).hexdigest() == answer["hash_value"]
    assert other[0] == 400 and json.loads(other[1])["code"] == "NO_STATEMENT_EXIST", "the fee account never moves"
    lines = list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))
    header, body = lines[0], [[v[1:] for v in line] for line in lines[1:]]
    assert header[:7] == ["记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型", "收支金额(元)"]
    rows = [dict(zip(header, line)) for line in body[:-2]]
    assert [(r["业务类型"], r["收支类型"], r["收支金额(元)"], r["业务凭证号"]) for r in rows] == [
        ("交易", "收入", "200.00", no), ("扣除交易手续费", "支出", "1.20", no), ("退款", "支出", "49.70", out_refund_no)]
    balances = [Decimal(r["账户结余(元)"]) for r in rows]
    assert balances[1] - balances[0] == Decimal("-1.20") and balances[2] - balances[1] == Decimal("-49.70")
    assert lines[-2] == ["资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"]
    assert body[-1] == ["3", "1", "200.00", "2", "50.90"]
