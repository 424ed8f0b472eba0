"""GET /sandbox/: the test-mode dashboard of orders, refunds and notification deliveries, with buttons."""
from datetime import timedelta
from itertools import islice

from .. import clock, key_changes
from ..errors import SandboxError
from .base import BaseHandler

DEFAULT_LIMIT = 50


def newest(items, limit):
    """The last `limit` of an insertion-ordered collection, newest first."""
    return list(islice(reversed(items), limit))


class DashboardHandler(BaseHandler):
    """Newest first, `limit` of each (default 50); its buttons post forms to the control API."""

    def get(self):
        limit = self.get_query_argument("limit", str(DEFAULT_LIMIT))
        if not limit.isdigit() or not 1 <= int(limit) <= 5000:
            raise SandboxError(400, "INVALID_REQUEST", "limit 须为 1-5000 的整数", {"field": "limit"})
        limit = int(limit)
        sandbox = self.sandbox
        today = clock.now().date()
        self.render(
            "dashboard.html", info=sandbox.info(), keys=key_changes.view(sandbox.creds), limit=limit,
            orders=[sandbox.trades.refresh(o) for o in newest(sandbox.trades.orders.values(), limit)],
            refunds=newest(sandbox.refunds.refunds.values(), limit),
            notifications=[n.view() for n in newest(sandbox.notifier.notifications, limit)],
            totals={"orders": len(sandbox.trades.orders), "refunds": len(sandbox.refunds.refunds),
                    "notifications": len(sandbox.notifier.notifications)},
            today=today, yesterday=today - timedelta(days=1),
        )
