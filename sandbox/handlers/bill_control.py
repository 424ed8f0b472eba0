"""The control API of bills (/sandbox/bills/...): look at a day's bill, make it not ready, spoil its download or
its sums, add foreign rows; and the bill page of the dashboard (/sandbox/bill?date=)."""
import re
from datetime import date

from .. import clock
from ..bills import DAY
from ..errors import SandboxError
from .base import BaseHandler, ControlHandler

FORM_FLAGS = {"true": True, "false": False}
AMOUNT = re.compile(r"^[0-9]{1,12}$")


def control_day(text):
    """The date of a YYYY-MM-DD path or query value, or 400."""
    try:
        if DAY.match(text or ""):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise SandboxError(400, "INVALID_REQUEST", "日期须为 YYYY-MM-DD", {"field": "bill_date"})


class BillHandler(ControlHandler):
    """GET /sandbox/bills/{date}[?bill_type=]: the day's bill; POST {"ready"?, "corrupt_download"?, "unbalanced"?,
    "reordered"?} changes its controls."""

    def get(self, day):
        self.reply(self.sandbox.bills.view(control_day(day), self.get_query_argument("bill_type", "ALL")))

    def post(self, day):
        body = self.json_body()
        if self.from_form():  # a form's fields are strings
            body = {name: FORM_FLAGS.get(value, value) for name, value in body.items()}
        self.reply({"controls": self.sandbox.bills.set_controls(control_day(day), body)})


class BillRowsHandler(ControlHandler):
    """POST /sandbox/bills/{date}/rows {"kind": "payment" | "refund", "amount": fen, "time"?, "out_trade_no"?,
    "out_refund_no"?, "transaction_id"?, "description"?}: a foreign row on that day's bill."""

    def post(self, day):
        body = self.json_body()
        if self.from_form() and AMOUNT.match(body.get("amount", "")):  # a form's fields are strings
            body["amount"] = int(body["amount"])
        self.reply({"row": self.sandbox.bills.add_foreign(control_day(day), body)})


class BillOmitHandler(ControlHandler):
    """POST /sandbox/bills/{date}/omit {"out_trade_no"} or {"out_refund_no"}: that row is left off the day's bills."""

    def post(self, day):
        self.reply({"omitted": self.sandbox.bills.omit(control_day(day), self.json_body())})


class BillPageHandler(BaseHandler):
    """GET /sandbox/bill?date=YYYY-MM-DD&bill_type=ALL: the day's bill as a table, its controls as buttons."""

    def get(self):
        day = control_day(self.get_query_argument("date", None) or clock.now().date().isoformat())
        bill_type = self.get_query_argument("bill_type", "ALL")
        self.render("bill.html", bill=self.sandbox.bills.view(day, bill_type), today=clock.now().date())
