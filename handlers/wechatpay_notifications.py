"""WeChat Pay's notification endpoints: 204 when handled, `{"code": "FAIL"}` with 401/400/503 when refused."""
from __future__ import annotations

import json

from services.audit import Actor
from services.payments import payment_notifications
from services.refunds import refund_notifications
from services.wechat.notification_verifier import NotificationRejected

from .base import BaseHandler


class PaymentNotificationHandler(BaseHandler):
    """POST /api/v1/payment/wxpay/callback."""

    handle = staticmethod(payment_notifications.handle_payment_notification)
    admission = {"POST": "notifications"}  # a budget of their own: parents' traffic never takes their slots

    async def post(self):
        actor = Actor("wechat", ip=self.client_ip, user_agent=self.request.headers.get("User-Agent"))
        try:
            await self.handle(self.ctx, self.request.headers, self.request.body, actor)
        except NotificationRejected as e:
            self.set_status(e.status)
            self.finish(json.dumps({"code": "FAIL", "message": e.reason}))
            return
        self.set_status(204)
        self.finish()

    def error_body(self, error):
        """A 503 (too busy, or a dependency down) in WeChat Pay's form: it delivers the notification again."""
        if error.status == 503:
            return {"code": "FAIL", "message": error.message}
        return super().error_body(error)


class RefundNotificationHandler(PaymentNotificationHandler):
    """POST /api/v1/payment/wxpay/refund-callback."""

    handle = staticmethod(refund_notifications.handle_refund_notification)
