"""The fund-flow bill of the basic account (/v3/bill/fundflowbill): one row per movement of money, with the balance
after it, then the summary header and its row. Made from the same entries as the trade bill (see billfile).

A payment credits its amount and debits its fee as two rows; a refund debits what left the account (the refund
less the part of the fee given back), its remark naming both. The balance runs from the sandbox's first entry at
zero; nothing is ever withdrawn (no 提现 rows).
"""
import csv
import hashlib
import io

from . import clock
from .billfile import BOM, LINE_END, amounts, stamp, yuan

COLUMNS = ["记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型", "收支金额(元)", "账户结余(元)",
           "资金变更提交申请人", "备注", "业务凭证号"]
SUMMARY_COLUMNS = ["资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"]
ACCOUNT_TYPES = ("BASIC", "OPERATION", "FEES")


def _flow_number(*parts):
    """A stable 28-digit 资金流水单号 for one movement (the same on every download of the bill)."""
    return str(int(hashlib.sha1("|".join(parts).encode("utf-8")).hexdigest(), 16))[:28]


def movements(entries):
    """Every movement of the entries, oldest first, as (entry, name, type, fen signed, remark)."""
    moves = []
    for entry in sorted(entries, key=lambda e: (e["time"], e["kind"] != "payment")):
        money = amounts(entry)
        if entry["kind"] == "payment":
            moves.append((entry, "交易", "交易", entry["total"], ""))
            if money["手续费"]:
                moves.append((entry, "交易", "扣除交易手续费", -money["手续费"], ""))
        else:
            returned = -money["手续费"]
            moves.append((entry, "退款", "退款", -(entry["refund"] - returned),
                          f"退款总金额{yuan(entry['refund'])}元;含手续费{yuan(returned)}元"))
    return moves


def render(entries, day, unbalanced=False):
    """The basic account's fund-flow bill of `day` (text, BOM included); None when nothing moved that day.
    `unbalanced` adds one fen to 收入金额."""
    balance, rows = 0, []
    for entry, name, kind, fen, remark in movements(entries):
        balance += fen
        if entry["time"].astimezone(clock.BEIJING).date() == day:
            rows.append((entry, name, kind, fen, remark, balance))
    if not rows:
        return None
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator=LINE_END)
    writer.writerow(COLUMNS)
    for entry, name, kind, fen, remark, after in rows:
        refund = entry["kind"] == "refund"
        business_no = entry["refund_id"] if refund else entry["transaction_id"]
        writer.writerow(["`" + value for value in (
            stamp(entry["time"]), business_no, _flow_number(business_no, kind), name, kind,
            "收入" if fen > 0 else "支出", yuan(abs(fen)), yuan(after),
            entry["mchid"] + "API" if refund else "system", remark,
            entry["out_refund_no"] if refund else entry["out_trade_no"])])
    moved = [row[3] for row in rows]
    income, spent = [fen for fen in moved if fen > 0], [-fen for fen in moved if fen < 0]
    writer.writerow(SUMMARY_COLUMNS)
    writer.writerow(["`" + v for v in (str(len(rows)), str(len(income)), yuan(sum(income) + (1 if unbalanced else 0)),
                                       str(len(spent)), yuan(sum(spent)))])
    return out.getvalue()

