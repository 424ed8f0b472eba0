"""The parents' waitlist (contract §2 Waitlist): join a full session's line, leave it, see where one stands.

Joining and leaving take the schedule's row lock, then its entries (services.lifecycle.locks, steps 3 and 4); the
status changes are services.lifecycle.waitlist's.
"""
from __future__ import annotations

import peewee
from peewee import fn

import errors
from models import PaymentOrder, WaitlistEntry, utcnow

from ..formats import iso
from ..lifecycle.locks import lock_entry, lock_schedule
from ..lifecycle.seats import SEATS_TAKEN
from ..lifecycle.statuses import LEFT, PAID, PENDING, WAITING, WAITLIST_LIVE
from ..lifecycle.waitlist import offer_free_seats, open_entry, set_entry_status
from ..orders.booking import parse_schedule_id
from ..uow import run_in_transaction


def serialize(entry, position=None) -> dict:
    """The contract's entry object; `position` (1 for the next in line) only while waiting."""
    return {"id": entry.id, "course_schedule_id": entry.course_schedule_id, "status": entry.status,
            "position": position if entry.status == WAITING else None,
            "offer_expires_at": iso(entry.offer_expires_at), "created_at": iso(entry.created_at)}


async def positions(entries) -> dict:
    """entry id -> its place in its session's line (1: next), for the waiting ones (one query per session)."""
    found = {}
    for entry in entries:
        if entry.status == WAITING:
            found[entry.id] = await WaitlistEntry.select().where(
                (WaitlistEntry.course_schedule == entry.course_schedule_id) & (WaitlistEntry.status == WAITING)
                & (WaitlistEntry.id <= entry.id)).aio_count()
    return found


async def view(entry) -> dict:
    """One entry as the API shows it, its position read now."""
    return serialize(entry, (await positions([entry])).get(entry.id))


async def _live_entry(user_id, schedule_id):
    return await WaitlistEntry.select().where(
        (WaitlistEntry.course_schedule == schedule_id) & (WaitlistEntry.user == user_id)
        & WaitlistEntry.status.in_(WAITLIST_LIVE)).aio_first()


async def _join(uow, user_id, schedule_id, actor):
    now = utcnow()
    # The trial rules of order creation first: a parent whose trial is paid has nothing to wait for. Their own
    # unpaid order on this very session already holds a seat: that order is the answer. (An open order elsewhere
    # does not stop a parent from waiting.)
    orders = list(await PaymentOrder.select(PaymentOrder.order_id, PaymentOrder.status,
                                            PaymentOrder.course_schedule).where(
        (PaymentOrder.user == user_id) & PaymentOrder.status.in_((PENDING, PAID))).aio_execute())
    if any(o.status == PAID for o in orders):
        raise errors.trial_already_booked()
    mine = [o for o in orders if o.course_schedule_id == schedule_id]
    if mine:
        raise errors.pending_order_exists(mine[0].order_id)
    entry = await _live_entry(user_id, schedule_id)
    if entry is not None:
        return 200, entry
    schedule = await lock_schedule(schedule_id)
    if schedule is None:
        raise errors.not_found("课程不存在")
    if schedule.starts_at <= now:
        raise errors.ServiceError(409, "SCHEDULE_CLOSED", "该课程已开始，无法预约")
    await offer_free_seats(uow, schedule.id, now)  # a seat come free goes to those already in line
    taken, _ = (await SEATS_TAKEN.rows(now, schedule.id))[0]
    if taken < schedule.capacity:
        raise errors.seats_available()
    return 201, await open_entry(uow, user_id, schedule, actor, now)


async def join_waitlist(ctx, user_id: int, body: dict, actor) -> tuple[int, dict]:
    """POST /api/v1/waitlist: (201, the new entry), or (200, the entry the parent already has on that session)."""
    schedule_id = parse_schedule_id(body.get("course_schedule_id"))
    for attempt in range(2):
        try:
            status, entry = await run_in_transaction(ctx, _join, user_id, schedule_id, actor)
            return status, await view(entry)
        except peewee.IntegrityError:
            # The same parent's other request joined first (one live entry per parent and session): answer with it.
            if attempt:
                raise
    raise AssertionError("unreachable")


async def list_entries(user_id: int) -> list[dict]:
    """GET /api/v1/waitlist: the caller's entries, newest first."""
    entries = list(await WaitlistEntry.select().where(WaitlistEntry.user == user_id)
                   .order_by(WaitlistEntry.id.desc()).limit(100).aio_execute())
    places = await positions(entries)
    return [serialize(e, places.get(e.id)) for e in entries]


async def _user_entry(user_id, entry_id: int) -> WaitlistEntry:
    if not 1 <= entry_id <= 2 ** 62:
        raise errors.not_found("候补记录不存在")
    entry = await WaitlistEntry.select().where((WaitlistEntry.id == int(entry_id))
                                               & (WaitlistEntry.user == user_id)).aio_first()
    if entry is None:
        raise errors.not_found("候补记录不存在")
    return entry


async def _leave(uow, entry_pk, actor):
    seen = await WaitlistEntry.select(WaitlistEntry.course_schedule).where(WaitlistEntry.id == entry_pk).aio_get()
    await lock_schedule(seen.course_schedule_id)  # step 3, then the entry (step 4)
    entry = await lock_entry(entry_pk)
    if entry.status not in WAITLIST_LIVE:
        return entry  # booked, lapsed or left already: answered as it stands
    kept = entry.status != WAITING
    await set_entry_status(uow, entry, LEFT, actor, "waitlist_left", detail="the parent left the line")
    if kept:
        await offer_free_seats(uow, entry.course_schedule_id)  # the seat kept for them passes on at once
    return entry


async def leave_waitlist(ctx, user_id: int, entry_id: int, actor) -> dict:
    """DELETE /api/v1/waitlist/{id}: the entry, now `left` (or unchanged when it was no longer in the line)."""
    entry = await _user_entry(user_id, entry_id)
    if entry.status in WAITLIST_LIVE:
        entry = await run_in_transaction(ctx, _leave, entry.id, actor)
    return await view(entry)


async def schedule_line(schedule_id: int) -> list[dict]:
    """A session's waitlist, first in line first: the entries still in it, then the last 50 that left it."""
    live = list(await WaitlistEntry.select().where(
        (WaitlistEntry.course_schedule == schedule_id) & WaitlistEntry.status.in_(WAITLIST_LIVE))
        .order_by(WaitlistEntry.id).aio_execute())
    ended = list(await WaitlistEntry.select().where(
        (WaitlistEntry.course_schedule == schedule_id) & WaitlistEntry.status.not_in(WAITLIST_LIVE))
        .order_by(WaitlistEntry.id.desc()).limit(50).aio_execute())
    position, items = 0, []
    for entry in live + ended:
        if entry.status == WAITING:
            position += 1
        items.append({**serialize(entry, position), "user_id": entry.user_id, "order_pk": entry.order_id})
    return items


async def count_waiting(schedule_ids) -> dict:
    """schedule id -> how many parents wait in its line (one query)."""
    if not schedule_ids:
        return {}
    rows = await (WaitlistEntry.select(WaitlistEntry.course_schedule, fn.COUNT(WaitlistEntry.id).alias("n"))
                  .where(WaitlistEntry.course_schedule.in_(list(schedule_ids)) & (WaitlistEntry.status == WAITING))
                  .group_by(WaitlistEntry.course_schedule).dicts().aio_execute())
    return {row["course_schedule"]: row["n"] for row in rows}
