"""Retention: after PERSONAL_DATA_RETENTION_DAYS the personal parts of the audit rows (client address, user agent,
request and response snapshots) are erased, and the seals still verify.

The seal covers those parts only through their digest (seal.py), which stays. Each batch of erasures writes, in its
own transaction, a `personal_data_erased` audit row (sealed like any other) whose detail names what it allows:
`{"before": <time>, "through_id": <id>, "last": [<created_at>, <id>], "rows": <n>}` — empty personal parts in sealed
rows up to `through_id` created before `before`. Verify accepts an erased row only under such a cover, so erasing by
hand (or too early) still shows. `last` is where the next batch starts. Only sealed rows are erased (their digest is
made), oldest first.

The notification inbox (`wechatpay_notifications`) keeps no client address, user agent or snapshot: what WeChat Pay
sent stands in the audit rows written for it (actor `wechat`), erased with them.
"""
from __future__ import annotations

import datetime as dt
import json
import logging

from models import database, utcnow
from models.prepared import Prepared

from .. import audit
from .seal import PERSONAL_COLUMNS

log = logging.getLogger("gym.audit_trail")

ERASED_ACTION = "personal_data_erased"
BATCH = 1000
MAX_BATCHES = 20  # a call erases at most this many batches; the next hourly run goes on

LAST_ERASURE = Prepared("SELECT `action_detail` FROM `payment_audit_log` WHERE `action_type` = %s "
                        "ORDER BY `id` DESC LIMIT 1")
FROM_THE_FIRST = Prepared("SELECT `id`, `created_at` FROM `payment_audit_log` WHERE `created_at` < %s "
                          "ORDER BY `created_at`, `id` LIMIT %s")
AFTER_MARK = Prepared("SELECT `id`, `created_at` FROM `payment_audit_log` WHERE `created_at` < %s "
                      "AND (`created_at` > %s OR (`created_at` = %s AND `id` > %s)) "
                      "ORDER BY `created_at`, `id` LIMIT %s")
SEALED_THROUGH = Prepared("SELECT `through_id` FROM `audit_seal_head` WHERE `id` = 1")
_ERASE = ", ".join(f"`{c}` = NULL" for c in PERSONAL_COLUMNS)


def _stamp(value: dt.datetime) -> str:
    return value.isoformat(timespec="microseconds")


async def _mark():
    """(created_at, id) of the last row the previous batch erased, or None."""
    found = await LAST_ERASURE.rows(ERASED_ACTION)
    if not found:
        return None
    try:
        at, row_id = json.loads(found[0][0])["last"]
        return dt.datetime.fromisoformat(at), int(row_id)
    except (TypeError, ValueError, KeyError):
        log.warning("the last personal_data_erased row has no readable mark; starting from the oldest row")
        return None


async def erase_expired(days: int, now: dt.datetime | None = None) -> int:
    """Erase the personal parts of the sealed rows older than `days`; how many rows were erased."""
    before = (now or utcnow()) - dt.timedelta(days=days)
    mark = await _mark()
    erased = 0
    for _ in range(MAX_BATCHES):
        if mark is None:
            rows = await FROM_THE_FIRST.rows(before, BATCH)
        else:
            rows = await AFTER_MARK.rows(before, mark[0], mark[0], mark[1], BATCH)
        sealed_through = (await SEALED_THROUGH.rows())[0][0]
        batch = []
        for row_id, created_at in rows:
            if row_id > sealed_through:
                break  # not sealed yet: its digest is not made; erased once it is
            batch.append((row_id, created_at))
        if not batch:
            break
        mark = (batch[-1][1], batch[-1][0])
        ids = [row_id for row_id, _ in batch]
        detail = {"before": _stamp(before), "through_id": max(ids), "last": [_stamp(mark[0]), mark[1]],
                  "rows": len(ids)}
        async with database.aio_atomic():
            await database.aio_execute_sql(
                f"UPDATE `payment_audit_log` SET {_ERASE} WHERE `id` IN ({', '.join(['%s'] * len(ids))}) "
                "AND `seal` IS NOT NULL", ids)
            await audit.record(ERASED_ACTION, audit.SYSTEM, entity="audit", detail=json.dumps(detail))
        erased += len(ids)
        if len(batch) < len(rows) or len(rows) < BATCH:
            break
    if erased:
        log.info("personal data erased from %d audit rows created before %s", erased, _stamp(before))
    return erased
