"""Refunds: asked by an operator, sent to WeChat Pay with our out_refund_no, settled once by whichever comes first
of WeChat Pay's notification and the reconciler's query; a refund WeChat Pay did not answer is kept PROCESSING and
sent again with the same out_refund_no, so it is never lost and never made twice."""
from __future__ import annotations

import datetime as dt
import logging

import errors
from models import Operator, PaymentOrder, Refund, utcnow
from telemetry.context import bind_order

from .. import audit
from ..formats import is_order_id, iso, yuan
from ..leases import refund_lease
from ..lifecycle.locks import lock_order, lock_refund
from ..lifecycle.refunds import open_refund, refundable_fen, refunds_of, set_refund_status
from ..lifecycle.statuses import (
    ABNORMAL, PROCESSING, REFUND_TRANSITIONS, REFUND_UNSETTLED, REFUNDABLE, REJECTED, WECHAT_REFUND_STATUSES,
    IllegalTransition,
)
from ..retry import backoff_seconds
from ..uow import run_in_transaction
from ..wechat.pay_gateway import PaymentGatewayError

log = logging.getLogger("gym.refunds")

MAX_REASON = 80  # WeChat Pay's limit
DEFAULT_REASON = "体验课退款"


def serialize(refund, order_id: str, operator=None) -> dict:
    """The contract's refund object."""
    return {
        "out_refund_no": refund.out_refund_no, "refund_id": refund.refund_id, "order_id": order_id,
        "amount_fen": refund.amount_fen, "amount": yuan(refund.amount_fen), "status": refund.status,
        "reason": refund.reason, "created_at": iso(refund.created_at), "success_time": refund.success_time,
        "operator": None if operator is None else {"id": operator.id, "username": operator.username},
    }


async def refund_views(refunds) -> list[dict]:
    """Refund objects for rows (their orders and operators read in two queries)."""
    refunds = list(refunds)
    order_ids = {r.order_id for r in refunds}
    operator_ids = {r.operator_id for r in refunds if r.operator_id}
    orders = {o.id: o.order_id for o in await PaymentOrder.select(PaymentOrder.id, PaymentOrder.order_id).where(
        PaymentOrder.id.in_(list(order_ids) or [0])).aio_execute()}
    operators = {o.id: o for o in await Operator.select(Operator.id, Operator.username).where(
        Operator.id.in_(list(operator_ids) or [0])).aio_execute()}
    return [serialize(r, orders.get(r.order_id), operators.get(r.operator_id)) for r in refunds]


def _check_key(idem_key):
    if not idem_key or not 1 <= len(idem_key) <= 128:
        raise errors.invalid_request("Idempotency-Key 请求头必填（1 到 128 个字符）", field="Idempotency-Key")


def _parse(body: dict):
    amount = body.get("amount_fen")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise errors.invalid_request("amount_fen 必须是整数（分）", field="amount_fen")
    reason = body.get("reason", DEFAULT_REASON)
    if reason is None:
        reason = DEFAULT_REASON
    if not isinstance(reason, str) or not reason.strip() or len(reason.strip()) > MAX_REASON:
        raise errors.invalid_request(f"reason 必须是 1 到 {MAX_REASON} 个字符", field="reason")
    return amount, reason.strip()


async def _open(uow, order_pk, amount, reason, operator, idem_key, actor):
    order = await lock_order(order_pk)
    existing = await Refund.select().where((Refund.order == order.id) & (Refund.idem_key == idem_key)).aio_first()
    if existing is not None:
        return 200, existing
    if order.status not in REFUNDABLE:
        raise errors.order_not_refundable()
    if not 1 <= amount <= refundable_fen(order.status, order.amount_fen, await refunds_of(order)):
        raise errors.refund_exceeds_paid()
    return 201, await open_refund(uow, order, amount, reason, operator, idem_key, actor)


