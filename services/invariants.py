"""The invariants of the booking and payment state, checked against any database and against WeChat Pay's view.

`check_invariants()` reads one consistent snapshot (a REPEATABLE READ, read-only transaction), so it may run beside
a live service; `check_wechatpay()` asks WeChat Pay about recent orders, a few at a time. Both return a list of
`Violation`s (warnings included, marked), empty when everything holds. `python manage.py check-invariants` prints
them.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from dataclasses import dataclass

from peewee import fn

from models import (
    CourseSchedule, PaymentAuditLog, PaymentOrder, PaymentTransaction, Refund, SeatReservation, WaitlistEntry,
    database, utcnow,
)

from .lifecycle.seats import R, kept_by_schedule, kept_seat, select_reservations, takes_seat_where
from .lifecycle.statuses import (
    BOOKED, CONFIRMED, ENDED, HOLDING, MONEY_TAKEN, PAID, PENDING, REFUND_HOLDING, REFUNDED, SUCCESS,
    TEMPORARY, TRADE_PAID, WAITING, WAITLIST_LIVE,
)
from .retry import backoff_seconds
from .wechat.pay_gateway import PaymentGatewayError

PAGE = 1000


@dataclass(frozen=True)
class Violation:
    """One broken invariant, or (warning=True) a state worth a look that breaks none."""

    check: str
    order_id: str | None
    detail: str
    warning: bool = False

    def line(self) -> str:
        """`VIOLATION <check> order=<order_id> <detail>` (`WARNING ...` for a warning)."""
        return f"{'WARNING' if self.warning else 'VIOLATION'} {self.check} order={self.order_id or '-'} {self.detail}"


async def check_invariants(reconcile_interval: float = 60.0, now=None) -> list[Violation]:
    """Every database invariant, read from one snapshot; `now` (naive UTC) defaults to the current time."""
    async with database.aio_connection():
        # Applies to the next transaction only: the pool's sessions stay READ COMMITTED.
        await database.aio_execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        async with database.aio_atomic():
            now = now or utcnow()
            found = await _capacity(now)
            async for page in _order_pages():
                found += await _check_orders(page, now, reconcile_interval)
            found += await _waitlist(now, reconcile_interval)
            return found


async def _count_by_schedule(condition) -> dict:
    rows = await (select_reservations(R.course_schedule, fn.COUNT(R.id).alias("n"))
                  .where(condition).group_by(R.course_schedule).dicts().aio_execute())
    return {row["course_schedule"]: row["n"] for row in rows}


async def _capacity(now) -> list[Violation]:
    """Confirmed seats never above capacity; live holds above it (a capacity cut) only warn."""
    schedules = list(await CourseSchedule.select(CourseSchedule.id, CourseSchedule.capacity,
                                                  CourseSchedule.confirmed_seats).aio_execute())
    capacity = {s.id: s.capacity for s in schedules}
    confirmed = await _count_by_schedule(R.status == CONFIRMED)
    taken = await _count_by_schedule(takes_seat_where(now))
    kept = dict(await kept_by_schedule(list(capacity)))
    for sid, n in kept.items():  # a seat kept for a waitlist offer is taken too
        taken[sid] = taken.get(sid, 0) + n
    # The counter a payment claims its seat with must equal the confirmed reservations it stands for.
    found = [Violation("seat_counter", None, f"schedule={s.id} confirmed_seats={s.confirmed_seats} "
                       f"confirmed reservations={confirmed.get(s.id, 0)}")
             for s in schedules if s.confirmed_seats != confirmed.get(s.id, 0)]
    for sid, n in sorted(confirmed.items()):
        if n > capacity[sid]:
            # The seats confirmed after the last one that fitted are the oversold ones.
            extra = await (SeatReservation.select(SeatReservation.id, PaymentOrder.order_id)
                           .join(PaymentOrder, on=(SeatReservation.order == PaymentOrder.id))
                           .where((SeatReservation.course_schedule == sid) & (SeatReservation.status == CONFIRMED))
                           .order_by(SeatReservation.confirmed_at, SeatReservation.id)
                           .offset(capacity[sid]).limit(PAGE).dicts().aio_execute())
            found += [Violation("capacity", row["order_id"], f"schedule={sid} confirmed={n} capacity={capacity[sid]}")
                      for row in extra]
    for sid, n in sorted(taken.items()):
        if n > capacity[sid] and confirmed.get(sid, 0) <= capacity[sid]:
            what = "live holds and kept seats" if kept.get(sid) else "live holds"
            found.append(Violation("capacity", None, f"schedule={sid} held={n} capacity={capacity[sid]} "
                                   f"({what} above a cut capacity)", warning=True))
    return found


_ENTRY_DETAIL = re.compile(r"^waitlist entry (\d+),")


async def _waitlist(now, reconcile_interval) -> list[Violation]:
    """Kept seats and the line: every offer has its end and is lapsed within two reconcile intervals of it; an entry
    in the line carries its parent in the unique key (one live entry per parent and session), an ended one does
    not; a booked entry names its parent's order on its session; every entry's last audited change led to its
    status; an upcoming session with a seat free while parents wait is worth a look (a hold that lapsed by its time
    a moment ago: the next booking or the reconciler's sweep offers it)."""
    found = []
    entries = list(await WaitlistEntry.select().order_by(WaitlistEntry.id).aio_execute())
    if not entries:
        return found
    orders = {o.id: o for o in await PaymentOrder.select(PaymentOrder.id, PaymentOrder.user, PaymentOrder.order_id,
                                                           PaymentOrder.course_schedule).where(
        PaymentOrder.id.in_([e.order_id for e in entries if e.order_id] or [0])).aio_execute()}
    audited = {}
    for row in await PaymentAuditLog.select(PaymentAuditLog.action_detail, PaymentAuditLog.new_status).where(
            PaymentAuditLog.entity == "waitlist").order_by(PaymentAuditLog.id).aio_execute():
        match = _ENTRY_DETAIL.match(row.action_detail or "")
        if match:
            audited[int(match.group(1))] = row.new_status
    for e in entries:
        what = f"waitlist entry {e.id} schedule={e.course_schedule_id} status={e.status}"
        live = e.status in WAITLIST_LIVE
        if (e.live_user == e.user_id) != live or (e.live_user is not None and not live):
            found.append(Violation("waitlist", None, f"{what} live_user={e.live_user}"))
        if kept_seat(e):
            if e.offer_expires_at is None or e.offered_at is None:
                found.append(Violation("waitlist", None, f"{what} without its offer's times"))
            elif (now - e.offer_expires_at).total_seconds() > 2 * reconcile_interval:
                found.append(Violation("stale_offer", None, f"{what} kept past {e.offer_expires_at.isoformat()}Z"))
        if e.status == BOOKED:
            order = orders.get(e.order_id)
            if order is None or order.user_id != e.user_id or order.course_schedule_id != e.course_schedule_id:
                found.append(Violation("waitlist", order.order_id if order else None, f"{what} order={e.order_id}"))
        if audited.get(e.id) != e.status:
            found.append(Violation("audit", None, f"{what} last audited={audited.get(e.id)}"))
    waiting = {e.course_schedule_id for e in entries if e.status == WAITING}
    if waiting:
        schedules = list(await CourseSchedule.select().where(CourseSchedule.id.in_(list(waiting))
                                                              & (CourseSchedule.starts_at > now)).aio_execute())
        ids = [s.id for s in schedules]
        taken = await _count_by_schedule(takes_seat_where(now) & R.course_schedule.in_(ids or [0]))
        for sid, n in await kept_by_schedule(ids):
            taken[sid] = taken.get(sid, 0) + n
        for s in schedules:
            if taken.get(s.id, 0) < s.capacity:
                found.append(Violation("waitlist", None, f"schedule={s.id} has {s.capacity - taken.get(s.id, 0)} "
                                       "seat(s) free while parents wait", warning=True))
    return found


async def _order_pages():
    last = 0
    while True:
        page = list(await PaymentOrder.select(
            PaymentOrder.id, PaymentOrder.order_id, PaymentOrder.status, PaymentOrder.amount_fen,
            PaymentOrder.transaction_id, PaymentOrder.expires_at, PaymentOrder.refunded_fen,
        ).where(PaymentOrder.id > last).order_by(PaymentOrder.id).limit(PAGE).aio_execute())
        if not page:
            return
        yield page
        last = page[-1].id


async def _check_orders(orders, now, reconcile_interval) -> list[Violation]:
    pks = [o.id for o in orders]
    reservations = {r.order_id: r for r in await SeatReservation.select().where(
        SeatReservation.order.in_(pks)).aio_execute()}
    txns = {}
    for t in await PaymentTransaction.select().where(PaymentTransaction.order.in_(pks)).aio_execute():
        txns.setdefault(t.order_id, []).append(t)
    refunds = {}
    for r in await Refund.select(Refund.id, Refund.order, Refund.out_refund_no, Refund.amount_fen, Refund.status) \
            .where(Refund.order.in_(pks)).aio_execute():
        refunds.setdefault(r.order_id, []).append(r)
    last_status = await _last_transitions(pks)
    found = []
    for order in orders:
        reservation = reservations.get(order.id)
        found += _transactions(order, txns.get(order.id, []))
        found += _seat(order, reservation)
        found += _stale(order, reservation, now, reconcile_interval)
        found += _refunds(order, refunds.get(order.id, []))
        found += _audited(order, reservation, refunds.get(order.id, []), last_status)
    return found


def _transactions(order, txns) -> list[Violation]:
    """A paid (or refund_required, refunded) order has exactly one transaction of its amount; others have none."""
    if order.status not in MONEY_TAKEN:
        return [Violation("transactions", order.order_id, f"status={order.status} has {len(txns)} transaction(s)")] \
            if txns else []
    if len(txns) != 1:
        return [Violation("transactions", order.order_id, f"status={order.status} has {len(txns)} transactions")]
    txn = txns[0]
    found = []
    if txn.total_fee != order.amount_fen:
        found.append(Violation("transactions", order.order_id,
                               f"total_fee={txn.total_fee} != amount_fen={order.amount_fen}"))
    if txn.transaction_id != order.transaction_id:
        found.append(Violation("transactions", order.order_id,
                               f"transaction {txn.transaction_id} != order's {order.transaction_id}"))
    return found


def _seat(order, reservation) -> list[Violation]:
    """An ended order holds no seat; a paid one has its seat confirmed; a pending one a temporary hold."""
    if reservation is None:
        return [Violation("seats", order.order_id, f"status={order.status} has no reservation")]
    wrong = (order.status in ENDED and reservation.status in HOLDING) \
        or (order.status == PAID and reservation.status != CONFIRMED) \
        or (order.status == PENDING and reservation.status != TEMPORARY)
    if not wrong:
        return []
    return [Violation("seats", order.order_id, f"status={order.status} reservation={reservation.status}")]


def _stale(order, reservation, now, reconcile_interval) -> list[Violation]:
    """No order pending past its end (or past a hold that lapsed before payment) plus two reconcile intervals."""
    if order.status != PENDING:
        return []
    end = order.expires_at
    if reservation is not None and not reservation.payment_started and reservation.expires_at < end:
        end = reservation.expires_at
    overdue = (now - end).total_seconds()
    if overdue <= 2 * reconcile_interval:
        return []
    return [Violation("stale_pending", order.order_id, f"pending {overdue:.0f}s past its end {end.isoformat()}Z")]


def _refunds(order, refunds) -> list[Violation]:
    """refunded_fen sums the SUCCESS refunds, refunds never exceed what was paid, all of it back is `refunded`."""
    success = sum(r.amount_fen for r in refunds if r.status == SUCCESS)
    holding = sum(r.amount_fen for r in refunds if r.status in REFUND_HOLDING)
    found = []
    if refunds and order.status not in MONEY_TAKEN:
        found.append(f"{len(refunds)} refund(s) on status={order.status}")
    if order.refunded_fen != success:
        found.append(f"refunded_fen={order.refunded_fen} but SUCCESS refunds sum to {success}")
    if holding > order.amount_fen:
        found.append(f"refunds of {holding} fen over the {order.amount_fen} paid")
    if (success >= order.amount_fen) != (order.status == REFUNDED):
        found.append(f"status={order.status} with {success} of {order.amount_fen} fen refunded")
    return [Violation("refunds", order.order_id, detail) for detail in found]


async def _last_transitions(pks) -> dict:
    """(order pk, entity, refund pk) -> the new_status of its latest audited status change (old != new)."""
    rows = await (PaymentAuditLog.select(PaymentAuditLog.order, PaymentAuditLog.entity, PaymentAuditLog.refund,
                                         PaymentAuditLog.new_status)
                  .where(PaymentAuditLog.order.in_(pks)
                         & PaymentAuditLog.entity.in_(["order", "reservation", "refund"])
                         & PaymentAuditLog.new_status.is_null(False)
                         & (PaymentAuditLog.old_status.is_null() | (PaymentAuditLog.old_status
                                                                     != PaymentAuditLog.new_status)))
                  .order_by(PaymentAuditLog.id).dicts().aio_execute())
    return {(row["order"], row["entity"], row["refund"] if row["entity"] == "refund" else None): row["new_status"]
            for row in rows}


def _audited(order, reservation, refunds, last_status) -> list[Violation]:
    """The latest audited change of the order, of its reservation and of each refund led to its status now."""
    found = []
    audited = last_status.get((order.id, "order", None))
    if audited != order.status:
        found.append(Violation("audit", order.order_id, f"status={order.status} last audited={audited}"))
    if reservation is not None:
        audited = last_status.get((order.id, "reservation", None))
        if audited != reservation.status:
            found.append(Violation("audit", order.order_id,
                                   f"reservation={reservation.status} last audited={audited}"))
    for refund in refunds:
        audited = last_status.get((order.id, "refund", refund.id))
        if audited != refund.status:
            found.append(Violation("audit", order.order_id,
                                   f"refund {refund.out_refund_no}={refund.status} last audited={audited}"))
    return found


class _Pace:
    """At most `rate` calls a second, at most `concurrency` at once."""

    def __init__(self, rate: float, concurrency: int = 4):
        self.gap = 1.0 / rate
        self.next_at = time.monotonic()
        self.gate = asyncio.Semaphore(concurrency)

    async def wait(self):
        """Sleep until the next slot."""
        now = time.monotonic()
        slot = max(now, self.next_at)
        self.next_at = slot + self.gap
        await asyncio.sleep(slot - now)


async def _ask(gateway, out_trade_no, pace, attempts=3):
    """(transaction or None, error text or None) for one order, retrying what may pass later."""
    for attempt in range(attempts):
        async with pace.gate:
            await pace.wait()
            try:
                return await gateway.query(out_trade_no), None
            except PaymentGatewayError as e:
                if not e.retryable or attempt == attempts - 1:
                    return None, str(e)
        await asyncio.sleep(backoff_seconds(0.5, attempt))
    return None, "no answer"


async def check_wechatpay(gateway, days: float, reconcile_interval: float = 60.0, rate: float = 10.0,
                          batch: int = 50, progress=None) -> list[Violation]:
    """Orders created in the last `days`: what WeChat Pay says was paid is paid here, once, and nothing else is.

    Queries go out `batch` orders at a time at most `rate` a second; `progress(text)` is told after each batch.
    Our side is read after WeChat Pay answered, and a payment younger than two reconcile intervals may still be
    on its way to us, so a live service gives no false alarm.
    """
    since = utcnow() - dt.timedelta(days=days)
    pks = [o.id for o in await PaymentOrder.select(PaymentOrder.id).where(PaymentOrder.created_at >= since)
           .order_by(PaymentOrder.id).aio_execute()]
    pace = _Pace(rate)
    found = []
    for start in range(0, len(pks), batch):
        chunk = pks[start:start + batch]
        names = [o.order_id for o in await PaymentOrder.select(PaymentOrder.order_id).where(
            PaymentOrder.id.in_(chunk)).order_by(PaymentOrder.id).aio_execute()]
        answers = dict(zip(names, await asyncio.gather(*[_ask(gateway, name, pace) for name in names])))
        found += await _compare(chunk, answers, reconcile_interval)
        if progress is not None:
            progress(f"wechatpay: {start + len(chunk)}/{len(pks)} orders checked, {len(found)} violation(s)")
    return found


async def _compare(pks, answers, reconcile_interval) -> list[Violation]:
    orders = list(await PaymentOrder.select().where(PaymentOrder.id.in_(pks)).aio_execute())
    counts = {row["order"]: row["n"] for row in await PaymentTransaction.select(
        PaymentTransaction.order, fn.COUNT(PaymentTransaction.id).alias("n")).where(
        PaymentTransaction.order.in_(pks)).group_by(PaymentTransaction.order).dicts().aio_execute()}
    found = []
    for order in orders:
        txn, error = answers[order.order_id]
        if error:
            found.append(Violation("wechatpay", order.order_id, f"WeChat Pay could not be asked: {error}"))
            continue
        state = (txn or {}).get("trade_state")
        n = counts.get(order.id, 0)
        if state in TRADE_PAID:
            if order.status in MONEY_TAKEN and n == 1:
                continue
            if order.status == PENDING and _recent(txn, 2 * reconcile_interval):
                continue  # its notification (or the reconciler) is on its way
            found.append(Violation("wechatpay", order.order_id, f"WeChat Pay says {state} ({txn.get('transaction_id')})"
                                   f" but status={order.status} with {n} transaction(s)"))
        elif order.status in MONEY_TAKEN:
            found.append(Violation("wechatpay", order.order_id, f"status={order.status} but WeChat Pay says {state}"))
    return found


def _recent(txn, seconds) -> bool:
    try:
        paid_at = dt.datetime.fromisoformat(txn.get("success_time") or "")
    except ValueError:
        return False
    return (dt.datetime.now(dt.timezone.utc) - paid_at).total_seconds() < seconds
