"""The money desk's lists: refunds (ABNORMAL ones first), the notification inbox, the audit search."""
from __future__ import annotations

import errors
from services import notifications
from services.backoffice import queries
from services.paging import EMPTY_PAGE
from services.lifecycle.statuses import ABNORMAL, REFUND_STATUSES

from .base import PageHandler


async def _found(lookup, args):
    """(page, error message, status): a bad filter value is told above an empty list, not as an error page."""
    try:
        return await lookup(args), None, 200
    except errors.ServiceError as e:
        if e.status != 400:
            raise
        return EMPTY_PAGE, e.message, 400


class RefundsHandler(PageHandler):
    """GET /admin/refunds?status=: every refund; ABNORMAL ones, and those WeChat Pay made after we held them refused
    or closed, stand at the top for a person to handle."""

    rights = {"GET": "money.read"}

    async def get(self):
        args = self.args("status")
        found, error, status = await _found(queries.list_refunds, args)
        abnormal, late = EMPTY_PAGE, []
        if not args["status"] and not args["cursor"] and not self.wants("results"):
            abnormal = await queries.list_refunds({"status": ABNORMAL, "limit": "200"})
            late = await queries.late_successes()
        self.show("refunds.html", "_refunds_table.html", "results", status, found=found, abnormal=abnormal,
                  late=late, args=args, error=error, statuses=REFUND_STATUSES)


class NotificationsHandler(PageHandler):
    """GET /admin/notifications?kind=&outcome=: every WeChat Pay notification received, refused ones included."""

    rights = {"GET": "notifications.read"}

    async def get(self):
        args = self.args("kind", "outcome")
        found, error, status = await _found(queries.list_notifications, args)
        self.show("notifications.html", "_notifications_table.html", "results", status, found=found, args=args,
                  error=error, kinds=notifications.KINDS, outcomes=notifications.OUTCOMES)


class AuditHandler(PageHandler):
    """GET /admin/audit?order_id=&action_type=: the audit log, newest first, under the verdict on its seals (the whole
    page only: a search that fills the list does not verify again)."""

    rights = {"GET": "audit.read"}

    async def get(self):
        args = self.args("order_id", "action_type")
        found, error, status = await _found(queries.list_audit, args)
        verdict = None if self.wants("results") else await self.ctx.audit_verifier.verify()
        self.show("audit.html", "_audit_table.html", "results", status, found=found, args=args, error=error,
                  verdict=verdict)
