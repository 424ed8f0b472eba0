"""Liveness and readiness."""
from __future__ import annotations

from models import database

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
