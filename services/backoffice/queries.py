"""What the back office reads: orders (search, story), refunds, the notification inbox, the audit, rosters."""
from __future__ import annotations

import datetime as dt
import re

from peewee import JOIN

import errors
from models import (
    CourseSchedule, Operator, PaymentAuditLog, PaymentOrder, PaymentTransaction, Refund, User,
    WechatPayNotification, utcnow,
)

from ..accounts import roles
from ..formats import is_order_id, iso
from ..lifecycle.seats import R, select_reservations, takes_seat_where
from ..lifecycle.statuses import ORDER_STATUSES, REFUND_STATUSES
from ..notifications import KINDS, OUTCOMES
from ..orders import views
from ..paging import page, parse_limit
from ..refunds.refunds import refund_views

_ACTION = re.compile(r"^[a-z_]{1,64}$")


def _choice(value, allowed, name):
    if value in (None, ""):
        return None
    if value not in allowed:
        raise errors.invalid_request(f"{name} 的取值无效", field=name)
    return value


def _int_filter(value, name):
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise errors.invalid_request(f"{name} 必须是整数", field=name) from None
    if not 1 <= number <= 2 ** 62:
        raise errors.invalid_request(f"{name} 必须是正整数", field=name)
    return number


def _user(user) -> dict:
    return {"id": user.id, "openid_masked": user.openid_masked}


async def admin_orders(orders) -> list[dict]:
    """Admin order objects: the order plus its user, its schedule and its refunds (five queries for any number)."""
    orders = list(orders)
    ids = [o.id for o in orders] or [0]
    users = {u.id: u for u in await User.select(User.id, User.openid_masked).where(
        User.id.in_({o.user_id for o in orders} or {0})).aio_execute()}
    schedules = {s.id: s for s in await CourseSchedule.select().where(
        CourseSchedule.id.in_({o.course_schedule_id for o in orders} or {0})).aio_execute()}
    reservations = {r.order_id: r for r in await select_reservations().where(R.order.in_(ids)).aio_execute()}
    refunds_by_order = {}
    refund_rows = list(await Refund.select().where(Refund.order.in_(ids)).order_by(Refund.id).aio_execute())
    for row, view in zip(refund_rows, await refund_views(refund_rows)):
        refunds_by_order.setdefault(row.order_id, []).append(view)
    items = []
    for order in orders:
        schedule = schedules.get(order.course_schedule_id)
        items.append({
            **views.serialize(order, reservations.get(order.id)),
            "user": _user(users[order.user_id]),
            "schedule": {"id": schedule.id, "title": schedule.title, "starts_at": iso(schedule.starts_at)},
            "refunds": refunds_by_order.get(order.id, []),
        })
    return items


async def search_orders(args: dict, role: str) -> dict:
    """GET /api/v1/admin/orders?status=&course_schedule_id=&q=&limit=&cursor=, as `role` may see them."""
    status = _choice(args.get("status"), ORDER_STATUSES, "status")
    schedule_id = _int_filter(args.get("course_schedule_id"), "course_schedule_id")
    q = (args.get("q") or "").strip()
    query = PaymentOrder.select()
    if status:
        query = query.where(PaymentOrder.status == status)
    if schedule_id:
        query = query.where(PaymentOrder.course_schedule == schedule_id)
    if q:
        if len(q) > 64:
            raise errors.invalid_request("q 过长", field="q")
        by_refund = Refund.select(Refund.order).where(Refund.out_refund_no == q)
        query = query.where((PaymentOrder.order_id == q) | (PaymentOrder.transaction_id == q)
                            | PaymentOrder.id.in_(by_refund))
    rows, cursor = await page(query, PaymentOrder.id, parse_limit(args.get("limit")), args.get("cursor"))
    return {"items": [roles.visible_order(role, o) for o in await admin_orders(rows)], "next_cursor": cursor}


async def _actors(rows) -> dict:
    ids = {r.operator_id for r in rows if r.operator_id}
    return {o.id: o.username for o in await Operator.select(Operator.id, Operator.username).where(
        Operator.id.in_(ids or {0})).aio_execute()}


def _audit_row(row, names) -> dict:
    """A timeline entry; an operator's action names the operator (`operator:<username>`)."""
    actor = row.actor
    if row.operator_id:
        actor = f"operator:{names.get(row.operator_id, row.operator_id)}"
    return {"at": iso(row.created_at), "action_type": row.action_type, "old_status": row.old_status,
            "new_status": row.new_status, "actor": actor, "ip_address": row.ip_address,
            "detail": row.action_detail or row.error_message}


async def order_story(order_id: str, role: str) -> dict:
    """GET /api/v1/admin/orders/{order_id}: the admin order with its timeline, notifications and transaction, as
    `role` may see it."""
    order = await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_first() \
        if is_order_id(order_id) else None
    if order is None:
        raise errors.not_found("订单不存在")
    [view] = await admin_orders([order])
    rows = list(await PaymentAuditLog.select().where(PaymentAuditLog.order == order.id)
                .order_by(PaymentAuditLog.id).aio_execute())
    names = await _actors(rows)
    notes = await WechatPayNotification.select().where(WechatPayNotification.out_trade_no == order.order_id) \
        .order_by(WechatPayNotification.id).aio_execute()
    txn = await PaymentTransaction.select().where(PaymentTransaction.order == order.id).aio_first()
    return roles.visible_order(role, {
        **view,
        "timeline": [_audit_row(r, names) for r in rows],
        "notifications": [{"received_at": iso(n.first_seen_at), "last_seen_at": iso(n.last_seen_at), "kind": n.kind,
                           "event_type": n.event_type or None, "outcome": n.outcome, "deliveries": n.deliveries}
                          for n in notes],
        "transaction": None if txn is None else {
            "transaction_id": txn.transaction_id, "trade_type": txn.trade_type, "trade_state": txn.trade_state,
            "bank_type": txn.bank_type, "total_fee": txn.total_fee, "payer_total": txn.payer_total,
            "success_time": txn.success_time, "source": txn.source, "recorded_at": iso(txn.created_at)},
    })


