"""The parents' routes (the mini-program): login, schedules, orders, payment."""
from __future__ import annotations

from services.accounts import auth, ratelimit
from services.orders import booking, schedules, views
from services.payments import checkout
from services.waitlist import entries

from .base import BaseHandler


class LoginHandler(BaseHandler):
    """POST /api/v1/auth/login."""

    admission = {"POST": "parents"}

    async def post(self):
        await ratelimit.check(self.ctx, "login", self.client_ip)
        self.write_json(await auth.login_user(self.ctx, self.json_body()))


class SchedulesHandler(BaseHandler):
    """GET /api/v1/courses/schedules."""

    async def get(self):
        self.write_json({"items": await schedules.list_schedules(self.ctx.settings)})


class ScheduleHandler(BaseHandler):
    """GET /api/v1/courses/schedules/{id}."""

    async def get(self, schedule_id):
        self.write_json(await schedules.get_schedule(self.ctx.settings, int(schedule_id)))


class CreateOrderHandler(BaseHandler):
    """POST /api/v1/payment/orders/create."""

    admission = {"POST": "parents"}

    async def post(self):
        user_id = self.current_user_id()
        await ratelimit.check(self.ctx, "order", str(user_id))
        status, order = await booking.create_order(self.ctx, user_id, self.json_body(),
                                                   self.request.headers.get("Idempotency-Key"),
                                                  self.actor(user_id=user_id))
        self.write_json(order, status)


class OrdersHandler(BaseHandler):
    """GET /api/v1/payment/orders."""

    async def get(self):
        self.write_json({"items": await views.list_user_orders(self.current_user_id())})


class OrderHandler(BaseHandler):
    """GET /api/v1/payment/orders/{order_id}."""

    async def get(self, order_id):
        order = await views.get_user_order(self.current_user_id(), order_id)
        self.write_json(await views.order_view(order))


class CancelOrderHandler(BaseHandler):
    """POST /api/v1/payment/orders/{order_id}/cancel."""

    async def post(self, order_id):
        user_id = self.current_user_id()
        self.write_json(await checkout.cancel_order(self.ctx, user_id, order_id, self.json_body(),
                                                    self.actor(user_id=user_id)))


class WxPayCreateHandler(BaseHandler):
    """POST /api/v1/payment/wxpay/create: the wx.requestPayment parameters."""

    admission = {"POST": "parents"}

    async def post(self):
        user_id = self.current_user_id()
        self.write_json(await checkout.request_payment(self.ctx, user_id, self.json_body(),
                                                       self.actor(user_id=user_id)))


class WxPayQRCodeHandler(BaseHandler):
    """GET /api/v1/payment/wxpay/qrcode/{order_id}: the Native-pay QR code as PNG."""

    admission = {"GET": "parents"}

    async def get(self, order_id):
        user_id = self.current_user_id()
        png = await checkout.native_qr_png(self.ctx, user_id, order_id, self.actor(user_id=user_id))
        self.set_header("Content-Type", "image/png")
        self.finish(png)


class WaitlistHandler(BaseHandler):
    """POST /api/v1/waitlist (join a full session's line) and GET (the caller's entries)."""

    async def post(self):
        user_id = self.current_user_id()
        status, entry = await entries.join_waitlist(self.ctx, user_id, self.json_body(), self.actor(user_id=user_id))
        self.write_json(entry, status)

    async def get(self):
        self.write_json({"items": await entries.list_entries(self.current_user_id())})


class WaitlistEntryHandler(BaseHandler):
    """DELETE /api/v1/waitlist/{id}: leave the line (a seat kept for the entry passes on at once)."""

    async def delete(self, entry_id):
        user_id = self.current_user_id()
        self.write_json(await entries.leave_waitlist(self.ctx, user_id, int(entry_id), self.actor(user_id=user_id)))
