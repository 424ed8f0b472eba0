"""A WeChat Pay trade bill file: unzipped, checked against its signed SHA1 before any byte of it is read, then
parsed by its header names (never by column position) into payment and refund rows, whose sums must equal its
summary row.

What the file is (docs/sandbox.md "The trade bill file"): UTF-8 with a BOM, a header line, one detail line per
payment (交易状态 SUCCESS) or refund (交易状态 REFUND) with every value prefixed by a backtick, then the summary header
(总交易单数, 应结订单总金额, ...) and its one line. The payer's identity (用户标识) is never read.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
import zlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ..offload import BoundedThreads

MAX_UNZIPPED_BYTES = 64 * 1024 * 1024
BOM = "\ufeff"
SUMMARY_COUNT = "总交易单数"  # the summary header is the line naming this column (wherever it stands)
# The detail columns reconciliation reads; a bill without one of them cannot be reconciled.
REQUIRED = ("交易时间", "微信订单号", "商户订单号", "交易状态", "应结订单金额", "订单金额", "商户退款单号",
            "微信退款单号", "退款金额", "退款状态", "手续费")
# Summary column -> the detail column it totals (a column the bill type lacks counts as zero).
SUMS = {"应结订单总金额": "应结订单金额", "退款总金额": "退款金额", "充值券退款总金额": "充值券退款金额",
        "手续费总金额": "手续费", "订单总金额": "订单金额", "申请退款总金额": "申请退款金额"}
PAYMENT, REFUND = "SUCCESS", "REFUND"  # 交易状态 of a payment row and of a refund row
_SHA1_HEX = re.compile(r"[0-9A-Fa-f]{40}")


class BadBill(Exception):
    """The bill does not verify, cannot be read, or does not add up: nothing may be compared or changed."""


# Unzipping, hashing and parsing a bill is CPU work: off the event loop, one bill at a time per process.
_THREADS = BoundedThreads("bill-file", 1, 8, refuse=lambda: BadBill("too many bills being read at once"))


@dataclass(frozen=True)
class BillRow:
    """One detail row, as reconciliation needs it (amounts in fen)."""

    kind: str  # payment | refund
    trade_time: str
    transaction_id: str
    out_trade_no: str
    out_refund_no: str | None
    refund_id: str | None
    status: str  # as the bill spells it: 交易状态 for a payment, 退款状态 (else 交易状态) for a refund
    amount_fen: int  # a payment: 订单金额; a refund: 退款金额
    fee_fen: int


@dataclass(frozen=True)
class Bill:
    """A verified bill: its rows and its own summary (in fen)."""

    rows: tuple
    payments_fen: int  # 应结订单总金额
    refunds_fen: int  # 退款总金额
    fees_fen: int  # 手续费总金额

    @property
    def payments(self) -> int:
        return sum(1 for r in self.rows if r.kind == "payment")

    @property
    def refunds(self) -> int:
        return sum(1 for r in self.rows if r.kind == "refund")


async def read(data: bytes, hash_type, hash_value) -> Bill:
    """The downloaded bill (gzip, or plain) unzipped, verified against the signed hash, then parsed: in a thread."""
    return await _THREADS.run(_read, data, hash_type, hash_value)


def _read(data, hash_type, hash_value):
    raw = unzip(data) if data[:2] == b"\x1f\x8b" else data
    verify(raw, hash_type, hash_value)
    return parse(raw)


def unzip(data: bytes) -> bytes:
    """The gzip stream as bytes, at most MAX_UNZIPPED_BYTES (a bigger one is refused, not read into memory)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_UNZIPPED_BYTES + 1)
    except zlib.error as e:
        raise BadBill(f"the download is not gzip: {e}") from None
    if len(out) > MAX_UNZIPPED_BYTES or inflater.unconsumed_tail:
        raise BadBill("the unzipped bill is too large")
    if not inflater.eof:
        raise BadBill("the gzip stream is truncated")
    return out


