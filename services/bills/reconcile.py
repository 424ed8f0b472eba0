"""Reconciling a day: WeChat Pay's trade bill fetched and verified, compared row by row with the ledger's day, and the
ledger mended through the ordinary lifecycle wherever WeChat Pay's own query confirms the bill.

One run of a day at a time across every process: a run holds the day's lease (`bill_days`), and the steps that
commit check it (fencing). A run asked while another was under way answers that one. A run repeated later compares
afresh: a discrepancy found again keeps its id and decision, a mended one stays on the day's list (the ledger only
agrees because of it), and nothing is applied twice (the lifecycle's own guards: a transaction id is applied once,
a refund moves once). What a `kill -9` leaves: a `running` run that no answer names, discrepancies recorded but not
yet mended (the next run mends them), or a mend committed with its discrepancy marked in the same transaction.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass

import errors
from models import BillDay, BillDiscrepancy, BillRun, PaymentOrder, Refund, utcnow
from telemetry.context import current_request_id

from .. import audit
from ..formats import CN, beijing_today, is_order_id
from ..leases import Lease, LeaseLost, holding, refund_lease
from ..lifecycle.locks import lock_order, lock_order_with_reservation, lock_refund
from ..lifecycle.orders import apply_payment
from ..lifecycle.statuses import SUCCESS, TRADE_PAID
from ..refunds.refunds import settle
from ..retry import backoff_seconds
from ..uow import run_in_transaction
from ..wechat.pay_gateway import PaymentGatewayError
from . import bill_file, ledger
from .terms import (
    AMOUNT_MISMATCH, COMPARED, DISCREPANCIES, FAILED, MATCHED, MENDED, MISSING_AT_WECHAT, MISSING_IN_LEDGER,
    NO_TRADES, NOT_READY, PAYMENT, REFUND, RUNNING,
)

log = logging.getLogger("gym.bills")

DAYS_BACK = 90  # contract §2: a day within the last 90 days, today included
LEASE_SECONDS = 60
WAIT_SECONDS = 30  # how long an operator's reconcile waits for a run of the same day under way elsewhere
RETRY_CAP_SECONDS = 6 * 3600
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
EMPTY_BILL = bill_file.Bill(rows=(), payments_fen=0, refunds_fen=0, fees_fen=0)


def parse_day(text, today=None, recent=True) -> dt.date:
    """A bill day as the API takes it: `YYYY-MM-DD` (Asia/Shanghai), not after today and, to be reconciled
    (`recent`), within the last 90 days, today included; 400 INVALID_REQUEST for anything else."""
    if not isinstance(text, str) or not _DAY.fullmatch(text) or not "2000" <= text[:4]:
        raise errors.invalid_request("账单日期须为 YYYY-MM-DD", field="bill_date")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise errors.invalid_request("账单日期不存在", field="bill_date") from None
    today = today or beijing_today()
    if day > today:
        raise errors.invalid_request("账单日期不能晚于今天", field="bill_date")
    if recent and day < today - dt.timedelta(days=DAYS_BACK):
        raise errors.invalid_request(f"只能对账最近 {DAYS_BACK} 天的账单", field="bill_date")
    return day


def day_lease(day) -> Lease:
    """The lease on one bill day: one reconciliation of it at a time, whichever process asks."""
    return Lease(BillDay, BillDay.bill_date, day, LEASE_SECONDS)


async def ensure_day(day):
    """The day's row (its lease lives there)."""
    await BillDay.insert(bill_date=day, attempts=0, updated_at=utcnow()).on_conflict(
        update={BillDay.bill_date: BillDay.bill_date}).aio_execute()


def actor_name(actor, operator) -> str:
    """How a run names who asked for it: `operator:<username>` or `system`."""
    return f"operator:{operator.username}" if operator is not None else actor.kind


