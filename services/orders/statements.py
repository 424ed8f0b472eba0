"""The hot statements of the booking and payment paths, built once (models.prepared).

Each replaces several peewee round trips on a path that runs for every parent: one locking read of an order with
its reservation, one conditional UPDATE that claims a confirmed seat (the session's counter), one UPDATE that moves
an order and its reservation together.
"""
from __future__ import annotations

from types import SimpleNamespace

from models import CourseSchedule, PaymentOrder, SeatReservation, User
from models.prepared import Prepared

_O, _R = PaymentOrder, SeatReservation
ORDER_COLUMNS = ("id", "order_id", "user_id", "course_schedule_id", "amount_fen", "currency", "status",
                 "trade_type", "transaction_id", "prepay_id", "code_url", "description", "expires_at", "updated_at",
                 "lease_owner", "refunded_fen", "failure_reason", "created_at", "paid_at")
RESERVATION_COLUMNS = ("r_id", "reservation_id", "r_status", "payment_started", "r_expires_at", "confirmed_at")
_ORDER_FIELDS = [getattr(_O, c if not c.endswith("_id") or c in ("order_id", "transaction_id", "prepay_id")
                         else c[:-3]) for c in ORDER_COLUMNS]
_RES_FIELDS = [_R.id, _R.reservation_id, _R.status, _R.payment_started, _R.expires_at, _R.confirmed_at]


def _with_reservation(where_value_field):
    return (PaymentOrder.select(*_ORDER_FIELDS, *_RES_FIELDS)
            .join(SeatReservation, join_type="LEFT OUTER JOIN", on=(SeatReservation.order == PaymentOrder.id))
            .where(where_value_field == "?"))


# The order and its reservation, both locked (lock order: these two rows, then the session's counter).
LOCK_BY_OUT_TRADE_NO = Prepared.of(_with_reservation(PaymentOrder.order_id).for_update(),
                                   ORDER_COLUMNS + RESERVATION_COLUMNS)
LOCK_BY_PK = Prepared.of(_with_reservation(PaymentOrder.id).for_update(), ORDER_COLUMNS + RESERVATION_COLUMNS)
# The same, only while the given lease token still holds the order (the fencing check of leases.Lease.held).
LOCK_BY_PK_LEASED = Prepared(LOCK_BY_PK.sql.replace(
    " FOR UPDATE", " AND (`t1`.`lease_owner` = %s) AND (`t1`.`lease_until` > UTC_TIMESTAMP(6)) FOR UPDATE"),
    ORDER_COLUMNS + RESERVATION_COLUMNS)
# The prepay id (or Native code URL) kept, and the lease given back, in one statement — if still pending and ours.
SAVE_PREPAY = {column: Prepared(
    f"UPDATE `payment_orders` SET `{column}` = %s, `updated_at` = %s, `lease_owner` = NULL, `lease_until` = NULL "
    "WHERE `id` = %s AND `status` = 'pending' AND `lease_owner` = %s AND `lease_until` > UTC_TIMESTAMP(6)")
    for column in ("prepay_id", "code_url")}

# The parent's own order with its reservation and the parent's openid (no lock): the prepay's and the socket's read.
USER_ORDER = Prepared.of(
    PaymentOrder.select(*_ORDER_FIELDS, *_RES_FIELDS, User.openid)
    .join(SeatReservation, join_type="LEFT OUTER JOIN", on=(SeatReservation.order == PaymentOrder.id))
    .switch(PaymentOrder).join(User, on=(User.id == PaymentOrder.user))
    .where((PaymentOrder.order_id == "?") & (PaymentOrder.user == 0)),
    ORDER_COLUMNS + RESERVATION_COLUMNS + ("openid",))

# A confirmed seat for a payment: the session's counter goes up only while it is under the capacity.
CLAIM_SEAT = Prepared("UPDATE `course_schedules` SET `confirmed_seats` = `confirmed_seats` + 1 "
                      "WHERE `id` = %s AND `confirmed_seats` < `capacity`")
