"""What /readyz and /metrics ask of the service: whether MySQL and Redis answer, and the gauges read at a scrape."""
from __future__ import annotations

import logging

from models import PaymentOrder, database, personal_data, utcnow
from models.data_key_rotation import under_no_loaded_key
from models.prepared import Prepared
from telemetry import metrics

from .lifecycle.statuses import REFUND_REQUIRED

log = logging.getLogger("gym.health")

OLDEST_UNSEALED = Prepared("SELECT `created_at` FROM `payment_audit_log` WHERE `id` > "
                           "(SELECT `through_id` FROM `audit_seal_head` WHERE `id` = 1) ORDER BY `id` LIMIT 1")


async def dependency_states(ctx) -> dict:
    """{"mysql": bool, "redis": bool}: whether each answers now."""
    up = {}
    try:
        await database.aio_execute_sql("SELECT 1")
        up["mysql"] = True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        up["mysql"] = False
    try:
        await ctx.redis.ping()
        up["redis"] = True
    except Exception:  # noqa: BLE001
        up["redis"] = False
    return up


async def check_data_keys() -> int:
    """At start: count the stored personal data no loaded data key reads, say so loudly, and export the count.

    Such rows come back after a restore of a backup taken before a data-key change (docs/deploy.md section 16), or
    from a wrong DATA_KEY_FILE. Their parents are not found at login and would become second users (a second trial
    class); the service still serves (payments, notifications and the back office need no openid), and the alert
    GymPersonalDataUnreadable fires until the missing key is given as DATA_KEY_PREVIOUS_FILE. Returns the count (0
    when the database could not be asked: the next start asks again)."""
    try:
        counts = await under_no_loaded_key(personal_data.keyring())
    except Exception as e:  # noqa: BLE001 - a start with MySQL away must not fail on this check
        log.warning("could not check which data keys the stored personal data is under: %s", e)
        return 0
    total = sum(counts.values())
    metrics.PERSONAL_DATA_UNREADABLE.set(total)
    if total:
        log.error("%d stored value(s) are under a data key this service was not given (%s): their parents would "
                  "log in as new users. Give that key as DATA_KEY_PREVIOUS_FILE (a restored backup from before a "
                  "key change: docs/deploy.md section 16), then run manage.py rotate-data-key", total,
                  ", ".join(f"{name} {count}" for name, count in counts.items() if count))
    return total


async def readiness(ctx) -> tuple[bool, dict]:
    """(ready, body) of /readyz: ready when MySQL answers; the body names each dependency's state."""
    up = await dependency_states(ctx)
    return up["mysql"], {name: "ok" if ok else "down" for name, ok in up.items()}


async def refresh_gauges(ctx):
    """Set the gauges that are read from the state at each scrape: dependencies, refund_required orders, the audit
    trail's seal lag, the pool, the admission budgets."""
    up = await dependency_states(ctx)
    for name, ok in up.items():
        metrics.DEPENDENCY_UP.labels(name).set(1 if ok else 0)
    if up["mysql"]:
        metrics.REFUND_REQUIRED.set(await PaymentOrder.select().where(
            PaymentOrder.status == REFUND_REQUIRED).aio_count())
        oldest = await OLDEST_UNSEALED.rows()
        metrics.AUDIT_SEAL_LAG.set(max(0.0, (utcnow() - oldest[0][0]).total_seconds()) if oldest else 0.0)
    pool = getattr(database, "pool_backend", None)
    if pool is not None and getattr(pool, "pool", None) is not None:
        size, free = pool.pool.size, pool.pool.freesize
        metrics.DB_POOL.labels("used").set(size - free)
        metrics.DB_POOL.labels("free").set(free)
    if ctx.admission is not None:
        for name, budget in ctx.admission.budgets.items():
            metrics.ADMISSION_SLOTS.labels(name, "in_use").set(budget.in_use)
            metrics.ADMISSION_SLOTS.labels(name, "waiting").set(budget.waiting)