async def reconcile(ctx, day, actor, operator=None, wait: float | None = WAIT_SECONDS) -> BillRun | None:
    """Reconcile `day` and return its run. A run of the same day under way elsewhere is waited for (up to `wait`
    seconds, then 503) and its result returned. With `wait=None` (the job) a busy day, or one that is reconciled or
    not yet due again once the lease is ours, returns None at once."""
    asked = utcnow()
    await ensure_day(day)
    lease = day_lease(day)
    waited, delay, deadline = False, 0.05, time.monotonic() + (wait or 0)
    while not await lease.try_claim():
        if wait is None:
            return None
        waited = True
        if time.monotonic() > deadline:
            raise errors.service_unavailable("该日账单正在对账，请稍后重试")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
    lease.start_heartbeat()
    try:
        if wait is None:
            row = await BillDay.select().where(BillDay.bill_date == day).aio_get()
            if row.status in COMPARED or (row.next_attempt_at is not None and row.next_attempt_at > utcnow()):
                return None  # another process did it between our look and our claim
        if waited:
            done = await BillRun.select().where((BillRun.bill_date == day) & (BillRun.status != RUNNING)
                                                & (BillRun.reconciled_at >= asked)).order_by(
                BillRun.id.desc()).aio_first()
            if done is not None:
                return done
        return await _run(ctx, day, actor, operator, lease)
    finally:
        await lease.end()


@dataclass
class Fetched:
    """What asking WeChat Pay for the day's bill gave."""

    status: str | None  # NOT_READY or FAILED when nothing can be compared; NO_TRADES for NO_STATEMENT_EXIST
    bill: bill_file.Bill | None = None
    hash_value: str | None = None
    error: str | None = None


async def fetch(ctx, day) -> Fetched:
    """The day's bill, verified against its signed SHA1 before a byte of it is read, parsed and added up."""
    try:
        answer = await ctx.gateway.trade_bill(day.isoformat())
    except PaymentGatewayError as e:
        if e.code == "NO_STATEMENT_EXIST":
            return Fetched(NO_TRADES, EMPTY_BILL)
        return Fetched(NOT_READY if e.code == "STATEMENT_CREATING" else FAILED, error=f"{e.code}: {e.message}"[:255])
    hash_value = str(answer.get("hash_value") or "")[:64] or None
    try:
        data = await ctx.gateway.download_bill(answer.get("download_url"))
        bill = await bill_file.read(data, answer.get("hash_type"), answer.get("hash_value"))
        return Fetched(None, bill, hash_value)
    except PaymentGatewayError as e:
        return Fetched(FAILED, hash_value=hash_value, error=f"{e.code}: {e.message}"[:255])
    except bill_file.BadBill as e:
        log.error("the bill of %s cannot be used: %s", day, e)
        return Fetched(FAILED, hash_value=hash_value, error=str(e)[:255])


@dataclass
class Found:
    """A discrepancy as one run found it."""

    kind: str
    ref: str
    category: str
    out_trade_no: str | None = None
    out_refund_no: str | None = None
    transaction_id: str | None = None
    wechat_status: str | None = None
    ledger_status: str | None = None
    wechat_amount_fen: int | None = None
    ledger_amount_fen: int | None = None
    order_pk: int | None = None
    refund_pk: int | None = None


def _clip(value, n=64):
    return (str(value)[:n] or None) if value not in (None, "") else None


