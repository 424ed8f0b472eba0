"""Schedules (schedules) and their seats left."""
from __future__ import annotations

import errors
from models import CourseSchedule, utcnow

from .. import audit
from ..formats import iso, parse_iso, yuan
from ..lifecycle.locks import lock_schedule
from ..lifecycle.seats import seats_confirmed, taken_by_schedule
from ..lifecycle.waitlist import offer_free_seats
from ..paging import page, parse_limit
from ..uow import run_in_transaction


def serialize(schedule, taken: int, price_fen: int) -> dict:
    """The contract's schedule object."""
    return {
        "id": schedule.id, "title": schedule.title, "starts_at": iso(schedule.starts_at),
        "capacity": schedule.capacity, "remaining": max(schedule.capacity - taken, 0),
        "price_fen": price_fen, "price": yuan(price_fen),
    }


def has_started(schedule: dict) -> bool:
    """True when a schedule object's session has started."""
    return parse_iso(schedule["starts_at"]) <= utcnow()


async def list_schedules(settings, upcoming_only=True) -> list[dict]:
    """Schedules by start time (upcoming only for parents), each with seats left."""
    query = CourseSchedule.select().order_by(CourseSchedule.starts_at, CourseSchedule.id)
    if upcoming_only:
        query = query.where(CourseSchedule.starts_at > utcnow())
    schedules = list(await query.aio_execute())
    taken = await taken_by_schedule([s.id for s in schedules])
    return [serialize(s, taken.get(s.id, 0), settings.trial_price_fen) for s in schedules]


async def page_schedules(settings, args: dict) -> dict:
    """The operators' list: every schedule, newest first, paged."""
    rows, cursor = await page(CourseSchedule.select(), CourseSchedule.id, parse_limit(args.get("limit")),
                              args.get("cursor"))
    taken = await taken_by_schedule([s.id for s in rows])
    return {"items": [serialize(s, taken.get(s.id, 0), settings.trial_price_fen) for s in rows],
            "next_cursor": cursor}


async def get_schedule(settings, schedule_id) -> dict:
    """One schedule with seats left; 404 when unknown."""
    schedule = await CourseSchedule.select().where(CourseSchedule.id == schedule_id).aio_first()
    if schedule is None:
        raise errors.not_found("课程不存在")
    taken = await taken_by_schedule([schedule.id])
    return serialize(schedule, taken.get(schedule.id, 0), settings.trial_price_fen)


def parse_schedule_input(body: dict):
    """Validated (title, starts_at, capacity) from an operator's request; 400 otherwise."""
    title = body.get("title")
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > 127:
        raise errors.invalid_request("title 必须是 1 到 127 个字符", field="title")
    starts_raw = body.get("starts_at")
    try:
        if not isinstance(starts_raw, str):
            raise ValueError
        starts_at = parse_iso(starts_raw)
    except ValueError:
        raise errors.invalid_request("starts_at 必须是带时区的 ISO 8601 时间", field="starts_at") from None
    capacity = body.get("capacity")
    if not isinstance(capacity, int) or isinstance(capacity, bool) or not 1 <= capacity <= 1000:
        raise errors.invalid_request("capacity 必须是 1 到 1000 的整数", field="capacity")
    return title.strip(), starts_at, capacity


async def _create(uow, title, starts_at, capacity, operator_id, actor):
    schedule_id = await CourseSchedule.insert(title=title, starts_at=starts_at, capacity=capacity,
                                              created_by=operator_id).aio_execute()
    await audit.record("schedule_created", actor, entity="schedule", new_status=str(capacity),
                       detail=f"schedule {schedule_id}: {title} at {iso(starts_at)}, {capacity} seats")
    return schedule_id


async def create_schedule(ctx, body: dict, operator_id: int | None, actor) -> dict:
    """Create a schedule (audited with the operator and IP)."""
    title, starts_at, capacity = parse_schedule_input(body)
    schedule_id = await run_in_transaction(ctx, _create, title, starts_at, capacity, operator_id, actor)
    return await get_schedule(ctx.settings, schedule_id)


async def _change(uow, schedule_id, capacity, title, actor):
    schedule = await lock_schedule(schedule_id)
    if schedule is None:
        raise errors.not_found("课程不存在")
    changes = {"updated_at": utcnow()}
    if capacity is not None and capacity != schedule.capacity:
        confirmed = await seats_confirmed(schedule.id)
        if capacity < confirmed:
            raise errors.ServiceError(409, "CAPACITY_BELOW_CONFIRMED", f"已有 {confirmed} 个确认的预约，名额不能少于此数")
        changes["capacity"] = capacity
        await audit.record("schedule_capacity_changed", actor, entity="schedule", old_status=str(schedule.capacity),
                           new_status=str(capacity), detail=f"schedule {schedule.id}")
    if title is not None and title != schedule.title:
        changes["title"] = title
        await audit.record("schedule_title_changed", actor, entity="schedule", detail=f"schedule {schedule.id}: "
                           f"{schedule.title} -> {title}")
    await CourseSchedule.update(**changes).where(CourseSchedule.id == schedule.id).aio_execute()
    if capacity is not None and capacity > schedule.capacity:
        await offer_free_seats(uow, schedule.id)  # the new seats go to the waitlist's first in line


async def change_schedule(ctx, schedule_id: int, body: dict, actor) -> dict:
    """An operator changes a schedule's capacity (never below its confirmed bookings; holds may exceed it) or
    title."""
    capacity, title = body.get("capacity"), body.get("title")
    if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool)
                                 or not 0 <= capacity <= 1000):
        raise errors.invalid_request("capacity 必须是 0 到 1000 的整数", field="capacity")
    if title is not None and (not isinstance(title, str) or not title.strip() or len(title.strip()) > 127):
        raise errors.invalid_request("title 必须是 1 到 127 个字符", field="title")
    await run_in_transaction(ctx, _change, schedule_id, capacity, title.strip() if title else None, actor)
    return await get_schedule(ctx.settings, schedule_id)
