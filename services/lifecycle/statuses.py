"""Every status of an order, a seat reservation and a refund, the transitions between them, and the groups the rest
of the service asks about ("which orders took money?", "which refunds still count?"). Defined here once: the
invariants, the back office, the figures and the SQL of the transitions import them.
"""
from __future__ import annotations

# -- orders ------------------------------------------------------------------------------------------------------
PENDING, PAID, FAILED, CANCELLED, EXPIRED, REFUND_REQUIRED, REFUNDED = (
    "pending", "paid", "failed", "cancelled", "expired", "refund_required", "refunded")
ORDER_STATUSES = (PENDING, PAID, FAILED, CANCELLED, EXPIRED, REFUND_REQUIRED, REFUNDED)

ORDER_TRANSITIONS = {
    PENDING: {PAID, REFUND_REQUIRED, CANCELLED, FAILED, EXPIRED},
    PAID: {REFUNDED},
    REFUND_REQUIRED: {REFUNDED},
    CANCELLED: {REFUND_REQUIRED},  # a payment that arrives after all
    FAILED: {REFUND_REQUIRED},
    EXPIRED: {REFUND_REQUIRED},
}

# Orders WeChat Pay took money for.
MONEY_TAKEN = (PAID, REFUND_REQUIRED, REFUNDED)
# Orders that hold no seat (and never will again).
ENDED = (CANCELLED, FAILED, EXPIRED, REFUND_REQUIRED, REFUNDED)
# Orders that hold the parent's one trial (PaymentOrder.trial_slot is set while the order is in one of these): a
# parent has at most one of them, and a pending one is the parent's one open order.
TRIAL_HOLDING = (PENDING, PAID)
# Orders an operator may refund.
REFUNDABLE = (PAID, REFUND_REQUIRED)

# -- seat reservations -------------------------------------------------------------------------------------------
TEMPORARY, CONFIRMED = "temporary", "confirmed"
RESERVATION_STATUSES = (TEMPORARY, CONFIRMED, CANCELLED, EXPIRED)

RESERVATION_TRANSITIONS = {
    TEMPORARY: {CONFIRMED, CANCELLED, EXPIRED},
    CONFIRMED: {CANCELLED},  # refunded
    CANCELLED: {CONFIRMED},  # a late payment finds its seat free
    EXPIRED: {CONFIRMED},
}
# Reservations that are, or may still become, a seat (see services.lifecycle.seats for "takes a seat now").
HOLDING = (TEMPORARY, CONFIRMED)

# -- seat attendance (the front desk marks a confirmed seat once its session has started; NULL: not marked) ----------
ATTENDED, NO_SHOW = "attended", "no_show"
ATTENDANCE = (ATTENDED, NO_SHOW)

# -- waitlist entries ------------------------------------------------------------------------------------------------
WAITING, OFFERED, BOOKED, LAPSED, LEFT = "waiting", "offered", "booked", "lapsed", "left"
WAITLIST_STATUSES = (WAITING, OFFERED, BOOKED, LAPSED, LEFT)

WAITLIST_TRANSITIONS = {
    WAITING: {OFFERED, LEFT, LAPSED},  # lapsed: the session started before a seat freed
    OFFERED: {BOOKED, LAPSED, LEFT},
}
# Entries still in the line (WaitlistEntry.live_user is set while an entry is in one of these): one per parent and
# session. An offered one keeps a seat (services.lifecycle.seats: kept_seat).
WAITLIST_LIVE = (WAITING, OFFERED)

# -- refunds (as WeChat Pay spells them, plus REJECTED: refused outright) ---------------------------------------------
PROCESSING, SUCCESS, CLOSED, ABNORMAL, REJECTED = "PROCESSING", "SUCCESS", "CLOSED", "ABNORMAL", "REJECTED"
REFUND_STATUSES = (PROCESSING, SUCCESS, CLOSED, ABNORMAL, REJECTED)
WECHAT_REFUND_STATUSES = (PROCESSING, SUCCESS, CLOSED, ABNORMAL)

REFUND_TRANSITIONS = {
    PROCESSING: {SUCCESS, CLOSED, ABNORMAL, REJECTED},
    ABNORMAL: {SUCCESS, CLOSED},
    # WeChat Pay made, after all, a refund we hold as refused or closed (its signed notification or its own query
    # says SUCCESS): the money left, so it counts, and finance is told (Refund.success_after).
    REJECTED: {SUCCESS},
    CLOSED: {SUCCESS},
}
# Refunds that ended without money moving, as far as we knew: a SUCCESS from one of them is a late success.
REFUND_ENDED_WITHOUT_MONEY = (CLOSED, REJECTED)
# Refunds that count against what can still be refunded (every one not CLOSED or REJECTED).
REFUND_HOLDING = (PROCESSING, SUCCESS, ABNORMAL)
# Refunds the reconciler still asks WeChat Pay about.
REFUND_UNSETTLED = (PROCESSING, ABNORMAL)
# Refund statuses counted by the gym_refunds_total metric.
REFUND_COUNTED = (SUCCESS, CLOSED, ABNORMAL)


# -- WeChat Pay's trade_state of a payment (stored as WeChat Pay spells it in payment_transactions) ------------------
# The states in which WeChat Pay took the money (REFUND: paid, then refunded in part or in full).
TRADE_PAID = ("SUCCESS", "REFUND")
# The states in which the WeChat Pay order is over without a payment.
TRADE_ENDED = ("CLOSED", "REVOKED")
TRADE_FAILED = "PAYERROR"


class IllegalTransition(Exception):
    """A status change the state machine does not allow (or one that lost a race)."""


def check(table: dict, kind: str, name: str, old: str, new: str):
    """Raise IllegalTransition unless `table` allows old -> new."""
    if new not in table.get(old, ()):
        raise IllegalTransition(f"{kind} {name}: {old} -> {new}")


def sources(table: dict, new: str) -> tuple[str, ...]:
    """The statuses `table` allows a move to `new` from (the guard of that transition's SQL)."""
    return tuple(sorted(old for old, targets in table.items() if new in targets))


def sql_in(column: str, statuses) -> str:
    """`column IN ('a', 'b')` for statuses of this module (constants, never user input)."""
    values = tuple(statuses)
    assert values and all(v.replace("_", "").isalnum() for v in values), values
    return f"{column} IN ({', '.join(repr(v) for v in values)})"
