"""GET /sandbox/cashier: a payer's page (Chinese labels) to pay or fail an order and settle its refunds by hand."""
from ..errors import SandboxError
from .base import BaseHandler


class CashierHandler(BaseHandler):
    """The order amount with 确认支付 / 支付失败 buttons, and its refunds with settle buttons (forms to /sandbox/)."""

    def get(self):
        out_trade_no = self.get_query_argument("out_trade_no", "")
        try:
            order = self.sandbox.trades.get(out_trade_no)
        except SandboxError:
            self.set_status(404)
            order = None
        refunds = [self.sandbox.refunds.refunds[no] for no in order.refund_nos] if order else []
        self.render("cashier.html", order=order, out_trade_no=out_trade_no, refunds=refunds)
