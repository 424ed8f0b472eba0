"""Rows as the first landed release (f8cfebf) wrote them, into its schema (tests/models/schema_f8cfebf.sql).

Its columns only, its statuses and audit actions (services/orders.py, payments.py and lifecycle.py of that release):
parents, an operator, two class sessions, and orders of every kind a gym would hold by then, each with its
reservation, transaction, booking notice, idempotency key and audit trail as that release left them.
"""
from __future__ import annotations

import datetime as dt
import json

PRICE_FEN = 20000


def _now():
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class _Writer:
    def __init__(self, cur):
        self.cur = cur

    def insert(self, table, **row) -> int:
        names = ", ".join(f"`{c}`" for c in row)
        self.cur.execute(f"INSERT INTO `{table}` ({names}) VALUES ({', '.join(['%s'] * len(row))})",
                         tuple(row.values()))
        return self.cur.lastrowid

    def audit(self, at, order, action, *, actor="user", entity="order", old=None, new=None, detail=None,
              transaction=None, request=None):
        self.insert("payment_audit_log", order_id=order["id"], transaction_id=transaction, refund_id=None,
                    user_id=order["user_id"], operator_id=None, actor=actor, action_type=action,
                    action_detail=detail, entity=entity, old_status=old, new_status=new,
                    ip_address="203.0.113.7" if actor == "user" else None,
                    user_agent="Mozilla/5.0 MicroMessenger" if actor == "user" else None,
                    request_data=json.dumps(request, ensure_ascii=False) if request else None,
                    response_data=None, error_message=None, created_at=at)


def _order(w, n, user_id, schedule, at, status, *, started=False, paid=False):
    """An order and its reservation as `_create` made them, moved on to `status`; returns the order's row."""
    order_id, reservation_id = f"{n:032x}", f"{n + 1000:032x}"
    live = status in ("pending", "paid")
    row = dict(order_id=order_id, user_id=user_id, course_schedule_id=schedule["id"], amount="200.00",
               amount_fen=PRICE_FEN, currency="CNY", status=status, payment_method="wechat_pay",
               description=f"体验课 {schedule['title']}", trial_slot=user_id if live else None,
               trade_type="JSAPI" if started else None, prepay_id=f"wx{n:030d}" if started else None,
               code_url=None, payment_started_at=at + dt.timedelta(seconds=20) if started else None,
               transaction_id=f"42000{n:023d}" if paid else None,
               paid_at=at + dt.timedelta(minutes=1) if paid else None, refunded_fen=0,
               failure_reason={"cancelled": "user_cancelled", "expired": "seat_hold_lapsed"}.get(status),
               lease_owner=None, lease_until=None, last_checked_at=None, created_at=at, updated_at=at,
               expires_at=at + dt.timedelta(minutes=30))
    row["id"] = w.insert("payment_orders", **row)
    seat = {"pending": "temporary", "paid": "confirmed", "cancelled": "cancelled", "expired": "expired"}[status]
    w.insert("seat_reservations", reservation_id=reservation_id, order_id=row["id"],
             course_schedule_id=schedule["id"], user_id=user_id, seat_count=1, status=seat,
             payment_started=started, expires_at=at + dt.timedelta(minutes=30 if started else 10),
             confirmed_at=row["paid_at"], released_at=at + dt.timedelta(minutes=10) if not live else None,
             created_at=at, updated_at=at)
    w.audit(at, row, "order_created", new="pending", request={"course_schedule_id": schedule["id"], "amount": "200.00"},
            detail=f"schedule {schedule['id']}, 200.00 CNY")
    w.audit(at, row, "seat_held", entity="reservation", new="temporary", detail=f"reservation {reservation_id}")
    if started:
        w.audit(at, row, "payment_started", entity="reservation", old="temporary", new="temporary",
                detail="JSAPI; hold extended to the order's end")
        w.audit(at, row, "prepay_created", old="pending", new="pending")
    if paid:
        txn = w.insert("payment_transactions", transaction_id=row["transaction_id"], order_id=row["id"],
                       out_trade_no=order_id, trade_type="JSAPI", trade_state="SUCCESS", bank_type="OTHERS",
                       total_fee=PRICE_FEN, payer_total=PRICE_FEN, fee_type="CNY", openid=f"o-parent-{user_id}",
                       success_time="2026-11-21T10:00:00+08:00", source="notify", created_at=at, updated_at=at)
        w.audit(at, row, "transaction_recorded", actor="wechat", entity="transaction", new="SUCCESS",
                transaction=txn, detail="source=notify")
        w.audit(at, row, "seat_confirmed", actor="wechat", entity="reservation", old="temporary", new="confirmed")
        w.audit(at, row, "payment_succeeded", actor="wechat", old="pending", new="paid", detail="source=notify")
        w.insert("notification_receipts", event_id=f"evt-{n}", event_type="TRANSACTION.SUCCESS", out_trade_no=order_id,
                 outcome="applied", deliveries=1, first_seen_at=at, last_seen_at=at)
    elif not live:
        w.audit(at, row, f"seat_{seat}", actor="user" if status == "cancelled" else "system", entity="reservation",
                old="temporary", new=seat, detail=f"seat released: {row['failure_reason']}")
        w.audit(at, row, f"order_{status}", actor="user" if status == "cancelled" else "system", old="pending",
                new=status, detail=row["failure_reason"])
    return row


