"""WeChat Pay transactions: whether one belongs to an order, and its row in payment_transactions (written only as
part of applying a payment, services.lifecycle.orders.apply_payment)."""
from __future__ import annotations

from types import SimpleNamespace

from models import personal_data
from models.prepared import Prepared

INSERT_TRANSACTION = Prepared(
    "INSERT INTO `payment_transactions` (`transaction_id`, `order_id`, `out_trade_no`, `trade_type`, `trade_state`, "
    "`bank_type`, `total_fee`, `payer_total`, `fee_type`, `payer_openid_encrypted`, `success_time`, `source`, "
    "`created_at`, `updated_at`) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")


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


def _payer_openid_encrypted(txn) -> str | None:
    payer = txn.get("payer")
    openid = payer.get("openid") if isinstance(payer, dict) else None
    return personal_data.encrypt(openid[:128]) if isinstance(openid, str) and openid else None


async def record_transaction(order, txn, source, now) -> SimpleNamespace:
    """Insert the transaction (once: transaction_id is unique, and the order shows no transaction yet)."""
    amount = txn.get("amount") or {}
    trade_state = str(txn.get("trade_state", "SUCCESS"))[:32]
    row_id = await INSERT_TRANSACTION.insert(
        txn["transaction_id"], order.id, order.order_id, str(txn.get("trade_type") or order.trade_type or "JSAPI")[:32],
        trade_state, str(txn.get("bank_type") or "")[:32] or None, amount.get("total"), amount.get("payer_total"),
        str(amount.get("currency", "CNY"))[:8], _payer_openid_encrypted(txn),
        str(txn.get("success_time") or "")[:40] or None, source, now, now)
    return SimpleNamespace(id=row_id, trade_state=trade_state)
