"""The control API under /sandbox/: act as the payer, steer notifications, inject faults, inspect state."""
from .. import clock
from ..errors import SandboxError
from ..notifier import ACTIONS
from .base import ControlHandler


def _moment(body, name):
    """The RFC 3339 time at `name` as an aware datetime (None when absent), or 400."""
    value = body.get(name)
    if value is None or value == "":
        return None
    moment = clock.parse_rfc3339(value)
    if moment is None:
        raise SandboxError(400, "INVALID_REQUEST", f"字段 {name} 须为 RFC 3339 时间", {"field": name})
    return moment


def _typed(body, name, kind, default, check=lambda v: True):
    value = body.get(name, default)
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool) or not check(value):
        raise SandboxError(400, "INVALID_REQUEST", f"字段 {name} 取值无效", {"field": name})
    return value


class HealthHandler(ControlHandler):
    """GET /sandbox/health."""

    def get(self):
        self.reply({"status": "ok"})


class InfoHandler(ControlHandler):
    """GET /sandbox/info: identities, serials and settings (no secrets)."""

    def get(self):
        self.reply(self.sandbox.info())


class LoginHandler(ControlHandler):
    """POST /sandbox/wx/login: what wx.login gives a mini-program: a one-use code for an openid."""

    def post(self):
        openid = _typed(self.json_body(), "openid", str, None, lambda v: 0 < len(v) <= 128)
        self.reply(self.sandbox.miniprogram.login(openid))


class ExpireTokensHandler(ControlHandler):
    """POST /sandbox/wx/tokens/expire: every access token expires now."""

    def post(self):
        self.reply({"expired": self.sandbox.miniprogram.expire_tokens()})


class RevokeTokensHandler(ControlHandler):
    """POST /sandbox/wx/tokens/revoke: current access tokens answer 40001 until the service forces a refresh."""

    def post(self):
        self.reply({"revoked": self.sandbox.miniprogram.revoke_tokens()})


class OrdersHandler(ControlHandler):
    """GET /sandbox/orders: every order's internal state."""

    def get(self):
        trades = self.sandbox.trades
        self.reply({"items": [trades.internal(trades.refresh(o)) for o in trades.orders.values()]})


class OrderHandler(ControlHandler):
    """GET /sandbox/orders/{out_trade_no}."""

    def get(self, out_trade_no):
        trades = self.sandbox.trades
        self.reply(trades.internal(trades.get(out_trade_no)))


class OrderPayHandler(ControlHandler):
    """POST /sandbox/orders/{out_trade_no}/pay {"notify": true, "openid"?, "bank_type"?, "success_time"?}."""

    def post(self, out_trade_no):
        body = self.json_body()
        order, note = self.sandbox.pay_order(
            out_trade_no, notify=_typed(body, "notify", bool, True),
            openid=_typed(body, "openid", str, None), bank_type=_typed(body, "bank_type", str, None),
            success_time=_moment(body, "success_time"))
        self.reply({"order": self.sandbox.trades.internal(order), "notification_id": note.id if note else None})


class OrderProbeHandler(ControlHandler):
    """POST /sandbox/orders/{out_trade_no}/probe: a WECHATPAY/SIGNTEST/ signature probe to the order's notify_url."""

    def post(self, out_trade_no):
        self.reply({"notification_id": self.sandbox.probe_order(out_trade_no).id})


class OrderFailHandler(ControlHandler):
    """POST /sandbox/orders/{out_trade_no}/fail: the payment fails (PAYERROR, no notification)."""

    def post(self, out_trade_no):
        order = self.sandbox.trades.fail(out_trade_no)
        self.reply({"order": self.sandbox.trades.internal(order)})


class RefundsHandler(ControlHandler):
    """GET /sandbox/refunds."""

    def get(self):
        refunds = self.sandbox.refunds
        self.reply({"items": [refunds.internal(r) for r in refunds.refunds.values()]})


class RefundHandler(ControlHandler):
    """GET /sandbox/refunds/{out_refund_no}."""

    def get(self, out_refund_no):
        refunds = self.sandbox.refunds
        self.reply(refunds.internal(refunds.get(out_refund_no)))