def write(cur) -> dict:
    """Write the rows; returns {'orders': {status: order row}, 'schedules': [...], 'notices': n}."""
    w, now = _Writer(cur), _now()
    w.insert("operators", username="admin", password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
             role="admin", active=True, created_at=now - dt.timedelta(days=30), last_login_at=None)
    schedules = []
    for title, starts, capacity in (("少儿体操体验课（4-6岁）", now + dt.timedelta(days=2), 8),
                                    ("亲子体操体验课", now - dt.timedelta(days=1), 2)):
        row = dict(title=title, starts_at=starts, capacity=capacity, created_by=None, created_at=now, updated_at=now)
        row["id"] = w.insert("course_schedules", **row)
        schedules.append(row)
    users = [w.insert("users", openid=f"o-parent-{i}", unionid=None, created_at=now, last_login_at=now)
             for i in range(1, 6)]
    upcoming, past = schedules
    orders = {
        "paid": _order(w, 1, users[0], upcoming, now - dt.timedelta(hours=3), "paid", started=True, paid=True),
        "paid_earlier": _order(w, 2, users[1], past, now - dt.timedelta(days=3), "paid", started=True, paid=True),
        "pending": _order(w, 3, users[2], upcoming, now - dt.timedelta(minutes=2), "pending", started=True),
        "cancelled": _order(w, 4, users[3], upcoming, now - dt.timedelta(hours=2), "cancelled"),
        "expired": _order(w, 5, users[4], past, now - dt.timedelta(days=2), "expired"),
    }
    w.insert("idempotency_keys", user_id=users[0], idem_key="mp-7f3a", request_hash="0" * 64,
             order_id=orders["paid"]["id"], status_code=201, created_at=now)
    for name, status, attempts in (("paid", "sent", 1), ("paid_earlier", "pending", 2)):
        order = orders[name]
        payload = {"thing1": {"value": "少儿体操体验课"}, "phrase4": {"value": "预约成功"}}
        w.insert("booking_notices", order_id=order["id"], openid=f"o-parent-{order['user_id']}", template_id="tmpl-1",
                 payload=json.dumps(payload, ensure_ascii=False), status=status, attempts=attempts,
                 next_attempt_at=now, lease_until=None, last_error=None if status == "sent" else "errcode 45047",
                 sent_at=now if status == "sent" else None, created_at=now)
    w.insert("job_leases", name="reconcile", owner=None, lease_until=None, runs=12)
    return {"orders": orders, "schedules": schedules, "notices": 2}
