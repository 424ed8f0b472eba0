"""Booking: creating an order at the fixed price, one trial per parent, and a seat held without oversell."""
from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace

import peewee

import errors
from models import IdempotencyKey, PaymentOrder, database, utcnow
from models.prepared import Prepared

from .. import audit
from ..lifecycle.locks import LIVE_ORDERS, LOCK_SCHEDULE, lock_order, split
from ..lifecycle.orders import end_order, open_order
from ..lifecycle.seats import SEATS_TAKEN, hold_lapsed, kept_seat_sql, offer_lapsed_sql, taken_sql
from ..lifecycle.waitlist import kept_for, offer_free_seats, take_kept_seat
from ..lifecycle.statuses import EXPIRED, PAID, PENDING, TRIAL_HOLDING, sql_in
from ..uow import run_in_transaction
from . import alternatives
from .views import order_view, serialize


MAX_AMOUNT_TEXT = 40  # "200.00" needs 6; a longer number is not the price (and is not worth parsing)
SOLD_OUT = 409  # what _create answers for a full schedule (raised as SOLD_OUT once its transaction committed)


def parse_amount_fen(raw) -> int | None:
    """The client's amount (yuan, string or number) in fen; None when absent; 400 when not a number.

    Any number that is not a whole number of fen, or is out of range, comes back as -1 (never the price), decided
    from the exponent alone so that "1e999999" costs nothing.
    """
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise errors.invalid_request("amount 必须是数字", field="amount")
    text = str(raw).strip() if not isinstance(raw, int) else None
    if text is not None and (not text or len(text) > MAX_AMOUNT_TEXT):
        if not text:
            raise errors.invalid_request("amount 必须是数字", field="amount")
        return -1 if _looks_numeric(text) else _not_a_number()
    try:
        value = Decimal(raw) if isinstance(raw, int) else Decimal(text)
    except (InvalidOperation, ValueError):
        raise errors.invalid_request("amount 必须是数字", field="amount") from None
    if value.is_nan():
        raise errors.invalid_request("amount 必须是数字", field="amount")
    if value.is_infinite():
        if isinstance(raw, float):  # a JSON number too large for a float: a number, not the price
            return -1
        raise errors.invalid_request("amount 必须是数字", field="amount")
    if not -12 <= value.adjusted() <= 12:
        return -1
    fen = value.scaleb(2)
    return int(fen) if fen == fen.to_integral_value() else -1  # fractions of a fen never match the price


def _looks_numeric(text: str) -> bool:
    """A decimal number with an optional exponent, checked in one linear pass (no regex backtracking)."""
    def unsigned(part):
        return part[1:] if part[:1] in ("+", "-") else part

    mantissa, has_exponent, exponent = unsigned(text).replace("E", "e").partition("e")
    whole, _, fraction = mantissa.partition(".")
    if not (whole or fraction) or not (whole.isdigit() or not whole) or not (fraction.isdigit() or not fraction):
        return False
    return not has_exponent or unsigned(exponent).isdigit()


def _not_a_number():
    raise errors.invalid_request("amount 必须是数字", field="amount")