GIVE_BACK_SEAT = Prepared("UPDATE `course_schedules` SET `confirmed_seats` = `confirmed_seats` - 1 "
                          "WHERE `id` = %s AND `confirmed_seats` > 0")

# pending order + temporary hold -> paid + confirmed, and one of the session's confirmed seats claimed, in one
# statement: 3 rows when all moved, 0 when the session has no confirmed seat left (the order and hold being locked
# and checked before). The session's row is locked last, for as little time as the transaction has left.
CONFIRM_BOOKING = Prepared(
    "UPDATE `payment_orders` o JOIN `seat_reservations` r ON r.`order_id` = o.`id` "
    "JOIN `course_schedules` s ON s.`id` = o.`course_schedule_id` "
    "SET o.`status` = 'paid', o.`trial_slot` = o.`user_id`, o.`transaction_id` = %s, o.`paid_at` = %s, "
    "o.`updated_at` = %s, r.`status` = 'confirmed', r.`confirmed_at` = %s, r.`updated_at` = %s, "
    "s.`confirmed_seats` = s.`confirmed_seats` + 1 "
    "WHERE o.`id` = %s AND o.`status` = 'pending' AND r.`id` = %s AND r.`status` = 'temporary' "
    "AND s.`confirmed_seats` < s.`capacity`")

# Payment starts: the hold lasts to the order's end and no longer lapses by time (both rows in one statement).
EXTEND_HOLD = Prepared(
    "UPDATE `payment_orders` o JOIN `seat_reservations` r ON r.`order_id` = o.`id` "
    "SET o.`trade_type` = %s, o.`payment_started_at` = %s, o.`updated_at` = %s, "
    "r.`payment_started` = 1, r.`expires_at` = o.`expires_at`, r.`updated_at` = %s "
    "WHERE o.`id` = %s AND o.`status` = 'pending' AND r.`id` = %s AND r.`status` = 'temporary'")

# The usual prepay in one statement: the order's lease claimed and the payment started (the hold extended to the
# order's end), only if the order is pending and unexpired, of this kind or none yet, its lease free, and its hold
# temporary and not lapsed — 2 rows when all of that held; otherwise the caller takes the slow path, which says why.
CLAIM_AND_START = Prepared(
    "UPDATE `payment_orders` o JOIN `seat_reservations` r ON r.`order_id` = o.`id` "
    "SET o.`lease_owner` = %s, o.`lease_until` = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND, o.`trade_type` = %s, "
    "o.`payment_started_at` = COALESCE(o.`payment_started_at`, %s), o.`updated_at` = %s, "
    "r.`payment_started` = 1, r.`expires_at` = o.`expires_at`, r.`updated_at` = %s "
    "WHERE o.`id` = %s AND o.`status` = 'pending' AND o.`expires_at` > %s "
    "AND (o.`trade_type` IS NULL OR o.`trade_type` = %s) "
    "AND (o.`lease_until` IS NULL OR o.`lease_until` <= UTC_TIMESTAMP(6)) "
    "AND r.`id` = %s AND r.`status` = 'temporary' AND (r.`payment_started` = 1 OR r.`expires_at` > %s)")

INSERT_TRANSACTION = Prepared(
    "INSERT INTO `payment_transactions` (`transaction_id`, `order_id`, `out_trade_no`, `trade_type`, `trade_state`, "
    "`bank_type`, `total_fee`, `payer_total`, `fee_type`, `openid`, `success_time`, `source`, `created_at`, "
    "`updated_at`) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")


# The parent's live orders with their holds, locked: one trial, one open order. Parameters: user, "pending", "paid".
LIVE_ORDERS = Prepared.of(_with_reservation(PaymentOrder.user).where(
    PaymentOrder.status.in_(["pending", "paid"])).for_update(), ORDER_COLUMNS + RESERVATION_COLUMNS)

