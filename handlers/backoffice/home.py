"""The home page: today's figures, and what waits for a person now."""
from __future__ import annotations

from services.backoffice import figures
from services.bills import views as bills
from services.frontdesk import attendance
from telemetry import metrics

from .base import PageHandler


class HomeHandler(PageHandler):
    """GET /admin/: today's bookings and money, the no-show rate; refunds waiting, refused notifications, ABNORMAL
    refunds; for finance, a banner when a day's bill has undecided discrepancies or yesterday's is not reconciled by
    noon."""

    rights = {"GET": "home"}

    async def get(self):
        banner = await bills.banner(self.ctx.settings) if self.may("bills") else None
        self.render("home.html", today=await figures.today(), health=metrics.business_figures(), bills=banner,
                    no_show=await attendance.no_show_rate())