def verify(data: bytes, hash_type: str, hash_value: str):
    """The unzipped bill's SHA1 must equal the signed `hash_value` (before anything else reads it)."""
    if str(hash_type or "").upper() != "SHA1":
        raise BadBill(f"unsupported hash {hash_type!r}")
    if not isinstance(hash_value, str) or not _SHA1_HEX.fullmatch(hash_value.strip()):
        raise BadBill("the signed hash_value is not a SHA1")
    if not hmac.compare_digest(hashlib.sha1(data).hexdigest(), hash_value.strip().lower()):
        raise BadBill("the bill's SHA1 does not match the signed hash_value")


def fen(value: str, column: str) -> int:
    """A yuan amount of the bill (`200.00`, `1.20000`, `-0.60000`) as integer fen; BadBill if not whole fen."""
    try:
        amount = Decimal(value or "0") * 100
    except InvalidOperation:
        raise BadBill(f"{column}: {value!r} is not an amount") from None
    if not amount.is_finite() or amount != amount.to_integral_value() or abs(amount) > 10 ** 15:
        raise BadBill(f"{column}: {value!r} is not a whole number of fen")
    return int(amount)


def _value(text: str) -> str:
    """A bill value without its backtick prefix."""
    return text.removeprefix("`")


def parse(data: bytes) -> Bill:
    """The verified, unzipped bill as rows and summary; BadBill when it cannot be read or does not add up."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBill("the bill is not UTF-8") from None
    lines = [line for line in csv.reader(io.StringIO(text.removeprefix(BOM), newline="")) if line]
    if not lines:
        raise BadBill("the bill is empty")
    header = [name.strip() for name in lines[0]]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise BadBill(f"the bill has no column {', '.join(missing)}")
    cut = next((i for i, line in enumerate(lines) if SUMMARY_COUNT in (name.strip() for name in line)), None)
    if cut is None or cut + 2 != len(lines):
        raise BadBill("the bill has no summary row, or more than one")
    summary_header = [name.strip() for name in lines[cut]]
    if len(set(header)) != len(header) or len(set(summary_header)) != len(summary_header):
        raise BadBill("the bill names a column twice")
    summary = _by_name(summary_header, lines[cut + 1])
    details = [_by_name(header, line) for line in lines[1:cut]]
    _check_sums(details, summary)
    rows = tuple(row for row in (_row(d) for d in details) if row is not None)
    return Bill(rows=rows, payments_fen=fen(summary.get("应结订单总金额", "0"), "应结订单总金额"),
                refunds_fen=fen(summary.get("退款总金额", "0"), "退款总金额"),
                fees_fen=fen(summary.get("手续费总金额", "0"), "手续费总金额"))


def _by_name(header, line) -> dict:
    if len(line) != len(header):
        raise BadBill(f"a line has {len(line)} values for {len(header)} columns")
    return {name: _value(value) for name, value in zip(header, line)}


def _check_sums(details, summary):
    """The summary row must count the detail rows and total each of its columns."""
    try:
        count = int(summary.get(SUMMARY_COUNT, ""))
    except ValueError:
        raise BadBill("the summary's 总交易单数 is not a number") from None
    if count != len(details):
        raise BadBill(f"the summary counts {count} rows, the bill has {len(details)}")
    for total, column in SUMS.items():
        if total not in summary:
            continue
        added = sum(fen(d.get(column, "0"), column) for d in details)
        if added != fen(summary[total], total):
            raise BadBill(f"the rows' {column} add up to {added} fen, the summary's {total} says "
                          f"{fen(summary[total], total)}")


def _row(d: dict) -> BillRow | None:
    """A detail row as a payment or a refund (a row of another 交易状态 is no trade of ours to compare)."""
    state = d["交易状态"].strip()
    if state == PAYMENT:
        return BillRow("payment", d["交易时间"], d["微信订单号"].strip(), d["商户订单号"].strip(), None, None, state,
                       fen(d["订单金额"], "订单金额"), fen(d["手续费"], "手续费"))
    if state == REFUND:
        return BillRow("refund", d["交易时间"], d["微信订单号"].strip(), d["商户订单号"].strip(),
                       d["商户退款单号"].strip(), d["微信退款单号"].strip(), d["退款状态"].strip() or state,
                       fen(d["退款金额"], "退款金额"), fen(d["手续费"], "手续费"))
    return None
