"""Peewee models on peewee-async's MySQLDatabase."""
from .base import close_database, configure_database, database, open_database, utcnow
from .tables import (
    BookingNotice, CourseSchedule, IdempotencyKey, JobLease, NotificationReceipt, Operator, PaymentAuditLog,
    PaymentOrder, PaymentTransaction, Refund, SchemaMigration, SeatReservation, User,
)

__all__ = [
    "BookingNotice", "CourseSchedule", "IdempotencyKey", "JobLease", "NotificationReceipt", "Operator",
    "PaymentAuditLog", "PaymentOrder", "PaymentTransaction", "Refund", "SchemaMigration", "SeatReservation",
    "User", "close_database", "configure_database", "database", "open_database", "utcnow",
]
