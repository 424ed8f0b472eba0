"""Who may do what in the back office: one table, read by the handlers (refusing) and the templates (hiding)."""
from __future__ import annotations

ADMIN, FINANCE, STAFF = "admin", "finance", "staff"
EVERYONE = frozenset({ADMIN, FINANCE, STAFF})

RIGHTS = {
    "home": EVERYONE,
    "orders.read": EVERYONE,
    "sessions.read": EVERYONE,
    "roster.read": EVERYONE,
    "sessions.write": frozenset({ADMIN, STAFF}),
    "money.read": frozenset({ADMIN, FINANCE}),  # amounts, refunds, the refund queue
    "refund": frozenset({ADMIN, FINANCE}),
    "inbox.read": frozenset({ADMIN, FINANCE}),
    "audit.read": frozenset({ADMIN, FINANCE}),
    "operators": frozenset({ADMIN}),
}

ROLE_NAMES = {ADMIN: "管理员", FINANCE: "财务", STAFF: "前台"}


def may(role: str, right: str) -> bool:
    """True when `role` holds `right` (an unknown right is held by no one)."""
    return role in RIGHTS.get(right, ())
