"""Who may do what: one table of rights, read by the operators' JSON API and the back office's pages alike (refusing
with 403) and by the templates (hiding what a role may not use). It follows contract §2 Operators.
"""
from __future__ import annotations

ADMIN, FINANCE, STAFF = "admin", "finance", "staff"
ROLES = (ADMIN, FINANCE, STAFF)
EVERYONE = frozenset(ROLES)
MONEY = frozenset({ADMIN, FINANCE})

RIGHTS = {
    "home": EVERYONE,
    "orders.read": EVERYONE,  # the orders list and an order's story
    "schedules.read": EVERYONE,
    "schedules.write": EVERYONE,  # create a schedule, change its capacity or title (contract: "Roles: all")
    "roster.read": EVERYONE,
    "money.read": MONEY,  # amounts, refunds, the refund queue
    "refund": MONEY,
    "notifications.read": MONEY,  # the notification inbox
    "audit.read": MONEY,
    "bills": MONEY,  # WeChat Pay's bills: reconcile a day, read it, decide its discrepancies, the day report
    "exports": MONEY,  # orders.csv and refunds.csv
    "operators": frozenset({ADMIN}),
}

ROLE_NAMES = {ADMIN: "管理员", FINANCE: "财务", STAFF: "前台"}


def may(role: str, right: str) -> bool:
    """True when `role` holds `right` (an unknown right is held by no one)."""
    return role in RIGHTS.get(right, ())


def holders(right: str) -> frozenset:
    """The roles that hold `right`."""
    return RIGHTS.get(right, frozenset())