async def compare(day, bill) -> tuple[list[Found], int]:
    """(discrepancies, rows matched) between the bill's rows and the ledger's day."""
    payments, refunds = await ledger.payments_of(day), await ledger.refunds_of(day)
    found, matched, seen = [], 0, set()
    for row in bill.rows:
        key = row.out_trade_no if row.kind == PAYMENT else row.out_refund_no
        ref = _unique_ref(seen, row.kind, key or row.refund_id or row.transaction_id or "unnamed")
        if row.kind == PAYMENT:
            mine = payments.get(row.out_trade_no)
            if mine is not None and mine.amount_fen == row.amount_fen:
                matched += 1
                continue
            found.append(await _payment_found(row, ref, mine))
        else:
            mine = refunds.get(row.out_refund_no)
            if mine is not None and mine.amount_fen == row.amount_fen:
                matched += 1
                continue
            found.append(await _refund_found(row, ref, mine))
    for out_trade_no, mine in payments.items():
        if (PAYMENT, out_trade_no) not in seen:
            found.append(Found(PAYMENT, out_trade_no, MISSING_AT_WECHAT, out_trade_no=out_trade_no,
                               transaction_id=mine.transaction_id, ledger_status=mine.status,
                               ledger_amount_fen=mine.amount_fen, order_pk=mine.order_pk))
    for out_refund_no, mine in refunds.items():
        if (REFUND, out_refund_no) not in seen:
            found.append(Found(REFUND, out_refund_no, MISSING_AT_WECHAT, out_trade_no=mine.out_trade_no,
                               out_refund_no=out_refund_no, transaction_id=None, ledger_status=mine.status,
                               ledger_amount_fen=mine.amount_fen, order_pk=mine.order_pk, refund_pk=mine.refund_pk))
    return found, matched


def _unique_ref(seen, kind, key) -> str:
    """The row's name within its day (a second row of the same number, which WeChat Pay never writes, gets #2)."""
    ref, n = _clip(key), 1
    while (kind, ref) in seen:
        n += 1
        ref = f"{_clip(key, 56)}#{n}"
    seen.add((kind, ref))
    return ref


async def _payment_found(row, ref, mine) -> Found:
    if mine is not None:
        return Found(PAYMENT, ref, AMOUNT_MISMATCH, out_trade_no=row.out_trade_no, transaction_id=_clip(
            row.transaction_id), wechat_status=row.status, ledger_status=mine.status, wechat_amount_fen=row.amount_fen,
            ledger_amount_fen=mine.amount_fen, order_pk=mine.order_pk)
    order = await PaymentOrder.select(PaymentOrder.id, PaymentOrder.status).where(
        PaymentOrder.order_id == row.out_trade_no).aio_first() if is_order_id(row.out_trade_no) else None
    return Found(PAYMENT, ref, MISSING_IN_LEDGER, out_trade_no=_clip(row.out_trade_no),
                 transaction_id=_clip(row.transaction_id), wechat_status=_clip(row.status, 32),
                 ledger_status=order.status if order else None, wechat_amount_fen=row.amount_fen,
                 order_pk=order.id if order else None)


async def _refund_found(row, ref, mine) -> Found:
    if mine is not None:
        return Found(REFUND, ref, AMOUNT_MISMATCH, out_trade_no=_clip(row.out_trade_no),
                     out_refund_no=row.out_refund_no, transaction_id=_clip(row.transaction_id),
                     wechat_status=_clip(row.status, 32), ledger_status=mine.status,
                     wechat_amount_fen=row.amount_fen, ledger_amount_fen=mine.amount_fen, order_pk=mine.order_pk,
                     refund_pk=mine.refund_pk)
    refund = await Refund.select(Refund.id, Refund.order, Refund.status).where(
        Refund.out_refund_no == row.out_refund_no).aio_first() if row.out_refund_no else None
    return Found(REFUND, ref, MISSING_IN_LEDGER, out_trade_no=_clip(row.out_trade_no),
                 out_refund_no=_clip(row.out_refund_no), transaction_id=_clip(row.transaction_id),
                 wechat_status=_clip(row.status, 32), ledger_status=refund.status if refund else None,
                 wechat_amount_fen=row.amount_fen, order_pk=refund.order_id if refund else None,
                 refund_pk=refund.id if refund else None)


