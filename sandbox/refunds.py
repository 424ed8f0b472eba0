"""Domestic refunds: accepted as PROCESSING, settled later (on a timer or by the control API), kept in the store."""
import string
import time
from dataclasses import dataclass

from . import clock
from .crypto import random_text
from .errors import SandboxError, conflict, invalid_request
from .records import from_record, to_record
from .trades import PAID_STATES
from .validation import refund_request

MAX_REFUNDS_PER_ORDER = 50
SETTLED_EVENTS = {
    "SUCCESS": ("REFUND.SUCCESS", "退款成功"),
    "ABNORMAL": ("REFUND.ABNORMAL", "退款异常"),
    "CLOSED": ("REFUND.CLOSED", "退款关闭"),
}
# ABNORMAL waits for a person (the merchant retries or refunds offline) and may still end SUCCESS or CLOSED.
SETTLE_FROM = {"PROCESSING": ("SUCCESS", "ABNORMAL", "CLOSED"), "ABNORMAL": ("SUCCESS", "CLOSED")}
REFUND_TIMES = ("created_at", "success_time")


@dataclass
class Refund:
    """One refund of a paid order."""

    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    refund: int
    total: int
    currency: str
    reason: str
    notify_url: str
    funds_account: str
    created_at: object
    status: str = "PROCESSING"
    success_time: object = None
    settle_at: float = None  # time.time() of the automatic settlement, if one is scheduled


