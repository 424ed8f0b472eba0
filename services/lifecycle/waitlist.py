"""Waitlist entries: every status change, each with its audit row, and the offer of freed seats to the line.

Entry: (new) -> waiting -> offered -> booked | lapsed | left;   waiting -> left;   waiting -> lapsed (the session
started before a seat freed)

A seat frees when a hold is released (cancel, failure, expiry), a seat is refunded, a capacity is raised, a booking
is rescheduled away, or an offer lapses or is left. Whoever frees one calls offer_free_seats in the same
transaction: under the schedule's row lock it lapses the offers whose time ran out, counts the seats (kept ones
included, services.lifecycle.seats) and keeps each free seat for the next waiting entry, first come first offered.
Being in the same transaction as the change that freed the seat, the offer is made exactly once, by whichever
process freed it, and a kill -9 leaves either both or neither. Booking runs it too, under the same lock, before it
counts: a seat that came free without a transaction (a hold that lapsed by its time) goes to the line, never to
whoever asks first; and the reconciler's pass sweeps the schedules that still have one (services.waitlist.sweep).

Call inside services.uow.run_in_transaction; the lock order is services.lifecycle.locks' (schedule, then entries).
"""
from __future__ import annotations

import datetime as dt

from models import PaymentOrder, WaitlistEntry, utcnow
from models.prepared import Prepared

from .. import audit
from ..formats import iso
from ..messages.subscribe_messages import queue_waitlist_message
from .locks import lock_live_entries, lock_schedule
from .seats import SEATS_TAKEN, offer_lapsed
from .statuses import (
    BOOKED, LAPSED, LEFT, OFFERED, PAID, WAITING, WAITLIST_LIVE, WAITLIST_TRANSITIONS, IllegalTransition, check,
    sql_in,
)


async def open_entry(uow, user_id, schedule, actor, now) -> WaitlistEntry:
    """The first state: the parent waits for a seat of the (full, locked) schedule. A second live entry of the same
    parent and schedule breaks the unique key (IntegrityError): the caller answers with the first."""
    entry = WaitlistEntry(course_schedule=schedule.id, user=user_id, status=WAITING, live_user=user_id,
                          created_at=now, updated_at=now)
    await entry.aio_save(force_insert=True)
    await audit.record("waitlist_joined", actor, entity="waitlist", new_status=WAITING, user_id=user_id,
                       detail=f"waitlist entry {entry.id}, schedule {schedule.id}")
    return entry


async def set_entry_status(uow, entry, new_status, actor, action, *, order=None, detail=None, **fields):
    """Move the entry to new_status if it is still in its current one; writes the audit row (on `order`'s
    timeline too when an order took the kept seat)."""
    old = entry.status
    if order is not None:
        fields["order"] = order.id
    check(WAITLIST_TRANSITIONS, "waitlist entry", str(entry.id), old, new_status)
    now = utcnow()
    live = new_status in WAITLIST_LIVE
    changes = {"status": new_status, "updated_at": now, "live_user": entry.user_id if live else None, **fields}
    if not live:
        changes.setdefault("ended_at", now)
    rows = await WaitlistEntry.update(**changes).where(
        (WaitlistEntry.id == entry.id) & (WaitlistEntry.status == old)).aio_execute()
    if rows != 1:
        raise IllegalTransition(f"waitlist entry {entry.id} changed under us")
    for key, value in changes.items():
        setattr(entry, key, value)
    await audit.record(action, actor, order=order, entity="waitlist", old_status=old, new_status=new_status,
                       user_id=entry.user_id, detail=f"waitlist entry {entry.id}, schedule {entry.course_schedule_id}"
                       + (f": {detail}" if detail else ""))


async def kept_for(user_id, schedule_pk) -> WaitlistEntry | None:
    """The parent's entry a seat of the schedule is kept for, locked (the schedule's row is locked already)."""
    return await WaitlistEntry.select().where(
        (WaitlistEntry.course_schedule == schedule_pk) & (WaitlistEntry.user == user_id)
        & (WaitlistEntry.status == OFFERED)).for_update().aio_first()


async def take_kept_seat(uow, entry, order, actor):
    """The offered parent's new order takes the seat kept for them (its hold counts instead, in this transaction)."""
    await set_entry_status(uow, entry, BOOKED, actor, "waitlist_booked", order=order,
                           detail=f"order {order.order_id} took the kept seat")


async def _trial_taken(user_ids) -> set:
    """The parents among `user_ids` whose one trial is paid (an offer to them could never be taken)."""
    if not user_ids:
        return set()
    return {o.user_id for o in await PaymentOrder.select(PaymentOrder.user).where(
        PaymentOrder.user.in_(list(user_ids)) & (PaymentOrder.status == PAID)).aio_execute()}


# Is there a line at all? (an unlocked look, so that a seat freed where nobody waits costs one read, no lock).
HAS_LINE = Prepared(f"SELECT 1 FROM `waitlist_entries` w WHERE w.`course_schedule_id` = %s AND "
                    f"{sql_in('w.`status`', WAITLIST_LIVE)} LIMIT 1")


async def seat_freed(uow, schedule_pk) -> int:
    """A seat of the schedule came free in this transaction: kept for the next in line, if anyone waits.

    The look for a line is not locked: an entry joining at this very moment (counting this seat as still taken)
    is offered the seat by the next booking attempt on the session or by the reconciler's sweep, never skipped.
    """
    if not await HAS_LINE.first(schedule_pk):
        return 0
    return await offer_free_seats(uow, schedule_pk)


async def offer_free_seats(uow, schedule_pk, now=None) -> int:
    """Under the schedule's row lock: lapse the offers whose time ran out, then keep each free seat for the next
    waiting entry (候补成功 queued for each). Entries of a session that has started lapse. Returns the offers made.
    The system acts here, whoever freed the seat: the audit rows name the waiting parent, not the one who left."""
    settings = uow.settings
    now = now or utcnow()
    schedule = await lock_schedule(schedule_pk)
    if schedule is None:
        return 0
    entries = await lock_live_entries(schedule.id)
    if not entries:
        return 0
    if schedule.starts_at <= now:
        for entry in entries:
            await set_entry_status(uow, entry, LAPSED, audit.SYSTEM, "waitlist_lapsed", detail="the session started")
        return 0
    for entry in entries:
        if offer_lapsed(entry, now):
            await set_entry_status(uow, entry, LAPSED, audit.SYSTEM, "waitlist_offer_lapsed",
                                   detail=f"not taken by {iso(entry.offer_expires_at)}")
    taken = (await SEATS_TAKEN.rows(now, schedule.id))[0][0]
    free = schedule.capacity - taken
    waiting = [e for e in entries if e.status == WAITING]
    if free <= 0 or not waiting:
        return 0
    booked_elsewhere = await _trial_taken({e.user_id for e in waiting})
    offered = 0
    for entry in waiting:
        if offered >= free:
            break
        if entry.user_id in booked_elsewhere:
            await set_entry_status(uow, entry, LEFT, audit.SYSTEM, "waitlist_left",
                                   detail="the parent's trial is booked elsewhere")
            continue
        until = now + dt.timedelta(seconds=settings.waitlist_offer_seconds)
        await set_entry_status(uow, entry, OFFERED, audit.SYSTEM, "waitlist_offered", offered_at=now,
                               offer_expires_at=until, detail=f"a seat kept until {iso(until)}")
        await queue_waitlist_message(settings, entry)
        uow.message_queued()
        offered += 1
    return offered
