"""Audit rows for payment_audit_log, written inside the caller's transaction, with secrets masked and personal data
reduced to what an investigation needs (models/personal_data.py: no payer object, ids that name a person masked)."""
from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass

from models import personal_data, utcnow
from models.personal_data import mask_value
from models.prepared import Prepared
from telemetry.context import current_request_id

_SECRET_KEYS = {"session_key", "password", "secret", "token", "access_token",
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
    return json.dumps(mask(personal_data.snapshot(data)), ensure_ascii=False, default=str)[:60000]


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


_COLUMNS = ("order_id", "transaction_id", "refund_id", "user_id", "operator_id", "actor", "action_type",
            "action_detail", "entity", "old_status", "new_status", "ip_address", "user_agent", "request_data",
            "response_data", "error_message", "request_id", "created_at")
_INSERT = {}  # number of rows -> the INSERT for them, built once


def _insert_for(count: int) -> Prepared:
    statement = _INSERT.get(count)
    if statement is None:
        row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
        statement = _INSERT[count] = Prepared(
            f"INSERT INTO `payment_audit_log` ({', '.join(f'`{c}`' for c in _COLUMNS)}) VALUES "
            + ", ".join([row] * count))
    return statement


async def flush(rows, tx=None):
    """Write the collected rows in one INSERT, the last statement of the transaction `tx` (its COMMIT goes with it)."""
    if rows is None:
        return
    pending_rows.set(None)
    if rows:
        if tx is not None:
            tx.commit_with_next()
        await _insert_for(len(rows)).execute(*(value for row in rows for value in row))


def _row(action, actor: Actor, *, order=None, transaction=None, refund=None, entity="order", old_status=None,
         new_status=None, detail=None, request=None, response=None, error=None, user_id=None) -> tuple:
    if actor.user_id is not None:
        user_id = actor.user_id
    elif user_id is None and order is not None:
        user_id = order.user_id
    return (
        order.id if order is not None else None,
        transaction.id if transaction is not None else None,
        refund.id if refund is not None else None,
        user_id,
        actor.operator_id, actor.kind, action, detail, entity, old_status, new_status, actor.ip,
        (actor.user_agent or None) and actor.user_agent[:1000], _snapshot(request), _snapshot(response), error,
        current_request_id(), utcnow(),
    )


# One audit row written only if the statement before it (in the same packet) changed `%s` rows: the change and its
# audit row in one round trip (ROW_COUNT() is the previous statement's count of rows changed).
GUARDED_INSERT = (f"INSERT INTO `payment_audit_log` ({', '.join(f'`{c}`' for c in _COLUMNS)}) SELECT "
                  + ", ".join(["%s"] * len(_COLUMNS)) + " FROM DUAL WHERE ROW_COUNT() = %s")


def guarded(when_rows: int, action, actor: Actor, **fields) -> tuple[str, tuple]:
    """(SQL, parameters) of the audit row `record` would write, to follow a change in its packet: written only
    when that change's statement changed `when_rows` rows."""
    return GUARDED_INSERT, (*_row(action, actor, **fields), when_rows)


def inline(rows: list[tuple], order_sql: str) -> tuple[str, tuple]:
    """(SQL, parameters) of one INSERT of rows made by `row()` for an order whose id is not known yet: `order_sql`
    (a user variable set earlier in the same packet) stands for each row's order id. For a transaction's last
    packet, when nothing else waits to be flushed (UnitOfWork.ending())."""
    one = "(" + order_sql + ", " + ", ".join(["%s"] * (len(_COLUMNS) - 1)) + ")"
    sql = (f"INSERT INTO `payment_audit_log` ({', '.join(f'`{c}`' for c in _COLUMNS)}) VALUES "
           + ", ".join([one] * len(rows)))
    return sql, tuple(value for r in rows for value in r[1:])


def row(action, actor: Actor, **fields) -> tuple:
    """The values of one audit row (as record() would write it), for inline()."""
    return _row(action, actor, **fields)


def nothing_pending() -> bool:
    """No audit row waits to be flushed with this transaction's end."""
    return not pending_rows.get()


async def record(action, actor: Actor, *, order=None, transaction=None, refund=None, entity="order",
                 old_status=None, new_status=None, detail=None, request=None, response=None, error=None,
                 user_id=None):
    """One audit row, written in the transaction that makes the change (batched with the transaction's others);
    `user_id` names the parent concerned when neither the actor nor an order does (a waitlist entry's)."""
    row = _row(action, actor, order=order, transaction=transaction, refund=refund, entity=entity,
               old_status=old_status, new_status=new_status, detail=detail, request=request, response=response,
               error=error, user_id=user_id)
    rows = pending_rows.get()
    if rows is not None:
        rows.append(row)
    else:
        await _insert_for(1).execute(*row)
