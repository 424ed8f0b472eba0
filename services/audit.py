"""Audit rows for payment_audit_log, written inside the caller's transaction, with secrets masked."""
from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass

from models import PaymentAuditLog
from telemetry.context import current_request_id

_SECRET_KEYS = {"openid", "sub_openid", "session_key", "password", "secret", "token", "access_token",
                "authorization", "paysign", "ciphertext", "apiv3_key", "private_key", "code", "js_code"}


@dataclass(frozen=True)
class Actor:
    """Who caused a change: kind is user | operator | system | wechat; ip and user agent when a request did."""

    kind: str
    user_id: int | None = None
    operator_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None


SYSTEM = Actor("system")
WECHAT = Actor("wechat")


def mask_value(value: str) -> str:
    """Keep a hint of a secret (first and last 3 characters) and hide the rest."""
    text = str(value)
    if len(text) <= 8:
        return "***"
    return f"{text[:3]}***{text[-3:]}"


def mask(data):
    """A copy of data with every secret-looking key's value masked, recursively."""
    if isinstance(data, dict):
        return {k: (mask_value(v) if k.lower() in _SECRET_KEYS and v not in (None, "") else mask(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [mask(v) for v in data]
    return data


def _snapshot(data):
    if data is None:
        return None
    return json.dumps(mask(data), ensure_ascii=False, default=str)[:60000]


pending_rows = contextvars.ContextVar("pending_audit_rows", default=None)


def collect():
    """Start collecting this transaction's audit rows (services.uow calls it; flush() writes them). A nested
    transaction adds to the outer one's rows (None is returned: the outer one flushes)."""
    if pending_rows.get() is not None:
        return None
    rows = []
    pending_rows.set(rows)
    return rows


def discard(rows):
    """The transaction failed: stop collecting (its rows roll back with it)."""
    if rows is not None:
        pending_rows.set(None)


async def flush(rows):
    """Write the collected rows in one INSERT (inside the transaction, before it commits)."""
    if rows is None:
        return
    pending_rows.set(None)
    if rows:
        await PaymentAuditLog.insert_many(rows).aio_execute()


async def record(action, actor: Actor, *, order=None, transaction=None, refund=None, entity="order",
                 old_status=None, new_status=None, detail=None, request=None, response=None, error=None):
    """One audit row, written in the transaction that makes the change (batched with the transaction's others)."""
    row = dict(
        order=order.id if order is not None else None,
        transaction=transaction.id if transaction is not None else None,
        refund=refund.id if refund is not None else None,
        user=actor.user_id if actor.user_id is not None else (order.user_id if order is not None else None),
        operator=actor.operator_id,
        actor=actor.kind,
        action_type=action,
        action_detail=detail,
        entity=entity,
        old_status=old_status,
        new_status=new_status,
        ip_address=actor.ip,
        user_agent=(actor.user_agent or None) and actor.user_agent[:1000],
        request_data=_snapshot(request),
        response_data=_snapshot(response),
        error_message=error,
        request_id=current_request_id(),
    )
    rows = pending_rows.get()
    if rows is not None:
        rows.append(row)
    else:
        await PaymentAuditLog.insert(**row).aio_execute()
