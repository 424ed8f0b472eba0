"""WeChat Pay transactions: whether one belongs to an order, and its row in payment_transactions."""
from __future__ import annotations

from models import PaymentTransaction, utcnow


def check_transaction(settings, order, txn: dict) -> str | None:
    """Why a SUCCESS transaction cannot belong to this order, or None when it matches."""
    amount = txn.get("amount") or {}
    if txn.get("appid") != settings.wechat_appid:
        return "appid mismatch"
    if txn.get("mchid") != settings.wechatpay_mchid:
        return "mchid mismatch"
    if txn.get("out_trade_no") != order.order_id:
        return "out_trade_no mismatch"
    if amount.get("total") != order.amount_fen:
        return f"amount mismatch: {amount.get('total')} != {order.amount_fen}"
    if amount.get("currency", "CNY") != order.currency:
        return "currency mismatch"
    if not isinstance(txn.get("transaction_id"), str) or not txn["transaction_id"] or len(txn["transaction_id"]) > 64:
        return "no transaction_id"
    return None


async def record_transaction(order, txn, source) -> PaymentTransaction:
    """Insert the transaction (once: transaction_id is unique) and return its row."""
    amount = txn.get("amount") or {}
    await PaymentTransaction.insert(
        transaction_id=txn["transaction_id"], order=order.id, out_trade_no=order.order_id,
        trade_type=str(txn.get("trade_type") or order.trade_type or "JSAPI")[:32],
        trade_state=str(txn.get("trade_state", "SUCCESS"))[:32], bank_type=str(txn.get("bank_type") or "")[:32] or None,
        total_fee=amount.get("total"), payer_total=amount.get("payer_total"),
        fee_type=str(amount.get("currency", "CNY"))[:8], openid=str((txn.get("payer") or {}).get("openid") or "")[:128]
        or None, success_time=str(txn.get("success_time") or "")[:40] or None, source=source,
    ).on_conflict(update={PaymentTransaction.updated_at: utcnow()}).aio_execute()
    return await PaymentTransaction.select().where(
        PaymentTransaction.transaction_id == txn["transaction_id"]).aio_get()