async def _run(ctx, day, actor, operator, lease) -> BillRun:
    now = utcnow()
    run_id = await BillRun.insert(bill_date=day, status=RUNNING, started_at=now, reconciled_at=now,
                                  actor=actor_name(actor, operator), operator=operator.id if operator else None,
                                  request_id=current_request_id()).aio_execute()
    fetched = await fetch(ctx, day)
    if fetched.status in (NOT_READY, FAILED):
        return await run_in_transaction(ctx, _finish, ctx.settings, day, run_id, fetched.status, fetched, 0, lease,
                                        actor)
    found, matched = await compare(day, fetched.bill)
    recorded = await run_in_transaction(ctx, _record_found, day, run_id, found, lease)
    for item in found:
        did, resolution = recorded[(item.kind, item.ref)]
        if item.category == MISSING_IN_LEDGER and resolution is None:
            await _mend(ctx, day, item, did, actor)
    if recorded:
        status = DISCREPANCIES
    else:
        status = NO_TRADES if fetched.status == NO_TRADES else MATCHED
    return await run_in_transaction(ctx, _finish, ctx.settings, day, run_id, status, fetched, matched, lease, actor)


async def _lock_day(day, lease):
    """The day's row, locked, only while our lease holds it (else LeaseLost: another run took over)."""
    row = await BillDay.select().where((BillDay.bill_date == day) & lease.held()).for_update().aio_first()
    if row is None:
        raise LeaseLost(f"bill day {day}: lease lost")
    return row


async def _record_found(uow, day, run_id, found, lease) -> dict:
    """Record what the run found: {(kind, ref): (discrepancy id, resolution)}, mended ones of the day included."""
    await _lock_day(day, lease)
    now = utcnow()
    existing = {(d.kind, d.ref): d for d in await BillDiscrepancy.select().where(
        BillDiscrepancy.bill_date == day).aio_execute()}
    recorded = {}
    for item in found:
        fields = dict(category=item.category, out_trade_no=item.out_trade_no, out_refund_no=item.out_refund_no,
                      transaction_id=item.transaction_id, wechat_status=item.wechat_status,
                      ledger_status=item.ledger_status, wechat_amount_fen=item.wechat_amount_fen,
                      ledger_amount_fen=item.ledger_amount_fen, order=item.order_pk)
        seen = existing.get((item.kind, item.ref))
        if seen is None:
            did = await BillDiscrepancy.insert(bill_date=day, kind=item.kind, ref=item.ref, first_run_id=run_id,
                                               last_run_id=run_id, created_at=now, updated_at=now,
                                               **fields).aio_execute()
            recorded[(item.kind, item.ref)] = (did, None)
            continue
        if seen.resolution == MENDED:  # as it was found when it was mended: the ledger agrees since
            fields = {}
        await BillDiscrepancy.update(last_run_id=run_id, updated_at=now, **fields).where(
            BillDiscrepancy.id == seen.id).aio_execute()
        recorded[(item.kind, item.ref)] = (seen.id, seen.resolution)
    for key, seen in existing.items():
        if seen.resolution == MENDED and key not in recorded:
            await BillDiscrepancy.update(last_run_id=run_id).where(BillDiscrepancy.id == seen.id).aio_execute()
            recorded[key] = (seen.id, MENDED)
    return recorded


async def _mend(ctx, day, item, did, actor):
    """Where WeChat Pay's own query confirms the bill's row, apply it through the ordinary path; else it waits."""
    try:
        if item.kind == PAYMENT and item.order_pk is not None:
            txn = await ctx.gateway.query(item.out_trade_no)
            amount = (txn or {}).get("amount") or {}
            if txn and txn.get("trade_state") in TRADE_PAID and txn.get("transaction_id") == item.transaction_id \
                    and amount.get("total") == item.wechat_amount_fen:
                await run_in_transaction(ctx, _mend_payment, ctx.settings, day, item, txn, did, actor)
        elif item.kind == REFUND and item.refund_pk is not None:
            answer = await ctx.gateway.query_refund(item.out_refund_no)
            amount = (answer or {}).get("amount") or {}
            if answer and answer.get("status") == SUCCESS and amount.get("refund") == item.wechat_amount_fen:
                async with holding(refund_lease(item.refund_pk), wait=15.0) as lease:
                    await run_in_transaction(ctx, _mend_refund, ctx.settings, day, item, answer, did, actor, lease)
    except (PaymentGatewayError, errors.ServiceError, LeaseLost) as e:
        log.warning("bill %s: %s %s not mended now (%s); the next run tries again", day, item.kind, item.ref, e)