class RefundSettleHandler(ControlHandler):
    """POST /sandbox/refunds/{out_refund_no}/settle {"result": "SUCCESS"|"ABNORMAL"|"CLOSED", "success_time"?}
    (ABNORMAL: later too)."""

    def post(self, out_refund_no):
        body = self.json_body()
        result = _typed(body, "result", str, "SUCCESS")
        refund = self.sandbox.settle_refund(out_refund_no, result, success_time=_moment(body, "success_time"))
        self.reply(self.sandbox.refunds.internal(refund))


class NotificationsHandler(ControlHandler):
    """GET /sandbox/notifications[?out_trade_no=&out_refund_no=&event_type=]."""

    def get(self):
        arg = self.get_query_argument
        notes = self.sandbox.notifier.find(out_trade_no=arg("out_trade_no", None),
                                           out_refund_no=arg("out_refund_no", None))
        event_type = arg("event_type", None)
        self.reply({"items": [n.view() for n in notes if not event_type or n.event_type == event_type]})


class NotificationHandler(ControlHandler):
    """GET /sandbox/notifications/{id}."""

    def get(self, notification_id):
        self.reply(self.sandbox.notifier.get(notification_id).view())


class NotificationRedeliverHandler(ControlHandler):
    """POST /sandbox/notifications/{id}/redeliver: the same event once more, signed afresh; answers after it."""

    async def post(self, notification_id):
        note, attempt = await self.sandbox.notifier.redeliver(notification_id)
        self.reply({"notification": note.view(), "attempt": attempt})


class NotificationRuleHandler(ControlHandler):
    """POST /sandbox/notifications/next: drop, duplicate or delay the next notifications."""

    def get(self):
        self.reply({"rules": self.sandbox.notifier.rules})

    def post(self):
        body = self.json_body()
        rule = self.sandbox.notifier.add_rule(
            _typed(body, "action", str, "", lambda v: v in ACTIONS),
            count=_typed(body, "count", int, 1, lambda v: v >= 1),
            copies=_typed(body, "copies", int, 2, lambda v: 1 <= v <= 20),
            delay_seconds=float(_typed(body, "delay_seconds", (int, float), 1.0, lambda v: 0 <= v <= 3600)))
        self.reply({"rule": rule, "rules": self.sandbox.notifier.rules})

    def delete(self):
        self.sandbox.notifier.clear_rules()
        self.reply({"rules": []})


class FaultsHandler(ControlHandler):
    """GET, POST and DELETE /sandbox/faults."""

    def get(self):
        self.reply({"faults": [f.view() for f in self.sandbox.faults.faults], "held": self.sandbox.faults.held})

    def post(self):
        fault = self.sandbox.faults.add(self.json_body())
        self.reply({"fault": fault.view()})

    def delete(self):
        self.sandbox.faults.clear()
        self.reply({"faults": []})


class FaultsReleaseHandler(ControlHandler):
    """POST /sandbox/faults/release: the requests held by `hold` faults go on."""

    def post(self):
        self.reply({"released": self.sandbox.faults.release()})


class ConfigHandler(ControlHandler):
    """GET and POST /sandbox/config."""

    def get(self):
        self.reply(self.sandbox.config.view())

    def post(self):
        self.reply(self.sandbox.config.update(self.json_body()).view())


class RequestsHandler(ControlHandler):
    """GET /sandbox/requests[?path_prefix=&method=]: every API request received."""

    def get(self):
        self.reply({"items": self.sandbox.requests.list(self.get_query_argument("path_prefix", None),
                                                        self.get_query_argument("method", None))})


class MessagesHandler(ControlHandler):
    """GET /sandbox/messages: every subscribe message sent (accepted or refused)."""

    def get(self):
        self.reply({"items": self.sandbox.miniprogram.messages})


class ResetHandler(ControlHandler):
    """POST /sandbox/reset: no faults, notification rules or bill controls, default settings; orders and keys stay."""

    def post(self):
        self.sandbox.reset()
        self.reply({"status": "ok", "config": self.sandbox.config.view()})
