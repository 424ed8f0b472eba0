"""What the sandbox's HTML pages share: the one-button form posting to the control API, money and state labels."""
import tornado.web

from ..billfile import yuan as signed_yuan
from ..refunds import SETTLE_FROM
from ..trades import STATE_DESC

REFUND_LABELS = {"SUCCESS": "退款成功 Success", "ABNORMAL": "退款异常 Abnormal", "CLOSED": "退款关闭 Closed"}
REFUND_STATUS_DESC = {"PROCESSING": "退款处理中", "SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}


class PostButton(tornado.web.UIModule):
    """A one-button form posting `fields` to a control endpoint; the sandbox then sends the browser `back`."""

    def render(self, action, label, back, kind="", **fields):
        """The form's HTML (autoescaped template)."""
        return self.render_string("post_button.html", action=action, label=label, back=back, kind=kind,
                                  fields=fields)


def yuan(handler, fen):
    """Fen as yuan with two decimals, signed: 20000 -> '200.00', -120 -> '-1.20'."""
    return signed_yuan(fen)


def trade_state_desc(handler, state):
    """WeChat Pay's Chinese description of a trade_state."""
    return STATE_DESC.get(state, state)


def refund_status_desc(handler, status):
    """The Chinese description of a refund status."""
    return REFUND_STATUS_DESC.get(status, status)


def settle_results(handler, status):
    """(result, label) pairs a refund in `status` may still be settled to, by hand."""
    return [(result, REFUND_LABELS[result]) for result in SETTLE_FROM.get(status, ())]


UI_METHODS = {"yuan": yuan, "trade_state_desc": trade_state_desc, "refund_status_desc": refund_status_desc,
              "settle_results": settle_results}
UI_MODULES = {"PostButton": PostButton}
