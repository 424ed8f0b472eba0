"""The back office in the browser (/admin/): Tornado templates with htmx, on the same services as the admin API."""
from __future__ import annotations

import tornado.web

from .assets import asset_routes
from .base import PageNotFound
from .bills import BillDayHandler, BillsHandler, DayReportHandler, ExportHandler
from .frontdesk import AttendanceHandler, RescheduleDialogHandler
from .home import HomeHandler
from .lists import AuditHandler, NotificationsHandler, RefundsHandler
from .login import LoginHandler, LogoutHandler
from .operators import OperatorHandler, OperatorsHandler
from .orders import OrderHandler, OrdersHandler, QueueHandler
from .refund_dialog import RefundDialogHandler
from .schedules import ScheduleHandler, SchedulesHandler


def backoffice_routes(c) -> list:
    """The back office's routes (every mode, not only DEV_MODE)."""
    oid, num, day = r"([0-9a-f]{32})", r"([0-9]{1,18})", r"([0-9]{4}-[0-9]{2}-[0-9]{2})"
    return [
        (r"/admin", tornado.web.RedirectHandler, {"url": "/admin/"}),
        *asset_routes(c),
        (r"/admin/", HomeHandler, c),
        (r"/admin/login", LoginHandler, c),
        (r"/admin/logout", LogoutHandler, c),
        (r"/admin/orders", OrdersHandler, c),
        (rf"/admin/orders/{oid}", OrderHandler, c),
        (rf"/admin/orders/{oid}/refund", RefundDialogHandler, c),
        (rf"/admin/orders/{oid}/reschedule", RescheduleDialogHandler, c),
        (r"/admin/queue", QueueHandler, c),
        (r"/admin/refunds", RefundsHandler, c),
        (r"/admin/notifications", NotificationsHandler, c),
        (r"/admin/audit", AuditHandler, c),
        (r"/admin/schedules", SchedulesHandler, c),
        (rf"/admin/schedules/{num}", ScheduleHandler, c),
        (r"/admin/bills", BillsHandler, c),
        (rf"/admin/bills/{day}/report", DayReportHandler, c),
        (rf"/admin/bills/{day}", BillDayHandler, c),
        (r"/admin/exports/(orders|refunds)\.csv", ExportHandler, c),
        (rf"/admin/schedules/{num}/attendance", AttendanceHandler, c),
        (r"/admin/operators", OperatorsHandler, c),
        (rf"/admin/operators/{num}", OperatorHandler, c),
        (r"/admin/.*", PageNotFound, c),
    ]
