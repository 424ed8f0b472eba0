"""Merchant orders (transactions): creation, query, close, payment and expiry, kept in memory and in the store."""
import secrets
import string
from dataclasses import dataclass, field

from . import clock
from .crypto import random_text
from .errors import SandboxError, conflict, invalid_request, order_not_exist
from .records import from_record, to_record
from .validation import transaction_order

STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "CLOSED": "订单已关闭",
    "PAYERROR": "支付失败，请重新下单支付",
}
PAID_STATES = ("SUCCESS", "REFUND")
ORDER_TIMES = ("time_expire", "created_at", "success_time", "closed_at")


@dataclass
class Order:
    """One merchant order as WeChat Pay keeps it."""

    out_trade_no: str
    trade_type: str
    appid: str
    mchid: str
    description: str
    notify_url: str
    total: int
    currency: str
    attach: str
    time_expire: object
    payer_openid: str
    request: dict
    created_at: object
    prepay_id: str = None
    code_url: str = None
    trade_state: str = "NOTPAY"
    transaction_id: str = None
    success_time: object = None
    bank_type: str = None
    paid_openid: str = None
    closed_at: object = None
    close_reason: str = None
    refund_nos: list = field(default_factory=list)


class TradeBook:
    """All orders of the sandbox's one merchant."""

    def __init__(self, creds, store):
        self.creds = creds
        self.store = store
        self.orders = {}
        self.by_transaction_id = {}
        for record in store.load("order"):
            order = from_record(Order, record, ORDER_TIMES)
            self.orders[order.out_trade_no] = order
            if order.transaction_id:
                self.by_transaction_id[order.transaction_id] = order.out_trade_no

    def save(self, order):
        """Write the order to the store."""
        self.store.put("order", order.out_trade_no, to_record(order, ORDER_TIMES))

    def create(self, trade_type, body):
        """Place a JSAPI or Native order; the same request again gives the same answer."""
        fields = transaction_order(body, trade_type)
        if fields["appid"] != self.creds.appid or fields["mchid"] != self.creds.mchid:
            raise SandboxError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配，请检查后再试")
        existing = self.orders.get(fields["out_trade_no"])
        if existing is not None:
            return self._repeat(existing, trade_type, body)
        order = Order(trade_type=trade_type, request=dict(body), created_at=clock.now(), **fields)
        if trade_type == "JSAPI":
            order.prepay_id = "wx" + clock.now().strftime("%Y%m%d%H%M%S") + secrets.token_hex(10)
        else:
            order.code_url = "weixin://wxpay/bizpayurl?pr=" + random_text(7)
        self.orders[order.out_trade_no] = order
        self.save(order)
        return self.prepay_answer(order)

    def _repeat(self, order, trade_type, body):
        self.refresh(order)
        if order.trade_state in PAID_STATES:
            raise SandboxError(400, "ORDER_PAID", "订单已支付")
        if order.trade_state == "CLOSED":
            raise SandboxError(400, "ORDER_CLOSED", "订单已关闭")
        if order.trade_type != trade_type or order.request != body:
            raise invalid_request("201 商户订单号重复", {"out_trade_no": order.out_trade_no})
        return self.prepay_answer(order)

    @staticmethod
    def prepay_answer(order):
        """What a successful order request answers: the prepay id or the Native code URL."""
        if order.trade_type == "JSAPI":
            return {"prepay_id": order.prepay_id}
        return {"code_url": order.code_url}

    def refresh(self, order):
        """Close an unpaid order whose time_expire has passed (WeChat Pay does it on its own)."""
        if order.trade_state in ("NOTPAY", "PAYERROR") and order.time_expire and clock.now() >= order.time_expire:
            order.trade_state, order.closed_at, order.close_reason = "CLOSED", order.time_expire, "expired"
            self.save(order)
        return order

    def get(self, out_trade_no):
        """The order, refreshed, or ORDER_NOT_EXIST."""
        order = self.orders.get(out_trade_no)
        if order is None:
            raise order_not_exist()
        return self.refresh(order)

    def get_by_transaction_id(self, transaction_id):
        """The paid order with this WeChat Pay transaction id, or ORDER_NOT_EXIST."""
        out_trade_no = self.by_transaction_id.get(transaction_id)
        if out_trade_no is None:
            raise order_not_exist()
        return self.get(out_trade_no)

    def check_mchid(self, mchid, location="query"):
        """PARAM_ERROR unless `mchid` (query or body) is the sandbox merchant."""
        if not mchid:
            raise SandboxError(400, "PARAM_ERROR", "缺少参数 mchid", {"location": location, "field": "mchid"})
        if mchid != self.creds.mchid:
            raise SandboxError(400, "PARAM_ERROR", "商户号 mchid 与身份认证信息不一致",
                               {"location": location, "field": "mchid", "value": mchid})

    def close(self, out_trade_no):
        """Close an unpaid order (repeatable); a paid one is refused with ORDER_PAID."""
        order = self.get(out_trade_no)
        if order.trade_state in PAID_STATES:
            raise SandboxError(400, "ORDER_PAID", "订单已支付")
        if order.trade_state != "CLOSED":
            order.trade_state, order.closed_at, order.close_reason = "CLOSED", clock.now(), "closed"
            self.save(order)
        return order

    def pay(self, out_trade_no, openid=None, bank_type=None, success_time=None):
        """The payer pays (control API), now or at `success_time` (not in the future): SUCCESS with a transaction
        id; 409 when not payable. An order that expired is still payable at a moment before its time_expire: the
        payment WeChat Pay took at the last second."""
        order = self.get(out_trade_no)
        if success_time is not None and success_time > clock.now():
            raise SandboxError(400, "INVALID_REQUEST", "success_time 不能晚于现在", {"field": "success_time"})
        paid_in_time = success_time is not None and order.close_reason == "expired" \
            and success_time < order.time_expire
        if order.trade_state not in ("NOTPAY", "PAYERROR") and not (order.trade_state == "CLOSED" and paid_in_time):
            raise conflict("ORDER_NOT_PAYABLE", f"订单不可支付（{STATE_DESC[order.trade_state]}）",
                           trade_state=order.trade_state)
        order.trade_state = "SUCCESS"
        order.closed_at = order.close_reason = None
        order.success_time = clock.now() if success_time is None else \
            success_time.astimezone(clock.BEIJING).replace(microsecond=0)
        order.transaction_id = "42000" + order.success_time.strftime("%Y%m%d") + random_text(15, string.digits)
        order.bank_type = bank_type or "OTHERS"
        order.paid_openid = order.payer_openid or openid or "o" + random_text(27)
        self.by_transaction_id[order.transaction_id] = order.out_trade_no
        self.save(order)
        return order

    def fail(self, out_trade_no):
        """The payment fails (control API): PAYERROR, no notification."""
        order = self.get(out_trade_no)
        if order.trade_state not in ("NOTPAY", "PAYERROR"):
            raise conflict("ORDER_NOT_PAYABLE", f"订单不可支付（{STATE_DESC[order.trade_state]}）",
                           trade_state=order.trade_state)
        order.trade_state = "PAYERROR"
        self.save(order)
        return order

    def transaction(self, order):
        """The transaction JSON a query answers and a TRANSACTION notification carries."""
        view = {
            "appid": order.appid,
            "mchid": order.mchid,
            "out_trade_no": order.out_trade_no,
            "trade_state": order.trade_state,
            "trade_state_desc": STATE_DESC[order.trade_state],
            "amount": {"total": order.total, "currency": order.currency, "payer_currency": order.currency},
            "payer": {"openid": order.paid_openid or order.payer_openid} if (order.paid_openid or order.payer_openid)
            else {},
            "promotion_detail": [],
        }
        if order.attach is not None:
            view["attach"] = order.attach
        if order.trade_state in PAID_STATES:
            view.update({
                "transaction_id": order.transaction_id,
                "trade_type": order.trade_type,
                "bank_type": order.bank_type,
                "success_time": clock.iso(order.success_time),
            })
            view["amount"]["payer_total"] = order.total
        return view

    def internal(self, order):
        """The full internal state of an order, for the control API."""
        return {
            "out_trade_no": order.out_trade_no,
            "trade_type": order.trade_type,
            "trade_state": order.trade_state,
            "appid": order.appid,
            "mchid": order.mchid,
            "description": order.description,
            "notify_url": order.notify_url,
            "amount": {"total": order.total, "currency": order.currency},
            "payer_openid": order.payer_openid,
            "paid_openid": order.paid_openid,
            "time_expire": clock.iso(order.time_expire) if order.time_expire else None,
            "created_at": clock.iso(order.created_at),
            "prepay_id": order.prepay_id,
            "code_url": order.code_url,
            "transaction_id": order.transaction_id,
            "success_time": clock.iso(order.success_time) if order.success_time else None,
            "closed_at": clock.iso(order.closed_at) if order.closed_at else None,
            "close_reason": order.close_reason,
            "refunds": list(order.refund_nos),
            "request": order.request,
            "transaction": self.transaction(order),
        }