async def _mended(uow, day, item, did, actor, order, what):
    now = utcnow()
    await BillDiscrepancy.update(resolution=MENDED, resolved_at=now, updated_at=now).where(
        (BillDiscrepancy.id == did) & BillDiscrepancy.resolution.is_null()).aio_execute()
    await audit.record("bill_discrepancy_mended", actor, order=order, entity="bill", new_status=MENDED,
                       detail=f"{day} {item.kind} {item.ref}: {what}")


async def _mend_payment(uow, settings, day, item, txn, did, actor):
    order, reservation = await lock_order_with_reservation(item.order_pk)
    outcome = await apply_payment(uow, settings, order, reservation, txn, actor, "bill")
    if outcome in ("applied", "no_seat"):
        await _mended(uow, day, item, did, actor, order,
                      "payment applied from WeChat Pay's query" + (" (no seat: refund_required)"
                                                                  if outcome == "no_seat" else ""))
    return outcome


async def _mend_refund(uow, settings, day, item, answer, did, actor, lease):
    refund_row = await Refund.select(Refund.order).where(Refund.id == item.refund_pk).aio_get()
    order = await lock_order(refund_row.order_id)
    refund = await lock_refund(item.refund_pk, lease)
    outcome = await settle(uow, settings, order, refund, answer, actor, "bill")
    if outcome == "applied":
        await _mended(uow, day, item, did, actor, order, "refund settled SUCCESS from WeChat Pay's query")
    return outcome


async def _finish(uow, settings, day, run_id, status, fetched, matched, lease, actor) -> BillRun:
    """The run's end: its totals (the ledger's as it stands after mending), the day's state, an audit row."""
    day_row = await _lock_day(day, lease)
    now = utcnow()
    totals = await ledger.totals(day)
    bill = fetched.bill if status in COMPARED else None
    await BillRun.update(
        status=status, reconciled_at=now, hash_value=fetched.hash_value, error=fetched.error,
        wechat_payments=bill.payments if bill else 0, wechat_payments_fen=bill.payments_fen if bill else 0,
        wechat_refunds=bill.refunds if bill else 0, wechat_refunds_fen=bill.refunds_fen if bill else 0,
        wechat_fees_fen=bill.fees_fen if bill else 0, ledger_payments=totals["payments"],
        ledger_payments_fen=totals["payments_fen"], ledger_refunds=totals["refunds"],
        ledger_refunds_fen=totals["refunds_fen"], rows_matched=matched).where(BillRun.id == run_id).aio_execute()
    compared = status in COMPARED
    attempts = 0 if compared else day_row.attempts + 1
    retry = None if compared else now + dt.timedelta(seconds=backoff_seconds(
        settings.bill_retry_seconds, attempts - 1 if status == FAILED else 0, RETRY_CAP_SECONDS))
    await BillDay.update(status=status, last_run_id=run_id, attempts=attempts, next_attempt_at=retry, updated_at=now,
                         **({"compared_run_id": run_id} if compared else {})).where(
        BillDay.bill_date == day).aio_execute()
    await audit.record("bill_reconciled", actor, entity="bill", new_status=status,
                       detail=f"{day}: {status}" + (f" ({fetched.error})" if fetched.error else ""))
    log.info("bill %s reconciled: %s", day, status)
    return await BillRun.select().where(BillRun.id == run_id).aio_get()


def bill_day_start(day) -> float:
    """The unix time at which a bill day begins (00:00 Asia/Shanghai)."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=CN).timestamp()
