"""What /readyz and /metrics ask of the service: whether MySQL and Redis answer, and the gauges read at a scrape."""
from __future__ import annotations

from models import PaymentOrder, database, utcnow
from models.prepared import Prepared
from telemetry import metrics

from .lifecycle.statuses import REFUND_REQUIRED

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