LOCK_SCHEDULE = Prepared.of(
    CourseSchedule.select(CourseSchedule.id, CourseSchedule.title, CourseSchedule.starts_at, CourseSchedule.capacity)
    .where(CourseSchedule.id == 0).for_update(), ("id", "title", "starts_at", "capacity"))
# A reservation `r` that occupies a seat now (seats.seat_taking_condition in SQL; one parameter: now): confirmed, or
# a temporary hold with a WeChat Pay order or not yet lapsed.
SEAT_TAKEN_SQL = ("(r.`status` = 'confirmed' OR (r.`status` = 'temporary' AND (r.`payment_started` = 1 "
                  "OR r.`expires_at` > %s)))")
# Seats taken now (read after the session's lock): confirmed, or held and not lapsed (see seats.seat_taking_condition).
SEATS_TAKEN = Prepared(
    "SELECT COUNT(*) FROM `seat_reservations` r WHERE r.`course_schedule_id` = %s AND " + SEAT_TAKEN_SQL)

# Before any lock or transaction: is the session there, still open, and full, and has the parent no live order?
# A parent with nothing open who asks for a full session is answered SOLD_OUT from this one read (the many losers
# of a rush never queue on the session's lock); anything else goes through the locked path, which alone decides.
PRECHECK = Prepared(
    "SELECT s.`capacity`, s.`starts_at`, (SELECT COUNT(*) FROM `seat_reservations` r WHERE r.`course_schedule_id` "
    "= s.`id` AND " + SEAT_TAKEN_SQL + "), (SELECT COUNT(*) FROM `payment_orders` o WHERE o.`user_id` = %s "
    "AND o.`status` IN ('pending', 'paid')) FROM `course_schedules` s WHERE s.`id` = %s",
    ("capacity", "starts_at", "taken", "live"))

INSERT_ORDER = Prepared(
    "INSERT INTO `payment_orders` (`order_id`, `user_id`, `course_schedule_id`, `amount`, `amount_fen`, `currency`, "
    "`status`, `payment_method`, `description`, `trial_slot`, `refunded_fen`, `check_failures`, `created_at`, "
    "`updated_at`, `expires_at`) VALUES (%s, %s, %s, %s, %s, 'CNY', 'pending', 'wechat_pay', %s, %s, 0, 0, %s, %s, %s)")
INSERT_RESERVATION = Prepared(
    "INSERT INTO `seat_reservations` (`reservation_id`, `order_id`, `course_schedule_id`, `user_id`, `seat_count`, "
    "`status`, `payment_started`, `expires_at`, `created_at`, `updated_at`) "
    "VALUES (%s, %s, %s, %s, 1, 'temporary', 0, %s, %s, %s)")


# What a live-status frame says about an order (one read; the user's own order when the user is given).
_SNAPSHOT = ("SELECT o.`order_id`, o.`status`, o.`updated_at`, r.`status` FROM `payment_orders` o "
             "LEFT JOIN `seat_reservations` r ON r.`order_id` = o.`id` WHERE o.`order_id` = %s")
SNAPSHOT = Prepared(_SNAPSHOT, ("order_id", "status", "updated_at", "reservation_status"))
USER_SNAPSHOT = Prepared(_SNAPSHOT + " AND o.`user_id` = %s", SNAPSHOT.columns)


def split(row):
    """(order, reservation) objects from a row of ORDER_COLUMNS + RESERVATION_COLUMNS (reservation None if none)."""
    if row is None:
        return None, None
    reservation = None
    if row.r_id is not None:
        reservation = SimpleNamespace(id=row.r_id, reservation_id=row.reservation_id, status=row.r_status,
                                      payment_started=bool(row.payment_started), expires_at=row.r_expires_at,
                                      confirmed_at=row.confirmed_at, order_id=row.id)
    return row, reservation
