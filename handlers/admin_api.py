"""The operators' API (`/api/v1/admin/...`): bearer tokens from /api/v1/admin/login, roles checked on each route."""
from __future__ import annotations

from services.accounts import auth, operators, ratelimit
from services.backoffice import queries
from services.bills import decisions, exports, views as bills
from services.frontdesk import attendance, reschedule
from services.orders import schedules
from services.refunds import refunds

from .base import BaseHandler
from .streaming import stream


class AdminBase(BaseHandler):
    """An operator route: the token must be an active operator's whose role holds the method's right in
    `rights` (services.accounts.roles, the table the back office's pages use too); a method not listed needs the
    operators' right (admin)."""

    rights = {"GET": "orders.read"}

    async def prepare(self):
        await super().prepare()
        right = self.rights.get(self.request.method, "operators")
        self.operator = await auth.operator_for_token(self.ctx, self.bearer_token(), right)

    def operator_actor(self):
        """The audit actor: this operator, with the client's address."""
        return self.actor("operator", operator_id=self.operator.id)

    def args(self, *names) -> dict:
        """The query arguments named (the last value of each)."""
        return {name: self.get_query_argument(name, None) for name in (*names, "limit", "cursor")}


class AdminLoginHandler(BaseHandler):
    """POST /api/v1/admin/login."""

    admission = {"POST": "operators"}

    async def post(self):
        await ratelimit.check(self.ctx, "admin-login", self.client_ip)
        self.write_json(await auth.login_operator(self.ctx, self.json_body(), self.actor("operator")))


class AdminSchedulesHandler(AdminBase):
    """GET and POST /api/v1/admin/schedules (all roles, as the contract lists them)."""

    rights = {"GET": "schedules.read", "POST": "schedules.write"}

    async def get(self):
        self.write_json(await schedules.page_schedules(self.ctx.settings, self.args()))

    async def post(self):
        self.write_json(await schedules.create_schedule(self.ctx, self.json_body(), self.operator.id,
                                                        self.operator_actor()), 201)


class AdminScheduleHandler(AdminBase):
    """PATCH /api/v1/admin/schedules/{id}: capacity and title (all roles)."""

    rights = {"PATCH": "schedules.write"}

    async def patch(self, schedule_id):
        self.write_json(await schedules.change_schedule(self.ctx, int(schedule_id), self.json_body(),
                                                        self.operator_actor()))


class AdminRosterHandler(AdminBase):
    """GET /api/v1/admin/schedules/{id}/roster (all roles)."""

    rights = {"GET": "roster.read"}

    async def get(self, schedule_id):
        self.write_json(await queries.roster(int(schedule_id), self.args()))


class AdminOrdersHandler(AdminBase):
    """GET /api/v1/admin/orders?status=&course_schedule_id=&q= (all roles)."""

    async def get(self):
        self.write_json(await queries.search_orders(self.args("status", "course_schedule_id", "q"),
                                                    self.operator.role))


class AdminOrderHandler(AdminBase):
    """GET /api/v1/admin/orders/{order_id}: the order's story (all roles)."""

    async def get(self, order_id):
        self.write_json(await queries.order_story(order_id, self.operator.role))


class AdminOrderRefundsHandler(AdminBase):
    """POST /api/v1/admin/orders/{order_id}/refunds (admin, finance; Idempotency-Key required)."""

    rights = {"POST": "refund"}

    async def post(self, order_id):
        status, refund = await refunds.request_refund(self.ctx, self.operator, order_id, self.json_body(),
                                                      self.request.headers.get("Idempotency-Key"),
                                                      self.operator_actor())
        self.write_json(refund, status)


class AdminOrderRescheduleHandler(AdminBase):
    """POST /api/v1/admin/orders/{order_id}/reschedule (admin, staff): the paid booking moved to another session."""

    rights = {"POST": "frontdesk"}

    async def post(self, order_id):
        self.write_json(await reschedule.reschedule(self.ctx, order_id, self.json_body(), self.operator_actor(),
                                                    self.operator.role))


class AdminReservationHandler(AdminBase):
    """PATCH /api/v1/admin/reservations/{reservation_id} (admin, staff): attendance on a started session's seat."""

    rights = {"PATCH": "frontdesk"}

    async def patch(self, reservation_id):
        self.write_json(await attendance.mark(self.ctx, reservation_id, self.json_body(), self.operator_actor()))


class AdminRefundsHandler(AdminBase):
    """GET /api/v1/admin/refunds?status= (admin, finance)."""

    rights = {"GET": "money.read"}

    async def get(self):
        self.write_json(await queries.list_refunds(self.args("status")))


class AdminNotificationsHandler(AdminBase):
    """GET /api/v1/admin/notifications?kind=&outcome=: the inbox (admin, finance)."""

    rights = {"GET": "notifications.read"}

    async def get(self):
        self.write_json(await queries.list_notifications(self.args("kind", "outcome")))


class AdminAuditHandler(AdminBase):
    """GET /api/v1/admin/audit?order_id=&action_type= (admin, finance)."""

    rights = {"GET": "audit.read"}

    async def get(self):
        self.write_json(await queries.list_audit(self.args("order_id", "action_type")))


