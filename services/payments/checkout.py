"""Paying: the WeChat Pay order (JSAPI or Native) under the order's lease, and cancelling — close at WeChat Pay
first, then release."""
from __future__ import annotations

import logging


import errors
from models import PaymentOrder, database, personal_data, utcnow
from models.prepared import Prepared
from telemetry import metrics
from telemetry.context import bind_order

from .. import audit
from ..formats import is_order_id
from ..leases import LeaseLost, holding, order_lease
from ..lifecycle.locks import lock_order, lock_order_with_reservation, split
from ..lifecycle.orders import apply_payment, end_order, payable_problem, start_payment
from ..lifecycle.statuses import CANCELLED, FAILED, PENDING, TRADE_PAID
from ..orders.views import USER_ORDER, get_user_order, order_view
from ..uow import run_in_transaction
from ..wechat.pay_gateway import PaymentGatewayError
from . import qr_codes

log = logging.getLogger("gym.payments")

CANCEL_REASONS = {"user_cancelled": CANCELLED, "payment_failed": FAILED}

# The prepay id (or Native code URL) kept, and the lease given back, in one statement — if still pending and ours.
SAVE_PREPAY = {column: Prepared(
    f"UPDATE `payment_orders` SET `{column}` = %s, `updated_at` = %s, `lease_owner` = NULL, `lease_until` = NULL "
    f"WHERE `id` = %s AND `status` = '{PENDING}' AND `lease_owner` = %s AND `lease_until` > UTC_TIMESTAMP(6)")
    for column in ("prepay_id", "code_url")}


async def _start_under_lease(uow, order_pk, trade_type, actor, lease):
    """The payment's start, step by step, with the order's lease held (it says why when the order is not payable)."""
    order, reservation = await lock_order_with_reservation(order_pk, lease)
    await start_payment(uow, order, reservation, trade_type, actor, utcnow())
    return order


async def _claim_and_start(uow, order, reservation, trade_type, actor, lease) -> bool:
    """The order's lease claimed and the payment started in one statement; False when the slow path must decide."""
    return await start_payment(uow, order, reservation, trade_type, actor, utcnow(), claim_lease=lease)


async def _save_prepay(uow, order, column, value, actor, lease) -> bool:
    """Keep the prepay id (or code URL) and give the lease back, if the order is still pending under our lease;
    False otherwise."""
    audit_sql, audit_params = audit.guarded(1, "prepay_created", actor, order=order, old_status=PENDING,
                                            new_status=PENDING, detail=f"{order.trade_type} {column} obtained")
    saved, _ = await Prepared(SAVE_PREPAY[column].sql + ";" + audit_sql).each(
        value, utcnow(), order.id, lease.token, *audit_params, last_of=uow.ending())  # with its COMMIT: one trip
    if saved.rowcount != 1:
        return False
    lease.given_back = True
    return True


async def _record_gateway_error(uow, order_pk, what, error, actor):
    order = await PaymentOrder.select().where(PaymentOrder.id == order_pk).aio_get()
    await audit.record(f"{what}_failed", actor, order=order, old_status=order.status, new_status=order.status,
                       error=f"{error.code}: {error.message}", response={"code": error.code, "message": error.message})


def _gateway_error_to_service(e: PaymentGatewayError):
    if e.retryable:
        return errors.payment_unavailable()
    if e.code in ("ORDER_PAID", "ORDER_CLOSED", "OUT_TRADE_NO_USED"):
        return errors.order_not_payable("微信支付订单已关闭或已支付")
    return errors.ServiceError(422, "PAYMENT_REJECTED", f"微信支付拒绝了该订单：{e.message}", wechat_code=e.code)


async def obtain_prepay(ctx, user_id, order_id, trade_type, actor):
    """Place (or reuse) the WeChat Pay order; returns the order row with prepay_id (JSAPI) or code_url (NATIVE).

    The order's lease is held from the check to the saved prepay, so a cancel or an expiry of the same order
    waits for it and then finds the WeChat Pay order to close.
    """
    column = "prepay_id" if trade_type == "JSAPI" else "code_url"
    async with database.aio_connection():  # the read and the claim on one connection of the pool (one acquire)
        row = await USER_ORDER.first(order_id, user_id) if is_order_id(order_id) else None
        if row is None:
            raise errors.not_found("订单不存在")
        bind_order(row.order_id)
        order, reservation = split(row)
        if getattr(order, column) and payable_problem(order, reservation, trade_type, utcnow()) is None:
            return order  # asked again: the same prepay, nothing to change (WeChat Pay keeps it 2 hours)
        user_openid = personal_data.decrypt(row.openid_encrypted) if trade_type == "JSAPI" else None
        lease = order_lease(order.id)
        # The usual case: the lease claimed and the payment started in one statement. Otherwise (busy, or something
        # to refuse) the step-by-step path, which says which (after this connection is given back: it may wait).
        started = reservation is not None and await run_in_transaction(ctx, _claim_and_start, order, reservation,
                                                                       trade_type, actor, lease)
    if not started:
        await lease.claim_waiting(15.0)
    lease.start_heartbeat()
    try:
        if not started:
            order = await _in_lease(ctx, _start_under_lease, order.id, trade_type, actor, lease)
        if getattr(order, column):
            return order
        return await _place(ctx, order, trade_type, column, user_openid, actor, lease)
    finally:
        await lease.end()