async def request_refund(ctx, operator, order_id, body: dict, idem_key, actor) -> tuple[int, dict]:
    """An operator asks for a refund: (201, refund) when new, (200, refund) for a repeated Idempotency-Key.

    Raises 409 REFUND_REJECTED when WeChat Pay refuses it outright; no answer or a 5xx keeps it PROCESSING (201).
    """
    _check_key(idem_key)
    order = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_first() \
        if is_order_id(order_id) else None
    if order is None:
        raise errors.not_found("订单不存在")
    bind_order(order.order_id)
    seen = await Refund.select().where((Refund.order == order.id) & (Refund.idem_key == idem_key)).aio_first()
    if seen is not None:  # the same key again: that refund, whatever the body (contract §2)
        return 200, (await refund_views([seen]))[0]
    amount, reason = _parse(body)
    status, refund = await run_in_transaction(ctx, _open, order.id, amount, reason, operator, idem_key, actor)
    if status == 201:
        lease = refund_lease(refund.id)
        if await lease.try_claim():
            lease.start_heartbeat()
            try:
                await submit(ctx, refund.id, actor, lease)
            finally:
                await lease.end()
    refund = await Refund.select().where(Refund.id == refund.id).aio_get()
    return status, serialize(refund, order.order_id, operator if refund.operator_id == operator.id else
                             await Operator.select().where(Operator.id == refund.operator_id).aio_first())


async def submit(ctx, refund_pk, actor, lease):
    """Send the refund to WeChat Pay (again, with the same out_refund_no, when it was never seen) under its lease."""
    refund = await Refund.select().where(Refund.id == refund_pk).aio_get()
    order = await PaymentOrder.select().where(PaymentOrder.id == refund.order_id).aio_get()
    try:
        answer = await ctx.gateway.refund(refund.out_refund_no, order.order_id, refund.amount_fen, order.amount_fen,
                                          refund.reason)
    except PaymentGatewayError as e:
        if e.retryable:
            log.warning("refund %s not answered by WeChat Pay, kept PROCESSING: %s", refund.out_refund_no, e)
            await run_in_transaction(ctx, _unanswered, refund_pk, e, actor, lease)
            return
        await run_in_transaction(ctx, _rejected, order.id, refund_pk, e, actor, lease)
        raise errors.refund_rejected(e.message) from e
    await run_in_transaction(ctx, _settle_locked, ctx.settings, order.id, refund_pk, answer, actor, "submit", lease)


async def _unanswered(uow, refund_pk, error, actor, lease):
    refund = await lock_refund(refund_pk, lease)
    await Refund.update(last_error=f"{error.code}: {error.message}"[:255], updated_at=utcnow()).where(
        Refund.id == refund.id).aio_execute()
    order = await PaymentOrder.select().where(PaymentOrder.id == refund.order_id).aio_get()
    await audit.record("refund_submit_failed", actor, order=order, refund=refund, entity="refund",
                       old_status=refund.status, new_status=refund.status, error=f"{error.code}: {error.message}")


async def _rejected(uow, order_pk, refund_pk, error, actor, lease):
    order = await lock_order(order_pk)
    refund = await lock_refund(refund_pk, lease)
    await set_refund_status(uow, None, refund, order, REJECTED, actor, "refund_rejected",
                            detail=f"{error.code}: {error.message}", last_error=f"{error.code}: {error.message}"[:255],
                            request={"code": error.code, "message": error.message})


async def _settle_locked(uow, settings, order_pk, refund_pk, answer, actor, source, lease=None):
    order = await lock_order(order_pk)
    refund = await lock_refund(refund_pk, lease)
    return await settle(uow, settings, order, refund, answer, actor, source)


