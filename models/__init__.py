"""Peewee models on peewee-async's MySQLDatabase."""
from .base import DATABASE_UNAVAILABLE, close_database, configure_database, database, open_database, utcnow
from .tables import (
    AuditSealHead, BillDay, BillDiscrepancy, BillRun, CourseSchedule, IdempotencyKey, JobLease, WechatPayNotification,
    Operator, OperatorLoginFailures, PaymentAuditLog, PaymentOrder, PaymentTransaction, Refund, SchemaMigration,
    SeatReservation, SubscribeMessage, User, WaitlistEntry,
)

__all__ = [
    "AuditSealHead", "BillDay", "BillDiscrepancy", "BillRun", "CourseSchedule", "IdempotencyKey", "JobLease",
    "WechatPayNotification", "Operator", "OperatorLoginFailures", "PaymentAuditLog", "PaymentOrder",
    "PaymentTransaction", "Refund", "SchemaMigration", "SeatReservation", "SubscribeMessage", "User", "WaitlistEntry",
    "DATABASE_UNAVAILABLE", "close_database", "configure_database", "database", "open_database", "utcnow",
]