async def _place(ctx, order, trade_type, column, user_openid, actor, lease):
    """Ask WeChat Pay for the order (under the lease) and keep its prepay id or code URL."""
    try:
        value = await ctx.gateway.place_order(trade_type, order.order_id, order.description, order.amount_fen,
                                              order.expires_at, openid=user_openid)
    except PaymentGatewayError as e:
        log.warning("placing %s for %s failed: %s", trade_type, order.order_id, e)
        await run_in_transaction(ctx, _record_gateway_error, order.id, "prepay", e, actor)
        if e.code == "ORDER_PAID":
            await settle_from_wechat(ctx, order.id, actor, source="query")
        raise _gateway_error_to_service(e) from e
    saved = await run_in_transaction(ctx, _save_prepay, order, column, value, actor, lease)
    if not saved and await lease.try_claim():
        # The lease ran out while WeChat Pay answered (a loaded process), but nobody took the order meanwhile:
        # had a cancel or an expiry run, the order would no longer be pending and the save would still refuse.
        saved = await run_in_transaction(ctx, _save_prepay, order, column, value, actor, lease)
    if not saved:
        # Never hand out a prepay for an order that ended meanwhile: close what WeChat Pay just opened.
        log.error("order %s ended while its prepay was in flight; closing the WeChat Pay order", order.order_id)
        try:
            await ctx.gateway.close_order(order.order_id)
        except PaymentGatewayError as e:
            log.warning("closing %s after a lost lease failed (the reconciler retries): %s", order.order_id, e)
        raise errors.order_not_payable("订单已不是待支付状态")
    setattr(order, column, value)
    metrics.PAYMENTS_STARTED.inc()
    return order


async def _in_lease(ctx, fn, *args):
    """run_in_transaction for a step that checks its lease: a lost lease is a 503, safe to retry."""
    try:
        return await run_in_transaction(ctx, fn, *args)
    except LeaseLost as e:
        raise errors.service_unavailable("订单正在处理中，请稍后重试") from e


async def _apply_queried(uow, ctx, order_pk, txn, actor, source):
    order, reservation = await lock_order_with_reservation(order_pk)
    return await apply_payment(uow, ctx.settings, order, reservation, txn, actor, source)


async def settle_from_wechat(ctx, order_pk, actor, source="query"):
    """Ask WeChat Pay about the order and apply a SUCCESS answer; returns the trade_state or None."""
    order = await PaymentOrder.select().where(PaymentOrder.id == order_pk).aio_get()
    txn = await ctx.gateway.query(order.order_id)
    if txn and txn.get("trade_state") in TRADE_PAID:
        await run_in_transaction(ctx, _apply_queried, ctx, order_pk, txn, actor, source)
    return txn.get("trade_state") if txn else None


_CLOSE_FIRST = object()


async def _release(uow, order_pk, new_status, reason, actor, action, lease, closed, response=None):
    """End the pending order and free its seat, unless a WeChat Pay order exists that was not closed just now."""
    order = await lock_order(order_pk, lease)
    if order.status != PENDING:
        return order
    if order.trade_type and not closed:
        return _CLOSE_FIRST  # payment started after we looked: WeChat Pay must confirm the close first
    await end_order(uow, order, new_status, reason, actor, action, response=response)
    return order


async def close_and_release(ctx, order_pk, new_status, reason, actor, action, lease):
    """Close the WeChat Pay order (if any) and release the seat; a paid answer applies the payment instead.

    Call with the order's lease held. Raises PaymentGatewayError when WeChat Pay cannot confirm the close, and
    LeaseLost when the lease ran out before the release committed.
    """
    for _ in range(3):
        order = await PaymentOrder.select().where(PaymentOrder.id == order_pk).aio_get()
        if order.status != PENDING:
            return order
        outcome = None
        if order.trade_type:
            outcome = await ctx.gateway.close_order(order.order_id)
            if outcome == "paid":
                await settle_from_wechat(ctx, order_pk, actor, source="close")
                return await PaymentOrder.select().where(PaymentOrder.id == order_pk).aio_get()
        result = await run_in_transaction(ctx, _release, order_pk, new_status, reason, actor, action, lease,
                                          outcome is not None,
                                          response={"wechat_close": outcome} if outcome else None)
        if result is not _CLOSE_FIRST:
            return result
    raise errors.service_unavailable("订单正在处理中，请稍后重试")


async def cancel_order(ctx, user_id, order_id, body, actor) -> dict:
    """The parent cancels (or reports a failed payment): the order as it now stands."""
    reason = body.get("reason", "user_cancelled")
    if not isinstance(reason, str) or reason not in CANCEL_REASONS:
        raise errors.invalid_request("reason 必须是 user_cancelled 或 payment_failed", field="reason")
    order = await get_user_order(user_id, order_id)
    if order.status == PENDING:
        async with holding(order_lease(order.id)) as lease:
            action = "order_cancelled" if reason == "user_cancelled" else "payment_failed"
            try:
                order = await close_and_release(ctx, order.id, CANCEL_REASONS[reason], reason, actor, action, lease)
            except PaymentGatewayError as e:
                await run_in_transaction(ctx, _record_gateway_error, order.id, "close", e, actor)
                raise errors.payment_unavailable("暂时无法关闭微信支付订单，请稍后重试") from e
            except LeaseLost as e:
                raise errors.service_unavailable("订单正在处理中，请稍后重试") from e
    else:
        order = await PaymentOrder.select().where(PaymentOrder.id == order.id).aio_get()
    return await order_view(order)


async def request_payment(ctx, user_id, body: dict, actor) -> dict:
    """The wx.requestPayment parameters for the order named in the request."""
    order_id = body.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise errors.invalid_request("order_id 必填", field="order_id")
    order = await obtain_prepay(ctx, user_id, order_id, "JSAPI", actor)
    return ctx.gateway.request_payment_params(order.prepay_id)


async def native_qr_png(ctx, user_id, order_id, actor) -> bytes:
    """The Native-pay QR code of the order, as PNG bytes."""
    order = await obtain_prepay(ctx, user_id, order_id, "NATIVE", actor)
    return await qr_codes.png_of(order.code_url)
