"""Peewee models on peewee-async's MySQLDatabase."""
from .base import close_database, configure_database, database, open_database, utcnow
from .tables import (
    ALL_TABLES, BookingNotice, CourseSchedule, IdempotencyKey, JobLease, NotificationReceipt, Operator, PaymentAuditLog,
    PaymentOrder, PaymentTransaction, Refund, SchemaMigration, SeatReservation, User,
)

__all__ = [
    "ALL_TABLES", "BookingNotice", "CourseSchedule", "IdempotencyKey", "JobLease", "NotificationReceipt", "Operator",
    "PaymentAuditLog", "PaymentOrder", "PaymentTransaction", "Refund", "SchemaMigration", "SeatReservation",
    "User", "close_database", "configure_database", "database", "open_database", "utcnow",
]
