"""orders.csv and refunds.csv for the accountant (contract §2 Operators): UTF-8 with a BOM, a header row, a row per
order or refund created in the days asked (Asia/Shanghai, `to` included, at most 366 days), yuan amounts, +08:00
times, and no cell a spreadsheet would take for a formula.

Streamed: rows are read in batches by id and handed out as CSV text, so a year of orders never sits in memory.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re

import errors
from models import CourseSchedule, Operator, PaymentOrder, Refund, SeatReservation

from ..formats import beijing_today, day_bounds, iso, yuan

BOM = "\ufeff"
BATCH = 200
MAX_DAYS = 366
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

ORDER_COLUMNS = ("order_id", "status", "amount", "created_at", "paid_at", "transaction_id", "refunded", "session",
                 "starts_at", "course_schedule_id", "user_id", "reservation_status", "failure_reason")
REFUND_COLUMNS = ("out_refund_no", "order_id", "status", "amount", "created_at", "success_time", "operator",
                  "refund_id", "reason", "late_success_after")


def cell(value) -> str:
    """A value as a CSV cell a spreadsheet shows as text: one that would start a formula gets a leading `'`."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _day(text, name) -> dt.date:
    if not isinstance(text, str) or not _DAY.fullmatch(text):
        raise errors.invalid_request(f"{name} 须为 YYYY-MM-DD", field=name)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise errors.invalid_request(f"{name} 不是有效日期", field=name) from None


def parse_range(args) -> tuple[dt.datetime, dt.datetime]:
    """The export's [start, end) as naive UTC from `from` and `to` (Beijing days, `to` included); one of them alone
    is that one day, neither is today. 400 for a malformed day, `to` before `from`, or more than 366 days."""
    raw_from, raw_to = args.get("from") or None, args.get("to") or None
    first = _day(raw_from, "from") if raw_from else None
    last = _day(raw_to, "to") if raw_to else None
    first = first or last or beijing_today()
    last = last or first
    if last < first:
        raise errors.invalid_request("to 不能早于 from", field="to")
    if (last - first).days + 1 > MAX_DAYS:
        raise errors.invalid_request(f"导出范围最多 {MAX_DAYS} 天", field="to")
    return day_bounds(first)[0], day_bounds(last)[1]


def _line(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([cell(v) for v in values])
    return buffer.getvalue()


async def _batches(query, id_field):
    """The query's rows in batches of BATCH, by ascending id (keyset: each batch one indexed read)."""
    last = 0
    while True:
        rows = list(await query.where(id_field > last).order_by(id_field).limit(BATCH).aio_execute())
        if not rows:
            return
        yield rows
        last = rows[-1].id
        if len(rows) < BATCH:
            return


async def orders_csv(start, end):
    """The orders created in [start, end) as CSV text chunks: a chunk per batch, the BOM and header with the first
    (so a failure before any row answers an error, not a file)."""
    head = BOM + _line(ORDER_COLUMNS)
    query = (PaymentOrder.select(PaymentOrder, CourseSchedule.title, CourseSchedule.starts_at,
                                 SeatReservation.status.alias("reservation_status"))
             .join(CourseSchedule, on=(CourseSchedule.id == PaymentOrder.course_schedule))
             .switch(PaymentOrder).join(SeatReservation, join_type="LEFT OUTER JOIN",
                                        on=(SeatReservation.order == PaymentOrder.id))
             .where((PaymentOrder.created_at >= start) & (PaymentOrder.created_at < end)).objects())
    async for rows in _batches(query, PaymentOrder.id):
        yield head + "".join(_line((
            o.order_id, o.status, yuan(o.amount_fen), iso(o.created_at), iso(o.paid_at), o.transaction_id,
            yuan(o.refunded_fen), o.title, iso(o.starts_at), o.course_schedule_id, o.user_id, o.reservation_status,
            o.failure_reason)) for o in rows)
        head = ""
    if head:
        yield head


async def refunds_csv(start, end):
    """The refunds asked in [start, end) as CSV text chunks (as orders_csv)."""
    head = BOM + _line(REFUND_COLUMNS)
    query = (Refund.select(Refund, PaymentOrder.order_id.alias("out_trade_no"), Operator.username)
             .join(PaymentOrder, on=(PaymentOrder.id == Refund.order))
             .switch(Refund).join(Operator, join_type="LEFT OUTER JOIN", on=(Operator.id == Refund.operator))
             .where((Refund.created_at >= start) & (Refund.created_at < end)).objects())
    async for rows in _batches(query, Refund.id):
        yield head + "".join(_line((
            r.out_refund_no, r.out_trade_no, r.status, yuan(r.amount_fen), iso(r.created_at), iso(r.succeeded_at),
            r.username, r.refund_id, r.reason, r.success_after)) for r in rows)
        head = ""
    if head:
        yield head


def export(kind: str, args):
    """(file name, async iterator of CSV text) of `orders` or `refunds` for the range asked (checked first: 400)."""
    start, end = parse_range(args)
    stream = orders_csv if kind == "orders" else refunds_csv
    return f"{kind}.csv", stream(start, end)
