"""Liveness, readiness and metrics."""
from __future__ import annotations

import ipaddress

from models import DATABASE_UNAVAILABLE
from services import health
from services.bills import views as bills
from telemetry import metrics

from .base import BaseHandler
from .clientip import UNTRUSTED_FORWARDING


class HealthHandler(BaseHandler):
    """200 while the process runs."""

    def get(self):
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    """200 when MySQL answers; the body names each dependency's state (Redis is optional for payments), and
    `trusted_proxies` once a request came with X-Forwarded-For from a peer outside TRUSTED_PROXIES."""

    async def get(self):
        ready, state = await health.readiness(self.ctx)
        if self.ctx.forwarded_for.seen:  # only then: the body is the contract's while all is well
            state["trusted_proxies"] = UNTRUSTED_FORWARDING
        self.write_json(state, 200 if ready else 503)


class MetricsHandler(BaseHandler):
    """GET /metrics: Prometheus text for every process on the port, to METRICS_ALLOW clients only (else 404)."""

    async def get(self):
        ip = ipaddress.ip_address(self.client_ip)
        if not any(ip in net for net in self.ctx.settings.metrics_allow if net.version == ip.version):
            self.write_json({"error": {"code": "NOT_FOUND", "message": "接口不存在"}}, 404)
            return
        await health.refresh_gauges(self.ctx)
        try:
            await bills.refresh_gauges()
        except DATABASE_UNAVAILABLE:  # MySQL down: the other figures still answer (gym_dependency_up says why)
            pass
        body, content_type = metrics.render()
        self.set_header("Content-Type", content_type)
        self.finish(body)
