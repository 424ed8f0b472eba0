"""Who may do what: one table of rights, read by the operators' JSON API and the back office's pages alike (refusing
with 403) and by the templates (hiding what a role may not use), and the fields of an order each right reveals
(`visible_order`, applied to every admin order the API answers and every order page draws). It follows contract §2
Operators; docs/backoffice.md shows it as a table.
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
    "frontdesk": frozenset({ADMIN, STAFF}),  # reschedule a paid booking, mark attendance (contract: admin, staff)
    "money.read": MONEY,  # amounts, refunds, the refund queue
    "refund": MONEY,
    "notifications.read": MONEY,  # the notification inbox
    "audit.read": MONEY,
    "bills": MONEY,  # WeChat Pay's bills: reconcile a day, read it, decide its discrepancies, the day report
    "exports": MONEY,  # orders.csv and refunds.csv
    "operators": frozenset({ADMIN}),
}

ROLE_NAMES = {ADMIN: "管理员", FINANCE: "财务", STAFF: "前台"}

# What an admin order (GET /api/v1/admin/orders, .../orders/{order_id}, and the order pages) holds that a role sees
# only with a right. Without it the field is null, present all the same, so every answer keeps its shape.
ORDER_FIELD_RIGHTS = {
    "amount_fen": "money.read", "amount": "money.read", "refunded_fen": "money.read",
    "refunds": "money.read",  # amounts, and the operators who asked for them
}
TRANSACTION_FIELD_RIGHTS = {"total_fee": "money.read", "payer_total": "money.read"}  # the story's WeChat Pay payment
# The story's timeline is audit rows: without audit.read its actor is only the kind (`operator`, not
# `operator:<username>`), and the client IP (a parent's, an operator's) and the detail are null.
TIMELINE_FIELD_RIGHTS = {"actor": "audit.read", "ip_address": "audit.read", "detail": "audit.read"}


def may(role: str, right: str) -> bool:
    """True when `role` holds `right` (an unknown right is held by no one)."""
    return role in RIGHTS.get(right, ())


def holders(right: str) -> frozenset:
    """The roles that hold `right`."""
    return RIGHTS.get(right, frozenset())


def _withheld(role, item: dict, field_rights: dict) -> dict:
    return {k: (v if k not in field_rights or may(role, field_rights[k]) else None) for k, v in item.items()}


def visible_order(role: str, order: dict) -> dict:
    """An admin order (or an order's story) as `role` may see it (ORDER_FIELD_RIGHTS and the tables after it)."""
    shown = _withheld(role, order, ORDER_FIELD_RIGHTS)
    if shown.get("transaction"):
        shown["transaction"] = _withheld(role, shown["transaction"], TRANSACTION_FIELD_RIGHTS)
    if "timeline" in shown:
        shown["timeline"] = [{**_withheld(role, row, TIMELINE_FIELD_RIGHTS),
                              "actor": row["actor"] if may(role, TIMELINE_FIELD_RIGHTS["actor"])
                              else (row["actor"] or "").split(":", 1)[0]} for row in shown["timeline"]]
    return shown