async def list_refunds(args: dict) -> dict:
    """GET /api/v1/admin/refunds?status=."""
    status = _choice(args.get("status"), REFUND_STATUSES, "status")
    query = Refund.select()
    if status:
        query = query.where(Refund.status == status)
    rows, cursor = await page(query, Refund.id, parse_limit(args.get("limit")), args.get("cursor"))
    return {"items": await refund_views(rows), "next_cursor": cursor}


async def late_successes(days=90, limit=200) -> list[dict]:
    """Refunds WeChat Pay made after we held them REJECTED or CLOSED, in the last `days` days, newest first: the
    refund objects plus `success_after` (what we held it as), for finance to check."""
    since = utcnow() - dt.timedelta(days=days)
    rows = list(await Refund.select().where(Refund.success_after.is_null(False) & (Refund.succeeded_at >= since))
                .order_by(Refund.id.desc()).limit(limit).aio_execute())
    return [dict(view, success_after=row.success_after) for view, row in zip(await refund_views(rows), rows)]


def notification_item(row) -> dict:
    """One notification of the inbox."""
    return {"id": row.id, "received_at": iso(row.first_seen_at), "last_seen_at": iso(row.last_seen_at),
            "kind": row.kind, "event_type": row.event_type or None, "out_trade_no": row.out_trade_no,
            "outcome": row.outcome, "http_status": row.http_status, "deliveries": row.deliveries,
            "reason": row.reason}


async def list_notifications(args: dict) -> dict:
    """GET /api/v1/admin/notifications?kind=&outcome=: every notification received, refused ones included."""
    kind = _choice(args.get("kind"), KINDS, "kind")
    outcome = _choice(args.get("outcome"), OUTCOMES, "outcome")
    query = WechatPayNotification.select()
    if kind:
        query = query.where(WechatPayNotification.kind == kind)
    if outcome:
        query = query.where(WechatPayNotification.outcome == outcome)
    rows, cursor = await page(query, WechatPayNotification.id, parse_limit(args.get("limit")), args.get("cursor"))
    return {"items": [notification_item(r) for r in rows], "next_cursor": cursor}


async def list_audit(args: dict) -> dict:
    """GET /api/v1/admin/audit?order_id=&action_type=: audit rows, newest first, with their order_id."""
    order_id = args.get("order_id") or None
    action = args.get("action_type") or None
    if order_id is not None and not is_order_id(order_id):
        raise errors.invalid_request("order_id 必须是 32 位十六进制", field="order_id")
    if action is not None and not _ACTION.match(action):
        raise errors.invalid_request("action_type 无效", field="action_type")
    query = PaymentAuditLog.select(PaymentAuditLog, PaymentOrder.order_id.alias("public_order_id")).join(
        PaymentOrder, join_type=JOIN.LEFT_OUTER, on=(PaymentAuditLog.order == PaymentOrder.id)).objects()
    if order_id:
        query = query.where(PaymentOrder.order_id == order_id)
    if action:
        query = query.where(PaymentAuditLog.action_type == action)
    rows, cursor = await page(query, PaymentAuditLog.id, parse_limit(args.get("limit")), args.get("cursor"))
    names = await _actors(rows)
    return {"items": [{**_audit_row(r, names), "order_id": r.public_order_id} for r in rows], "next_cursor": cursor}


def _roster_query():
    return select_reservations(
        R.id, R.reservation_id, R.status, R.expires_at, R.confirmed_at, R.user, R.attendance, R.attendance_at,
        PaymentOrder.order_id.alias("public_order_id"), PaymentOrder.status.alias("order_status"),
        User.openid_masked.alias("openid_masked")).join(PaymentOrder, on=(R.order == PaymentOrder.id)).switch(R).join(
        User, on=(R.user == User.id))


def _roster_item(r) -> dict:
    return {"reservation_id": r.reservation_id, "status": r.status, "order_id": r.public_order_id,
            "order_status": r.order_status, "attendance": r.attendance,
            "user": {"id": r.user_id, "openid_masked": r.openid_masked},
            "expires_at": iso(r.expires_at), "confirmed_at": iso(r.confirmed_at),
            "attendance_at": iso(r.attendance_at)}


async def roster(schedule_id: int, args: dict) -> dict:
    """GET /api/v1/admin/schedules/{id}/roster: every confirmed or held seat of a schedule, with its attendance."""
    schedule = await CourseSchedule.select().where(CourseSchedule.id == schedule_id).aio_first()
    if schedule is None:
        raise errors.not_found("课程不存在")
    query = _roster_query().where((R.course_schedule == schedule.id) & takes_seat_where(utcnow())).objects()
    rows, cursor = await page(query, R.id, parse_limit(args.get("limit")), args.get("cursor"))
    return {"items": [_roster_item(r) for r in rows], "next_cursor": cursor}


async def roster_item(reservation_pk: int) -> dict:
    """One reservation as a roster item (the answer to marking its attendance)."""
    return _roster_item(await _roster_query().where(R.id == reservation_pk).objects().aio_get())
