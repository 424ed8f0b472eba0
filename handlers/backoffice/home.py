"""The home page: today's figures, and what waits for a person now."""
from __future__ import annotations

from services.backoffice import figures
from telemetry import metrics

from .base import PageHandler


class HomeHandler(PageHandler):
    """GET /admin/: today's bookings and money; refunds waiting, refused notifications, ABNORMAL refunds."""

    rights = {"GET": "home"}

    async def get(self):
        self.render("home.html", today=await figures.today(), health=metrics.business_figures())
