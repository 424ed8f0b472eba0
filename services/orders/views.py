"""Orders as parents see them: the contract's order object, and the reads behind the order routes, the prepay and
the live-status socket."""
from __future__ import annotations

import errors
from models import PaymentOrder, SeatReservation, User
from models.prepared import Prepared
from telemetry.context import bind_order

from ..formats import iso, is_order_id, yuan
from ..lifecycle.locks import DECISION_COLUMNS, RESERVATION_COLUMNS, with_reservation


def serialize(order, reservation) -> dict:
    """The contract's order object."""
    return {
        "order_id": order.order_id, "status": order.status, "amount_fen": order.amount_fen,
        "amount": yuan(order.amount_fen), "currency": order.currency,
        "course_schedule_id": order.course_schedule_id, "created_at": iso(order.created_at),
        "expires_at": iso(order.expires_at), "paid_at": iso(order.paid_at), "transaction_id": order.transaction_id,
        "refunded_fen": order.refunded_fen, "failure_reason": order.failure_reason,
        "reservation": None if reservation is None else {
            "reservation_id": reservation.reservation_id, "status": reservation.status,
            "expires_at": iso(reservation.expires_at), "confirmed_at": iso(reservation.confirmed_at),
        },
    }


# The parent's own order (the columns a payment start decides on) with its reservation and the parent's encrypted
# openid (no lock): the prepay's read.
USER_ORDER = Prepared.of(
    with_reservation(User.openid_encrypted, columns=DECISION_COLUMNS).switch(PaymentOrder)
    .join(User, on=(User.id == PaymentOrder.user)).where((PaymentOrder.order_id == "?") & (PaymentOrder.user == 0)),
    DECISION_COLUMNS + RESERVATION_COLUMNS + ("openid_encrypted",))

# What a live-status frame says about an order (one read; the user's own order when the user is given).
_SNAPSHOT = ("SELECT o.`order_id`, o.`status`, o.`updated_at`, r.`status` FROM `payment_orders` o "
             "LEFT JOIN `seat_reservations` r ON r.`order_id` = o.`id` WHERE o.`order_id` = %s")
SNAPSHOT = Prepared(_SNAPSHOT, ("order_id", "status", "updated_at", "reservation_status"))
USER_SNAPSHOT = Prepared(_SNAPSHOT + " AND o.`user_id` = %s", SNAPSHOT.columns)


async def reservation_of(order):
    """The order's reservation (no lock)."""
    return await SeatReservation.select().where(SeatReservation.order == order.id).aio_first()


async def order_view(order) -> dict:
    """The order object with its reservation, read now."""
    return serialize(order, await reservation_of(order))


async def get_user_order(user_id: int, order_id: str) -> PaymentOrder:
    """The user's order by its public id; 404 for unknown ids and other users' orders alike."""
    if not is_order_id(order_id):
        raise errors.not_found("订单不存在")
    order = await PaymentOrder.select().where(
        (PaymentOrder.order_id == order_id) & (PaymentOrder.user == user_id)).aio_first()
    if order is None:
        raise errors.not_found("订单不存在")
    bind_order(order.order_id)
    return order


async def list_user_orders(user_id: int) -> list[dict]:
    """The user's orders, newest first."""
    orders = list(await PaymentOrder.select().where(PaymentOrder.user == user_id)
                  .order_by(PaymentOrder.created_at.desc()).limit(100).aio_execute())
    reservations = {r.order_id: r for r in await SeatReservation.select().where(
        SeatReservation.order.in_([o.id for o in orders] or [0])).aio_execute()}
    return [serialize(o, reservations.get(o.id)) for o in orders]