def parse_schedule_id(raw) -> int:
    """The course_schedule_id as a positive int; 400 otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise errors.invalid_request("course_schedule_id 必须是整数", field="course_schedule_id")
    try:
        value = int(raw)
    except ValueError:
        raise errors.invalid_request("course_schedule_id 必须是整数", field="course_schedule_id") from None
    if value <= 0:
        raise errors.invalid_request("course_schedule_id 必须是正整数", field="course_schedule_id")
    return value


async def _live_orders(uow, user_id, now):
    """The user's pending and paid orders (locked); a pending one whose hold lapsed before any WeChat Pay order is
    ended first: it can never be paid."""
    live = []
    for row in await LIVE_ORDERS.objects(user_id):
        order, reservation = split(row)
        if order.status == PENDING and hold_lapsed(reservation, now):
            await end_order(uow, await lock_order(order.id), EXPIRED, "seat_hold_lapsed", audit.SYSTEM,
                            "order_expired")
            continue
        live.append(order)
    return live


# The schedule locked (step 3 of the lock order), then its seats counted, in one round trip: two statements, so the
# count's read view is taken when it starts, after the lock was granted (see docs/design.md). Parameters: schedule
# id, now, schedule id.
LOCK_AND_COUNT = Prepared(LOCK_SCHEDULE.sql + ";" + SEATS_TAKEN.sql)


async def _create(uow, ctx, user_id, schedule_id, idem_key, request_hash, actor, request_snapshot,
                  none_live=False):
    """The locked path. `none_live`: a read made just before found no live order of the parent's, so their live
    orders are not read again: an empty FOR UPDATE read locks nothing at READ COMMITTED, and one that appeared
    since is refused by the `trial_slot` unique key (the caller then comes back without `none_live`)."""
    settings = ctx.settings
    now = utcnow()
    if idem_key:
        seen = await IdempotencyKey.select().where(
            (IdempotencyKey.user == user_id) & (IdempotencyKey.idem_key == idem_key)).aio_first()
        if seen is not None:
            if seen.request_hash != request_hash:
                raise errors.ServiceError(422, "IDEMPOTENCY_KEY_REUSED", "该 Idempotency-Key 已用于另一个请求")
            order = await PaymentOrder.select().where(PaymentOrder.id == seen.order_id).aio_get()
            return seen.status_code, order, None
    live = [] if none_live else await _live_orders(uow, user_id, now)
    if any(o.status == PAID for o in live):
        raise errors.trial_already_booked()
    for order in live:
        if order.course_schedule_id == schedule_id:  # asked again: the answer is the order as it stands, whole
            return 200, await PaymentOrder.select().where(PaymentOrder.id == order.id).aio_get(), None
        raise errors.pending_order_exists(order.order_id)
    locked, counted = await LOCK_AND_COUNT.each(schedule_id, now, schedule_id)
    if not locked.rows:
        raise errors.not_found("课程不存在")
    _, title, starts_at, capacity = locked.rows[0]
    schedule = SimpleNamespace(id=schedule_id, title=title, starts_at=starts_at, capacity=capacity)
    if schedule.starts_at <= now:
        raise errors.ServiceError(409, "SCHEDULE_CLOSED", "该课程已开始，无法预约")
    taken, in_line = counted.rows[0]
    kept = None
    if in_line:
        # A waitlist: a seat that came free goes to the line first (offer_free_seats, under this lock); then the
        # order of a parent a seat is kept for takes it, and anyone else counts the kept seats as taken.
        await offer_free_seats(uow, schedule.id, now)
        kept = await kept_for(user_id, schedule.id)
        taken = (await SEATS_TAKEN.rows(now, schedule.id))[0][0] - (kept is not None)
    if taken >= schedule.capacity:
        # Refused, but what was settled on the way (offers lapsed and passed on, the parent's own lapsed order
        # ended) commits: the refusal is raised after the transaction.
        return SOLD_OUT, None, None
    order, reservation = await open_order(uow, settings, user_id, schedule, actor, request_snapshot, now,
                                          last=kept is None and not idem_key)
    if kept is not None:
        await take_kept_seat(uow, kept, order, actor)
    if idem_key:
        await IdempotencyKey.insert(user=user_id, idem_key=idem_key, request_hash=request_hash, order=order.id,
                                    status_code=201).aio_execute()
    return 201, order, reservation


# Before any lock or transaction: is the schedule there, still open, and full, and has the parent no live order (nor
# a seat kept for them, nor is an offer there to lapse)?
# A parent with nothing open who asks for a full schedule is answered SOLD_OUT from this one read (the many losers
# of a rush never queue on the schedule's lock); anything else goes through the locked path, which alone decides.
# Parameters: now, user id, user id, now, schedule id.
PRECHECK = Prepared(
    "SELECT s.`capacity`, s.`starts_at`, " + taken_sql("s") + ", (SELECT COUNT(*) FROM `payment_orders` o "
    f"WHERE o.`user_id` = %s AND {sql_in('o.`status`', TRIAL_HOLDING)}), (SELECT COUNT(*) FROM `waitlist_entries` w "
    f"WHERE w.`course_schedule_id` = s.`id` AND {kept_seat_sql('w')} AND (w.`user_id` = %s OR "
    f"{offer_lapsed_sql('w')})) FROM `course_schedules` s WHERE s.`id` = %s",
    ("capacity", "starts_at", "taken", "live", "offers"))

_gates = weakref.WeakValueDictionary()  # schedule id -> the local lock its order creations take turns on


def _schedule_gate(schedule_id) -> asyncio.Lock:
    gate = _gates.get(schedule_id)
    if gate is None:
        gate = _gates[schedule_id] = asyncio.Lock()
    return gate


async def _precheck(user_id, schedule_id) -> bool:
    """Answer the plain refusals from one unlocked read: an unknown schedule, one that started, or a full one asked
    for by a parent with nothing open (a stale "full" is only as stale as arriving a moment earlier; a seat is
    granted only under the schedule's lock, in _create). True when the parent had no live order."""
    now = utcnow()
    seen = await PRECHECK.first(now, user_id, user_id, now, schedule_id)
    if seen is None:
        raise errors.not_found("课程不存在")
    if seen.live or seen.offers:
        return False  # their own order, or a kept seat, decides the answer: the locked path
    if seen.starts_at <= now:
        raise errors.ServiceError(409, "SCHEDULE_CLOSED", "该课程已开始，无法预约")
    if seen.taken >= seen.capacity:
        raise errors.sold_out()
    return True  # no live order of the parent's


async def _record_amount_mismatch(uow, user_id, actor, request_snapshot, sent_fen, price):
    await audit.record("amount_mismatch", actor, detail=f"client sent {sent_fen} fen, price is {price} fen",
                       request=request_snapshot, error="AMOUNT_MISMATCH")


async def _create_in_turn(ctx, user_id, schedule_id, idem_key, request_hash, actor, snapshot):
    """The plain refusals from one read, then the locked path (retried once after a unique-key collision), on one
    connection of the pool (one acquire: nothing is awaited between them but MySQL)."""
    async with database.aio_connection():
        none_live = False if idem_key else await _precheck(user_id, schedule_id)
        for attempt in range(2):
            try:
                return await run_in_transaction(ctx, _create, ctx, user_id, schedule_id, idem_key, request_hash,
                                                actor, snapshot, none_live=none_live and not attempt)
            except peewee.IntegrityError:
                # The same parent's other request inserted first (one live order per parent: trial_slot is unique).
                # Once more: it now finds that order (or the Idempotency-Key it stored) and answers from it.
                if attempt:
                    raise


async def create_order(ctx, user_id: int, body: dict, idem_key: str | None, actor) -> tuple[int, dict]:
    """Create (or return the open) order for a schedule; returns (HTTP status, order object)."""
    schedule_id = parse_schedule_id(body.get("course_schedule_id"))
    sent_fen = parse_amount_fen(body.get("amount"))
    snapshot = {"course_schedule_id": body.get("course_schedule_id"), "amount": body.get("amount")}
    price = ctx.settings.trial_price_fen
    if sent_fen is not None and sent_fen != price:
        await run_in_transaction(ctx, _record_amount_mismatch, user_id, actor, snapshot, sent_fen, price)
        raise errors.amount_mismatch()
    if idem_key is not None and not (1 <= len(idem_key) <= 128):
        raise errors.invalid_request("Idempotency-Key 长度必须在 1 到 128 之间")
    request_hash = hashlib.sha256(json.dumps([schedule_id, sent_fen]).encode()).hexdigest()
    # One request per schedule at a time from this process goes to the schedule's row lock; the others wait here,
    # for nothing but a local lock, and look again (one unlocked read) when their turn comes: in a rush, once the
    # seats are gone, they are answered without ever queueing on the database.
    try:
        async with _schedule_gate(schedule_id):
            status, order, reservation = await _create_in_turn(ctx, user_id, schedule_id, idem_key, request_hash,
                                                               actor, snapshot)
    except errors.ServiceError as e:
        if e.code != "SOLD_OUT":
            raise
        status = SOLD_OUT
    if status == SOLD_OUT:  # the other sessions are looked up after every lock and the gate are let go
        raise await alternatives.sold_out(schedule_id)
    if reservation is not None:
        return status, serialize(order, reservation)
    return status, await order_view(order)
