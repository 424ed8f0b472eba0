"""Helpers of the bill tests: days, orders paid on a chosen day, and a reader of bill files that knows the format
only by its header names (as a merchant's reconciliation would), independent of the sandbox's code."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

from tests.sandbox.wx import jsapi_order, new_trade_no, with_client

BEIJING = dt.timezone(dt.timedelta(hours=8))
BOM = b"\xef\xbb\xbf"
ALL_COLUMNS = ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
               "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号",
               "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额",
               "申请退款金额", "费率备注"]
SUMMARY_COLUMNS = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额",
                   "申请退款总金额"]
# summary column -> the detail column it adds up
SUMS = {"应结订单总金额": "应结订单金额", "退款总金额": "退款金额", "充值券退款总金额": "充值券退款金额",
        "手续费总金额": "手续费", "订单总金额": "订单金额", "申请退款总金额": "申请退款金额"}


def today():
    """Today in Beijing."""
    return dt.datetime.now(BEIJING).date()


def day_ago(days):
    """The Beijing day `days` before today."""
    return today() - dt.timedelta(days=days)


def at(day, clock_time):
    """An RFC 3339 moment of `day` (Beijing) at 'HH:MM:SS'."""
    return f"{day.isoformat()}T{clock_time}+08:00"


def paid_order(sandbox, success_time, total=20000, description="体验课 Trial lesson"):
    """A JSAPI order placed through wechatpayv3 and paid (no notification) at `success_time`; its out_trade_no."""
    no = new_trade_no("B")
    order = {**jsapi_order(sandbox, no, "http://127.0.0.1:9/bill", total=total), "description": description}
    (status, _), _ = with_client(sandbox, "pubkey")(lambda c: c.pay(**order))
    assert status == 200
    sandbox.control("POST", f"/sandbox/orders/{no}/pay", {"notify": False, "success_time": success_time})
    return no


def refunded(sandbox, no, amount, total, success_time):
    """A refund of order `no` asked through wechatpayv3 and settled SUCCESS at `success_time`; its out_refund_no."""
    out_refund_no = "RF" + no
    (status, _), _ = with_client(sandbox, "pubkey")(lambda c: c.refund(
        out_refund_no=out_refund_no, amount={"refund": amount, "total": total, "currency": "CNY"}, out_trade_no=no))
    assert status == 200
    sandbox.control("POST", f"/sandbox/refunds/{out_refund_no}/settle",
                    {"result": "SUCCESS", "success_time": success_time})
    return out_refund_no


def parse_bill(data):
    """(header, detail rows as dicts by header name, summary as a dict) of a bill file's bytes (unzipped): a BOM,
    the header, rows whose every value starts with a backtick, the summary header and its one row."""
    assert data.startswith(BOM), "a bill starts with a UTF-8 BOM"
    lines = list(csv.reader(io.StringIO(data[len(BOM):].decode("utf-8"), newline="")))
    header, rest = lines[0], lines[1:]
    cut = next(i for i, line in enumerate(rest) if sorted(line) == sorted(SUMMARY_COLUMNS))  # in whatever order
    details, summary_lines = rest[:cut], rest[cut + 1:]
    assert len(summary_lines) == 1, "one summary row"
    return header, [_by_name(header, line) for line in details], _by_name(rest[cut], summary_lines[0])


def _by_name(header, line):
    assert len(line) == len(header), line
    assert all(value.startswith("`") for value in line), line
    return {name: value[1:] for name, value in zip(header, line)}


def adds_up(rows, summary):
    """The summary fields that the detail rows do NOT add up to (empty when the bill is consistent); a column a
    bill type lacks (the refund columns of a SUCCESS bill) counts as zero."""
    wrong = [] if int(summary["总交易单数"]) == len(rows) else ["总交易单数"]
    for total, column in SUMS.items():
        if sum((Decimal(r.get(column, "0")) for r in rows), Decimal(0)) != Decimal(summary[total]):
            wrong.append(total)
    return wrong