async def settle(uow, settings, order, refund, wechat: dict, actor, source) -> str:
    """Apply WeChat Pay's view of the refund (an answer, a query or a notification) to the locked rows, once.

    Returns 'applied', 'duplicate' or 'anomaly' (the inbox's outcomes).
    """
    new = wechat.get("refund_status") or wechat.get("status")
    amount = wechat.get("amount") or {}
    problem = None
    if wechat.get("out_refund_no") not in (None, refund.out_refund_no):
        problem = "out_refund_no mismatch"
    elif wechat.get("out_trade_no") not in (None, order.order_id):
        problem = "out_trade_no mismatch"
    elif amount.get("refund") not in (None, refund.amount_fen):
        problem = f"refund amount mismatch: {amount.get('refund')} != {refund.amount_fen}"
    elif wechat.get("mchid") not in (None, settings.wechatpay_mchid):
        problem = "mchid mismatch"
    elif new not in WECHAT_REFUND_STATUSES:
        problem = f"unknown refund status {new!r}"
    if problem:
        await audit.record("refund_anomaly", actor, order=order, refund=refund, entity="refund", request=wechat,
                           error=problem, old_status=refund.status, new_status=refund.status)
        return "anomaly"
    seen = {}
    if refund.submitted_at is None:
        seen["submitted_at"] = utcnow()
    if wechat.get("refund_id") and not refund.refund_id:
        seen["refund_id"] = str(wechat["refund_id"])[:64]
    if new == refund.status or new not in REFUND_TRANSITIONS.get(refund.status, ()):
        if seen:
            await Refund.update(**seen).where(Refund.id == refund.id).aio_execute()
        return "duplicate"
    fields = dict(seen, success_time=str(wechat.get("success_time") or "")[:40] or None,
                  user_received_account=str(wechat.get("user_received_account") or "")[:64] or None)
    try:
        await set_refund_status(uow, settings, refund, order, new, actor, f"refund_{new.lower()}",
                                detail=f"source={source}", request=wechat, **fields)
    except IllegalTransition:
        return "duplicate"
    return "applied"


# -- the reconciler's part ----------------------------------------------------------------------------------------

async def refunds_to_check(now, interval, batch) -> list[int]:
    """PROCESSING refunds not heard of for an interval, and ABNORMAL ones, least recently checked first."""
    stale = now - dt.timedelta(seconds=interval)
    return [r.id for r in await Refund.select(Refund.id).where(
        (((Refund.status == PROCESSING) & (Refund.created_at <= stale)) | (Refund.status == ABNORMAL))
        & (Refund.next_check_at.is_null() | (Refund.next_check_at <= now)))
        .order_by(Refund.next_check_at, Refund.id).limit(batch).aio_execute()]


async def check_refund(ctx, refund_pk, lease, actor=audit.SYSTEM):
    """Ask WeChat Pay about one refund; settle it, or send it again when WeChat Pay never saw it."""
    refund = await Refund.select().where(Refund.id == refund_pk).aio_get()
    if refund.status not in REFUND_UNSETTLED:
        return
    answer = await ctx.gateway.query_refund(refund.out_refund_no)
    if answer is None:
        if refund.status == PROCESSING:
            log.info("refund %s unknown to WeChat Pay: sending it again", refund.out_refund_no)
            try:
                await submit(ctx, refund_pk, actor, lease)
            except errors.ServiceError:
                pass  # refused outright: now REJECTED, with its audit row
        return
    await run_in_transaction(ctx, _settle_locked, ctx.settings, refund.order_id, refund_pk, answer, actor, "query",
                             lease)


async def refund_checked(refund_pk, interval, failed: bool, abnormal_seconds=600):
    """Note the check; failures back off, and an ABNORMAL refund is looked at only every `abnormal_seconds`."""
    refund = await Refund.select(Refund.check_failures, Refund.status).where(Refund.id == refund_pk).aio_first()
    if refund is None:
        return
    failures = refund.check_failures + 1 if failed else 0
    delay = backoff_seconds(interval, failures)
    if refund.status == ABNORMAL:
        delay = max(delay, abnormal_seconds)
    await Refund.update(check_failures=failures, next_check_at=utcnow() + dt.timedelta(seconds=delay)).where(
        Refund.id == refund_pk).aio_execute()