class AdminAuditVerifyHandler(AdminBase):
    """GET /api/v1/admin/audit/verify: the audit trail verified from the rows as they are (admin, finance)."""

    rights = {"GET": "audit.read"}

    async def get(self):
        self.write_json(await self.ctx.audit_verifier.verify())


class AdminOperatorsHandler(AdminBase):
    """GET and POST /api/v1/admin/operators (admin)."""

    rights = {"GET": "operators", "POST": "operators"}

    async def get(self):
        self.write_json(await operators.list_operators(self.args()))

    async def post(self):
        self.write_json(await operators.create_operator(self.ctx, self.json_body(), self.operator_actor()), 201)


class AdminOperatorHandler(AdminBase):
    """PATCH /api/v1/admin/operators/{id} (admin)."""

    rights = {"PATCH": "operators"}

    async def patch(self, operator_id):
        self.write_json(await operators.change_operator(self.ctx, int(operator_id), self.json_body(),
                                                        self.operator_actor()))


class AdminBillsHandler(AdminBase):
    """GET /api/v1/admin/bills: the last reconciliation of each day, newest day first (admin, finance)."""

    rights = {"GET": "bills"}

    async def get(self):
        self.write_json(await bills.list_days(self.args()))


class AdminBillHandler(AdminBase):
    """GET /api/v1/admin/bills/{bill_date}: the day's last reconciliation (admin, finance)."""

    rights = {"GET": "bills"}

    async def get(self, bill_date):
        self.write_json(await bills.day_view(bill_date))


class AdminBillReconcileHandler(AdminBase):
    """POST /api/v1/admin/bills/{bill_date}/reconcile: fetch WeChat Pay's bill and reconcile the day (admin,
    finance)."""

    rights = {"POST": "bills"}

    async def post(self, bill_date):
        self.write_json(await bills.reconcile_now(self.ctx, bill_date, self.operator, self.operator_actor()))


class AdminDiscrepancyHandler(AdminBase):
    """PATCH /api/v1/admin/bills/discrepancies/{id}: finance's decision (admin, finance)."""

    rights = {"PATCH": "bills"}

    async def patch(self, discrepancy_id):
        self.write_json(await decisions.decide(self.ctx, int(discrepancy_id), self.json_body(), self.operator,
                                               self.operator_actor()))


class AdminExportHandler(AdminBase):
    """GET /api/v1/admin/exports/{kind}.csv?from=&to= (admin, finance): streamed, batch by batch."""

    rights = {"GET": "exports"}
    kind = "orders"

    async def get(self):
        name, chunks = exports.export(self.kind, self.args("from", "to"))
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        await stream(self, chunks)


class AdminOrdersExportHandler(AdminExportHandler):
    """GET /api/v1/admin/exports/orders.csv."""

    kind = "orders"


class AdminRefundsExportHandler(AdminExportHandler):
    """GET /api/v1/admin/exports/refunds.csv."""

    kind = "refunds"


def admin_api_routes(c) -> list:
    """The operators' API routes."""
    sid, oid, num = r"([0-9]{1,18})", r"([^/]+)", r"([0-9]{1,18})"
    return [
        (r"/api/v1/admin/login", AdminLoginHandler, c),
        (r"/api/v1/admin/schedules", AdminSchedulesHandler, c),
        (rf"/api/v1/admin/schedules/{sid}", AdminScheduleHandler, c),
        (rf"/api/v1/admin/schedules/{sid}/roster", AdminRosterHandler, c),
        (r"/api/v1/admin/orders", AdminOrdersHandler, c),
        (rf"/api/v1/admin/orders/{oid}/refunds", AdminOrderRefundsHandler, c),
        (rf"/api/v1/admin/orders/{oid}/reschedule", AdminOrderRescheduleHandler, c),
        (rf"/api/v1/admin/orders/{oid}", AdminOrderHandler, c),
        (r"/api/v1/admin/refunds", AdminRefundsHandler, c),
        (rf"/api/v1/admin/reservations/{oid}", AdminReservationHandler, c),
        (r"/api/v1/admin/notifications", AdminNotificationsHandler, c),
        (r"/api/v1/admin/audit", AdminAuditHandler, c),
        (r"/api/v1/admin/audit/verify", AdminAuditVerifyHandler, c),
        (r"/api/v1/admin/operators", AdminOperatorsHandler, c),
        (rf"/api/v1/admin/operators/{num}", AdminOperatorHandler, c),
        (r"/api/v1/admin/bills", AdminBillsHandler, c),
        (rf"/api/v1/admin/bills/discrepancies/{num}", AdminDiscrepancyHandler, c),
        (r"/api/v1/admin/bills/([^/]+)/reconcile", AdminBillReconcileHandler, c),
        (r"/api/v1/admin/bills/([^/]+)", AdminBillHandler, c),
        (r"/api/v1/admin/exports/orders\.csv", AdminOrdersExportHandler, c),
        (r"/api/v1/admin/exports/refunds\.csv", AdminRefundsExportHandler, c),
    ]
