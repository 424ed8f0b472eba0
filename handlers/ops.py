"""Liveness, readiness and metrics."""
from __future__ import annotations

import ipaddress

from models import PaymentOrder, database
from telemetry import metrics

from .base import BaseHandler


class HealthHandler(BaseHandler):
    """200 while the process runs."""

    def get(self):
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    """200 when MySQL answers; the body names each dependency's state (Redis is optional for payments)."""

    async def get(self):
        state = {"mysql": "ok", "redis": "ok"}
        try:
            await database.aio_execute_sql("SELECT 1")
        except Exception:  # noqa: BLE001
            state["mysql"] = "down"
        try:
            await self.ctx.redis.ping()
        except Exception:  # noqa: BLE001
            state["redis"] = "down"
        self.write_json(state, 200 if state["mysql"] == "ok" else 503)


async def dependency_states(ctx) -> dict:
    """{"mysql": bool, "redis": bool}: whether each answers now."""
    up = {}
    try:
        await database.aio_execute_sql("SELECT 1")
        up["mysql"] = True
    except Exception:  # noqa: BLE001
        up["mysql"] = False
    try:
        await ctx.redis.ping()
        up["redis"] = True
    except Exception:  # noqa: BLE001
        up["redis"] = False
    return up


class MetricsHandler(BaseHandler):
    """GET /metrics: Prometheus text for every process on the port, to METRICS_ALLOW clients only (else 404)."""

    async def get(self):
        ip = ipaddress.ip_address(self.client_ip)
        if not any(ip in net for net in self.ctx.settings.metrics_allow if net.version == ip.version):
            self.set_status(404)
            self.write_json({"error": {"code": "NOT_FOUND", "message": "接口不存在"}}, 404)
            return
        up = await dependency_states(self.ctx)
        for name, ok in up.items():
            metrics.DEPENDENCY_UP.labels(name).set(1 if ok else 0)
        if up["mysql"]:
            metrics.REFUND_REQUIRED.set(
                await PaymentOrder.select().where(PaymentOrder.status == "refund_required").aio_count())
        pool = getattr(database, "pool_backend", None)
        if pool is not None and getattr(pool, "pool", None) is not None:
            size, free = pool.pool.size, pool.pool.freesize
            metrics.DB_POOL.labels("used").set(size - free)
            metrics.DB_POOL.labels("free").set(free)
        body, content_type = metrics.render()
        self.set_header("Content-Type", content_type)
        self.finish(body)
