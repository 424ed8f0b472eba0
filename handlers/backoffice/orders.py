"""Orders: the list (filters, search, cursor paging), the refund_required queue, and one order's story."""
from __future__ import annotations

import errors
from services.backoffice import queries
from services.paging import EMPTY_PAGE
from services.lifecycle.statuses import ORDER_STATUSES, REFUND_REQUIRED
from services.orders import schedules

from .base import PageHandler
from .refund_dialog import refundable_in


SCHEDULE_CHOICES = 200  # the schedule filter offers the newest schedules


class OrdersHandler(PageHandler):
    """GET /admin/orders?status=&course_schedule_id=&q=&cursor= (every role reads orders)."""

    rights = {"GET": "orders.read"}

    async def get(self):
        args = self.args("status", "course_schedule_id", "q")
        found, error, status = EMPTY_PAGE, None, 200
        try:
            found = await queries.search_orders(args, self.operator.role)
        except errors.ServiceError as e:  # an unknown filter value: say so above an empty list
            error, status = e.message, e.status
        schedules_offered = [] if self.wants("results") else (await schedules.page_schedules(
            self.ctx.settings, {"limit": str(SCHEDULE_CHOICES)}))["items"]
        self.show("orders.html", "_orders_table.html", "results", status, found=found, args=args, error=error,
                  schedules_offered=schedules_offered, statuses=ORDER_STATUSES)


class QueueHandler(PageHandler):
    """GET /admin/queue: paid orders that found no seat (refund_required), waiting for a refund."""

    rights = {"GET": "refund"}

    async def get(self):
        args = self.args()
        found = await queries.search_orders({**args, "status": REFUND_REQUIRED}, self.operator.role)
        self.show("queue.html", "_orders_table.html", "results", found=found, error=None)


class OrderHandler(PageHandler):
    """GET /admin/orders/{order_id}: the order, its parent, schedule, timeline, notifications, payment, refunds."""

    rights = {"GET": "orders.read"}

    async def get(self, order_id):
        story = await queries.order_story(order_id, self.operator.role)
        refundable = refundable_in(story) if self.may("refund") else 0
        self.show("order.html", "_story.html", "story", story=story, refundable=refundable)