class RefundBook:
    """All refunds; `on_settled(refund)` is called when one leaves PROCESSING."""

    def __init__(self, trades, on_settled):
        self.trades = trades
        self.store = trades.store
        self.on_settled = on_settled
        self.refunds = {}
        for record in self.store.load("refund"):
            refund = from_record(Refund, record, REFUND_TIMES)
            self.refunds[refund.out_refund_no] = refund

    def save(self, refund):
        """Write the refund to the store."""
        self.store.put("refund", refund.out_refund_no, to_record(refund, REFUND_TIMES))

    def create(self, body, settle_in=None):
        """Accept a refund (PROCESSING, settling by itself after `settle_in` seconds unless None), or answer the
        existing one for a repeated out_refund_no."""
        fields = refund_request(body)
        order = self._order_of(fields)
        existing = self.refunds.get(fields["out_refund_no"])
        if existing is not None:
            same = (existing.out_trade_no, existing.refund, existing.total) == (
                order.out_trade_no, fields["refund"], fields["total"])
            if not same:
                raise invalid_request("商户退款单号重复，但退款参数与原退款单不一致",
                                      {"out_refund_no": existing.out_refund_no})
            return existing
        if order.trade_state not in PAID_STATES:
            raise invalid_request("订单未支付，无法退款", {"trade_state": order.trade_state})
        if fields["total"] != order.total:
            raise invalid_request("订单金额与原订单金额不一致", {"total": order.total})
        committed = self.refunded_total(order)
        if committed >= order.total:
            raise invalid_request("订单已全额退款")
        if fields["refund"] > order.total - committed:
            raise invalid_request("申请退款金额超过订单可退金额", {"refundable": order.total - committed})
        if len(order.refund_nos) >= MAX_REFUNDS_PER_ORDER:
            raise invalid_request("该订单的退款次数已达上限（50次）")
        refund = Refund(
            out_refund_no=fields["out_refund_no"],
            refund_id="50" + clock.now().strftime("%Y%m%d") + random_text(19, string.digits),
            out_trade_no=order.out_trade_no, transaction_id=order.transaction_id,
            refund=fields["refund"], total=fields["total"], currency=fields["currency"],
            reason=fields["reason"], notify_url=fields["notify_url"], funds_account=fields["funds_account"],
            created_at=clock.now(), settle_at=None if settle_in is None else time.time() + settle_in,
        )
        self.refunds[refund.out_refund_no] = refund
        order.refund_nos.append(refund.out_refund_no)
        with self.store.atomic():
            self.save(refund)
            self.trades.save(order)
        return refund

    def _order_of(self, fields):
        try:
            if fields["transaction_id"]:
                return self.trades.get_by_transaction_id(fields["transaction_id"])
            return self.trades.get(fields["out_trade_no"])
        except SandboxError:
            raise SandboxError(404, "RESOURCE_NOT_EXISTS", "订单不存在") from None

    def refunded_total(self, order):
        """Fen committed to refunds of `order` (processing, succeeded or abnormal)."""
        return sum(self.refunds[no].refund for no in order.refund_nos if self.refunds[no].status != "CLOSED")

    def get(self, out_refund_no):
        """The refund, or 404 RESOURCE_NOT_EXISTS."""
        refund = self.refunds.get(out_refund_no)
        if refund is None:
            raise SandboxError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return refund

    def settle(self, out_refund_no, result="SUCCESS", success_time=None):
        """Move a PROCESSING refund to SUCCESS, ABNORMAL or CLOSED, or an ABNORMAL one to SUCCESS or CLOSED;
        409 REFUND_SETTLED otherwise. The order becomes REFUND on SUCCESS; `on_settled` sends the notification.
        A SUCCESS may be dated `success_time`: not in the future, not before the payment."""
        refund = self.get(out_refund_no)
        if result not in SETTLED_EVENTS:
            raise SandboxError(400, "INVALID_REQUEST", "result 必须是 SUCCESS、ABNORMAL 或 CLOSED")
        if success_time is not None:
            paid_at = self.trades.orders[refund.out_trade_no].success_time
            if result != "SUCCESS" or success_time > clock.now() or success_time < paid_at:
                raise SandboxError(400, "INVALID_REQUEST", "success_time 须在支付之后、不晚于现在，且仅用于 SUCCESS",
                                   {"field": "success_time"})
        if result not in SETTLE_FROM.get(refund.status, ()):
            raise conflict("REFUND_SETTLED", f"退款单已处理（{refund.status}），不能再改为 {result}",
                           status=refund.status)
        refund.status = result
        refund.settle_at = None
        with self.store.atomic():
            if result == "SUCCESS":
                refund.success_time = clock.now() if success_time is None else \
                    success_time.astimezone(clock.BEIJING).replace(microsecond=0)
                order = self.trades.get(refund.out_trade_no)
                order.trade_state = "REFUND"
                self.trades.save(order)
            self.save(refund)
            self.on_settled(refund)
        return refund

    def view(self, refund):
        """The refund JSON the refund API answers."""
        view = {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "transaction_id": refund.transaction_id,
            "out_trade_no": refund.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": clock.iso(refund.created_at),
            "status": refund.status,
            "funds_account": refund.funds_account or "AVAILABLE",
            "amount": {
                "total": refund.total, "refund": refund.refund, "from": [],
                "payer_total": refund.total, "payer_refund": refund.refund,
                "settlement_total": refund.total, "settlement_refund": refund.refund,
                "discount_refund": 0, "currency": refund.currency, "refund_fee": 0,
            },
            "promotion_detail": [],
        }
        if refund.success_time:
            view["success_time"] = clock.iso(refund.success_time)
        return view

    def notification(self, refund):
        """The plaintext of a REFUND.* notification (refund_status, not status)."""
        plain = {
            "mchid": self.trades.creds.mchid,
            "out_trade_no": refund.out_trade_no,
            "transaction_id": refund.transaction_id,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": refund.status,
            "user_received_account": "支付用户零钱",
            "amount": {"total": refund.total, "refund": refund.refund,
                       "payer_total": refund.total, "payer_refund": refund.refund},
        }
        if refund.success_time:
            plain["success_time"] = clock.iso(refund.success_time)
        return plain

    def internal(self, refund):
        """The refund with its settle timer, for the control API."""
        view = self.view(refund)
        remaining = None if refund.settle_at is None else round(max(0.0, refund.settle_at - time.time()), 3)
        view.update(notify_url=refund.notify_url, reason=refund.reason, settle_due_in_seconds=remaining)
        return view
