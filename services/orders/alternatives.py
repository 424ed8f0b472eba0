"""Other sessions offered when one is full: SOLD_OUT's `alternatives` (contract §2), up to three other upcoming
sessions with a seat left, nearest in start time (before or after) to the one asked for.

One read computes them (the seats counted by services.lifecycle.seats' own SQL). A refusal in a rush would repeat
it thousands of times a second for the same session, so each process keeps the answer of a session for one second:
an alternative is a suggestion, and booking it is decided afresh under its own lock.
"""
from __future__ import annotations

import time

import errors
from models import utcnow
from models.prepared import Prepared

from ..formats import iso
from ..lifecycle.seats import taken_sql

MAX_ALTERNATIVES = 3
CACHE_SECONDS = 1.0
CACHE_SIZE = 1000

# Parameters: now (the seats taken), now (upcoming), the session asked for, another to leave out (or 0), its start.
NEAREST = Prepared(
    "SELECT s.`id`, s.`title`, s.`starts_at`, s.`capacity` - " + taken_sql("s") + " AS `remaining` "
    "FROM `course_schedules` s WHERE s.`starts_at` > %s AND s.`id` <> %s AND s.`id` <> %s HAVING `remaining` > 0 "
    f"ORDER BY ABS(TIMESTAMPDIFF(MICROSECOND, s.`starts_at`, %s)), s.`starts_at`, s.`id` LIMIT {MAX_ALTERNATIVES}",
    ("id", "title", "starts_at", "remaining"))
STARTS_AT = Prepared("SELECT `starts_at` FROM `course_schedules` WHERE `id` = %s", ("starts_at",))

_cache: dict = {}  # (schedule id, left out) -> (monotonic time, alternatives)


def serialize(row) -> dict:
    """One alternative as the contract spells it."""
    return {"id": row.id, "title": row.title, "starts_at": iso(row.starts_at), "remaining": int(row.remaining)}


async def nearest(schedule_id: int, leave_out: int | None = None) -> list[dict]:
    """Up to three other upcoming sessions with a seat left, nearest in start time to `schedule_id` first (empty
    when the session is unknown or none has a seat); `leave_out` names one more session not to offer."""
    key = (schedule_id, leave_out)
    seen = _cache.get(key)
    if seen is not None and time.monotonic() - seen[0] < CACHE_SECONDS:
        return seen[1]
    asked = await STARTS_AT.first(schedule_id)
    found = []
    if asked is not None:
        now = utcnow()
        found = [serialize(r) for r in await NEAREST.objects(now, now, schedule_id, leave_out or 0, asked.starts_at)]
    if len(_cache) >= CACHE_SIZE:
        _cache.clear()
    _cache[key] = (time.monotonic(), found)
    return found


async def sold_out(schedule_id: int, leave_out: int | None = None):
    """409 SOLD_OUT for `schedule_id`, with its alternatives."""
    return errors.sold_out(await nearest(schedule_id, leave_out))
