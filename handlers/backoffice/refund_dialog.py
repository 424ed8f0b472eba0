"""The refund dialog: amount and reason, a confirmation step, then refunds.request_refund with the dialog's own
Idempotency-Key — generated when the dialog is drawn, so a double click or a resent form refunds once."""
from __future__ import annotations

import uuid

import errors
from services.backoffice import queries
from services.formats import yuan
from services.lifecycle.refunds import refundable_fen
from services.refunds import refunds

from . import forms
from .base import PageHandler


def refundable_in(story: dict) -> int:
    """What the order in the story can still be refunded (services.lifecycle.refunds.refundable_fen)."""
    return refundable_fen(story["status"], story["amount_fen"],
                          [(r["amount_fen"], r["status"]) for r in story["refunds"]])


def new_key() -> str:
    """A fresh Idempotency-Key for one refund decision."""
    return f"bo-{uuid.uuid4().hex}"


class RefundDialogHandler(PageHandler):
    """GET and POST /admin/orders/{order_id}/refund (admin, finance): step `review`, `edit`, then `confirm`."""

    rights = {"GET": "refund", "POST": "refund"}

    async def get(self, order_id):
        story = await queries.order_story(order_id, self.operator.role)
        refundable = refundable_in(story)
        self.dialog(story, "form", amount=yuan(refundable), reason=refunds.DEFAULT_REASON,
                    key=new_key(), refundable=refundable)

    async def post(self, order_id):
        story = await queries.order_story(order_id, self.operator.role)
        step, key = self.form("step"), self.form("key")
        amount_text, reason = self.form("amount"), self.form("reason")
        values = dict(amount=amount_text, reason=reason, key=key or new_key(), refundable=refundable_in(story))
        if step == "confirm":
            await self.confirm(story, values)
            return
        if step == "review":
            try:
                values["amount_fen"] = forms.fen_from_yuan(amount_text, "amount")
                self.check(values)
            except errors.ServiceError as e:
                self.dialog(story, "form", status=e.status, error=e.message, **values)
                return
            self.dialog(story, "review", **values)
            return
        self.dialog(story, "form", **values)  # `edit`: back to the form with what was typed

    def check(self, values):
        """The service's own rules, told before the confirmation step (it checks them again under the lock)."""
        if not 1 <= values["amount_fen"] <= values["refundable"]:
            raise errors.refund_exceeds_paid()
        if not values["reason"] or len(values["reason"]) > refunds.MAX_REASON:
            raise errors.invalid_request(f"退款原因须为 1 到 {refunds.MAX_REASON} 个字")

    async def confirm(self, story, values):
        self.set_header("HX-Trigger", "story-changed")  # whatever the outcome, the order page redraws its story
        try:
            amount_fen = forms.fen_from_yuan(values["amount"], "amount")
            status, refund = await refunds.request_refund(
                self.ctx, self.operator, story["order_id"], {"amount_fen": amount_fen, "reason": values["reason"]},
                values["key"], self.operator_actor())
        except errors.ServiceError as e:
            if e.status >= 500:
                raise
            # Nothing was refunded (or WeChat Pay refused it): a new decision gets a new key.
            fresh = await queries.order_story(story["order_id"], self.operator.role)
            self.dialog(fresh, "form", status=e.status, error=e.message, rejected=e.code == "REFUND_REJECTED",
                        **dict(values, key=new_key(), refundable=refundable_in(fresh)))
            return
        self.dialog(story, "done", refund=refund, repeated=status == 200, **values)

    def dialog(self, story, step, status=200, error=None, rejected=False, **values):
        """The dialog alone for htmx (into #dialog), or as a page of its own without it."""
        self.show("refund.html", "_refund_dialog.html", "dialog", status, story=story, step=step, error=error,
                  rejected=rejected, **values)
