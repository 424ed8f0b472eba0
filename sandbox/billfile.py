"""The trade bill file as WeChat Pay writes it: UTF-8 with a BOM, a header row, backtick-prefixed detail rows, then
the summary header and its row; amounts in yuan, the fee rounded to the fen and written with five decimals.

An entry (one detail row) is a dict: kind ("payment" | "refund"), time (aware datetime), appid, mchid,
transaction_id, out_trade_no, openid, trade_type, bank_type, currency, description, attach, total (fen, the
order's), and for refunds refund (fen), refund_id, out_refund_no, refund_created (aware datetime).
"""
import csv
import io

from . import clock

BOM = "\ufeff"
FEE_RATE_PER_MILLE = 6  # 0.6 %, the usual rate of a mini-program merchant
FEE_RATE = "0.60%"
LINE_END = "\r\n"

_HEAD = ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
         "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额"]
_REFUND_COLUMNS = ["微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态"]
_TAIL = ["商品名称", "商户数据包", "手续费", "费率", "订单金额"]
COLUMNS = {
    "ALL": _HEAD + _REFUND_COLUMNS + _TAIL + ["申请退款金额", "费率备注"],
    "SUCCESS": _HEAD + _TAIL + ["费率备注"],
    "REFUND": _HEAD + ["退款申请时间", "退款成功时间"] + _REFUND_COLUMNS + _TAIL + ["申请退款金额", "费率备注"],
}
SUMMARY_COLUMNS = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额",
                   "申请退款总金额"]
KINDS = {"ALL": ("payment", "refund"), "SUCCESS": ("payment",), "REFUND": ("refund",)}


def fee_fen(amount_fen):
    """The fee of an amount: 0.6 % rounded half up to the fen ("精确到小数点后2位，四舍五入")."""
    return (amount_fen * FEE_RATE_PER_MILLE + 500) // 1000


def yuan(fen):
    """Fen as yuan with two decimals, signed: 20000 -> '200.00', -120 -> '-1.20'."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def fee_yuan(fen):
    """A fee as WeChat Pay writes it: rounded to the fen, then three zeros (1.20 -> '1.20000')."""
    return yuan(fen) + "000"


def stamp(moment):
    """Beijing time as the bill writes it: 2024-05-01 23:59:59."""
    return moment.astimezone(clock.BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def amounts(entry):
    """The money columns of an entry in fen: settled, refund, fee (negative for a refund: it is given back)."""
    if entry["kind"] == "payment":
        return {"应结订单金额": entry["total"], "订单金额": entry["total"], "退款金额": 0, "申请退款金额": 0,
                "手续费": fee_fen(entry["total"])}
    return {"应结订单金额": 0, "订单金额": 0, "退款金额": entry["refund"], "申请退款金额": entry["refund"],
            "手续费": -fee_fen(entry["refund"])}


def detail_values(entry):
    """Every column a detail row may have, by header name, before the backtick."""
    money = amounts(entry)
    refund = entry["kind"] == "refund"
    return {
        "交易时间": stamp(entry["time"]), "公众账号ID": entry["appid"], "商户号": entry["mchid"], "特约商户号": "0",
        "设备号": "", "微信订单号": entry["transaction_id"], "商户订单号": entry["out_trade_no"],
        "用户标识": entry["openid"], "交易类型": entry["trade_type"], "交易状态": "REFUND" if refund else "SUCCESS",
        "付款银行": entry["bank_type"], "货币种类": entry["currency"], "应结订单金额": yuan(money["应结订单金额"]),
        "代金券金额": "0.00",
        "退款申请时间": stamp(entry["refund_created"]) if refund else "",
        "退款成功时间": stamp(entry["time"]) if refund else "",
        "微信退款单号": entry["refund_id"] if refund else "0", "商户退款单号": entry["out_refund_no"] if refund else "0",
        "退款金额": yuan(money["退款金额"]), "充值券退款金额": "0.00", "退款类型": "ORIGINAL" if refund else "",
        "退款状态": "SUCCESS" if refund else "", "商品名称": entry["description"], "商户数据包": entry["attach"] or "",
        "手续费": fee_yuan(money["手续费"]), "费率": FEE_RATE, "订单金额": yuan(money["订单金额"]),
        "申请退款金额": yuan(money["申请退款金额"]), "费率备注": "",
    }


def summary(entries, unbalanced=False):
    """The summary row's values in fen (count first) from the detail entries; `unbalanced` adds one fen to
    应结订单总金额 so that the rows no longer add up to it."""
    totals = dict.fromkeys(("应结订单金额", "退款金额", "手续费", "订单金额", "申请退款金额"), 0)
    for entry in entries:
        for name, fen in amounts(entry).items():
            totals[name] += fen
    return {"总交易单数": len(entries), "应结订单总金额": totals["应结订单金额"] + (1 if unbalanced else 0),
            "退款总金额": totals["退款金额"], "充值券退款总金额": 0, "手续费总金额": totals["手续费"],
            "订单总金额": totals["订单金额"], "申请退款总金额": totals["申请退款金额"]}


def select(entries, bill_type):
    """The entries a bill of `bill_type` lists, in the order of their time (payments before refunds on a tie)."""
    chosen = [e for e in entries if e["kind"] in KINDS[bill_type]]
    return sorted(chosen, key=lambda e: (e["time"], e["kind"] != "payment"))


def columns_of(bill_type, reordered=False):
    """(detail columns, summary columns) of a bill type as the file lists them; `reordered` reverses both, as a
    bill whose layout changed would list them: only a reader by header name still finds each value."""
    if reordered:
        return COLUMNS[bill_type][::-1], SUMMARY_COLUMNS[::-1]
    return COLUMNS[bill_type], SUMMARY_COLUMNS


def render(entries, bill_type="ALL", unbalanced=False, reordered=False):
    """The bill text (BOM included) of already selected entries. Fields are quoted only where they hold a comma,
    a quote or a line break (csv's minimal quoting), so that a 商品名称 with a comma still parses."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator=LINE_END)
    columns, summary_columns = columns_of(bill_type, reordered)
    writer.writerow(columns)
    for entry in entries:
        values = detail_values(entry)
        writer.writerow(["`" + values[name] for name in columns])
    writer.writerow(summary_columns)
    totals = summary(entries, unbalanced)
    writer.writerow(["`" + (str(totals[name]) if name == "总交易单数" else
                            fee_yuan(totals[name]) if name == "手续费总金额" else yuan(totals[name]))
                     for name in summary_columns])
    return out.getvalue()


def tampered(entries):
    """The entries of a corrupted download: the first payment (else the first refund) one yuan larger. The file
    still adds up and parses, so only the SHA1 against the signed hash_value shows it is not the bill."""
    changed = [dict(e) for e in entries]
    target = next((e for e in changed if e["kind"] == "payment"), changed[0] if changed else None)
    if target is not None:
        target["total" if target["kind"] == "payment" else "refund"] += 100
    return changed
