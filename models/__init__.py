"""Peewee models on peewee-async's MySQLDatabase."""
from .base import close_database, configure_database, database, open_database, utcnow
from .tables import (
    CourseSchedule, IdempotencyKey, JobLease, NotificationReceipt, Operator, PaymentAuditLog,
    PaymentOrder, PaymentTransaction, Refund, SchemaMigration, SeatReservation, SubscribeMessage, User,
)

__all__ = [
    "CourseSchedule", "IdempotencyKey", "JobLease", "NotificationReceipt", "Operator",
    "PaymentAuditLog", "PaymentOrder", "PaymentTransaction", "Refund", "SchemaMigration", "SeatReservation",
    "SubscribeMessage", "User", "close_database", "configure_database", "database", "open_database", "utcnow",
]
