"""GET /sandbox/cashier: a payer's page (Chinese labels) to pay or fail an order by hand."""
from ..errors import SandboxError
from ..trades import STATE_DESC
from .base import BaseHandler


class CashierHandler(BaseHandler):
    """Shows the order amount with 确认支付 / 支付失败 buttons calling the control API."""

    def get(self):
        out_trade_no = self.get_query_argument("out_trade_no", "")
        try:
            order = self.sandbox.trades.get(out_trade_no)
        except SandboxError:
            self.set_status(404)
            order = None
        self.render("cashier.html", order=order, out_trade_no=out_trade_no,
                    yuan=f"{order.total // 100}.{order.total % 100:02d}" if order else "",
                    state_desc=STATE_DESC[order.trade_state] if order else "",
                    payable=bool(order) and order.trade_state in ("NOTPAY", "PAYERROR"))
